"""What a work directory was made from: the identity of every file its pool reads (resolved path, size,
mtime, inode, and a hash of the file's head and tail and of blocks sampled through it), or a hash of
in-memory arrays. A plan records it; a rerun that finds another refuses the work directory, and a work
step checks the cheap part (stat) before it reads rows from a pool file.

The sampled hash reads 64 KiB at each end and 16 blocks of 4 KiB between: milliseconds for a 26 GB pool,
and a rewrite that keeps size and mtime (rows permuted in place, mtime restored) still changes it.
"""
import hashlib
import os
from pathlib import Path

import numpy as np

EDGE = 1 << 16
BLOCK = 1 << 12
BLOCKS = 16


def _sampled_hash(path, size):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        spots = [0, max(0, size - EDGE)] + [size * (t + 1) // (BLOCKS + 1) for t in range(BLOCKS)]
        for at in sorted(set(spots)):
            f.seek(at)
            h.update(f.read(EDGE if at in (0, max(0, size - EDGE)) else BLOCK))
    return h.hexdigest()


def stat_identity(path):
    """(size, mtime_ns, inode) of a file: what changes when it is rewritten, replaced or touched."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def file_identity(path):
    """The resolved path, stat_identity and sampled hash of one file."""
    path = Path(path).resolve()
    ident = stat_identity(path)
    return {"path": str(path), **ident, "sample": _sampled_hash(path, ident["size"])}


def arrays_identity(arrays):
    """sha1 of in-memory arrays (shape, dtype and every byte; they are in memory, so it is cheap)."""
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(memoryview(a.reshape(-1).view(np.uint8)))
    return h.hexdigest()


def of_pool(pool):
    """The identity of what `pool` reads: its files, or its in-memory arrays."""
    paths = pool.files()
    if paths:
        return {"files": [file_identity(p) for p in paths]}
    return {"arrays": arrays_identity(pool.arrays())}


def changes(old, new):
    """Lines that say how identity `new` differs from `old` (empty: the same)."""
    if "arrays" in old or "arrays" in new:
        return [] if old.get("arrays") == new.get("arrays") else ["the in-memory arrays differ"]
    before = {f["path"]: f for f in old["files"]}
    after = {f["path"]: f for f in new["files"]}
    out = [f"{p} is no longer in the pool" for p in before if p not in after]
    out += [f"{p} is new in the pool" for p in after if p not in before]
    for p in after:
        if p in before and before[p] != after[p]:
            what = [k for k in ("size", "mtime_ns", "inode", "sample") if before[p][k] != after[p][k]]
            out.append(f"{p} changed ({', '.join('contents' if k == 'sample' else k for k in what)})")
    return out


def check_unchanged(files):
    """Raise when a pool file's stat identity differs from the plan's record (a list of file_identity)."""
    for f in files:
        try:
            now = stat_identity(f["path"])
        except OSError as e:
            raise ValueError(f"--work-dir: the pool file {f['path']} the plan reads rows from is gone ({e.strerror}); "
                             "plan again in a new work directory") from e
        if any(now[k] != f[k] for k in now):
            raise ValueError(f"--work-dir: the pool file {f['path']} changed after the plan (size, mtime or inode); "
                             "its picks would mix old and new rows: plan again in a new work directory")
