"""File output: atomic (a temporary name in the same folder, then a rename), never over an input, each
output's companions (indices, summary) named from its whole name, OS errors naming their path."""
import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


# an output's suffixes that its companions replace: SUBSET.npy -> SUBSET.json; other names keep theirs
SUBSET_SUFFIXES = (".npy", ".parquet", ".tsv", ".csv")


def companion(out, suffix):
    """The file beside output `out` with `suffix` (its summary, its indices): subset.npy -> subset.json,
    but sel_k0.1 -> sel_k0.1.json (not sel_k0.json, which sel_k0.2 would share) and shards/ -> shards.json."""
    out = Path(out)
    if out.suffix in SUBSET_SUFFIXES:
        return out.with_suffix(suffix)
    return out.with_name(out.name + suffix)


def same_file(a, b):
    """a and b name one file (or folder): the same inode when both exist, else the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_overwrite(outputs, inputs):
    """Raise ValueError when an output would replace an input or another output. outputs: {what: path}
    (what names it in the message, e.g. '--out'); inputs: {what: path} of every file read."""
    seen = []
    for what, out in outputs.items():
        for src, path in inputs.items():
            if path is not None and same_file(out, path):
                raise ValueError(f"{what}: {out} is the input {src} ({path}); write the output elsewhere")
        for other, path in seen:
            if same_file(out, path):
                raise ValueError(f"{what}: {out} is also {other}; choose another --out")
        seen.append((what, out))


@contextlib.contextmanager
def naming(path):
    """OS errors inside the block that name no file (a write's ENOSPC) name `path`."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.strerror:
            raise type(e)(e.errno, e.strerror, str(path)) from e
        raise


def check_can_write(path):
    """A file can be written at `path`: it is not a folder, and no folder above it is a file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", str(path))
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "is a file, so nothing can be written under it",
                                         str(parent))
            break


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; renames it to `path` only if the block succeeds."""
    path = Path(path)
    check_can_write(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        with naming(path):
            yield Path(tmp)
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_npy(path, array):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(array))


def save_json(path, obj):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_plain) + "\n")


def save_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_png(path, fig, dpi=110):
    """A matplotlib figure as a PNG (atomic), then closed."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def save_report(out, stem, data, markdown, plot):
    """OUT/STEM.json (data), STEM.md (the text markdown(data)) and STEM.png (plot(path, data)), each
    written atomically; returns the three paths."""
    out = Path(out)
    paths = out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.png"
    save_json(paths[0], data)
    save_text(paths[1], markdown(data))
    plot(paths[2], data)
    return paths


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"cannot write {type(x).__name__} as JSON")
