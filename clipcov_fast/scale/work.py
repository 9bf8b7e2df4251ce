"""work: run the C++ engine on one job's classes (a task of the plan, or a class extended for the global
budget) given the other classes' means, and write its picks and gains atomically; a job already done is
skipped, so a killed run resumes where it stopped.

A job is (name, classes, targets): dense class ids (ascending) and the picks to compute for each.
"""
import logging
import time
from pathlib import Path

import numpy as np

from .. import files
from . import fingerprint
from .plan import load_plan

log = logging.getLogger("clipcov_fast.scale")
_SUMS = {}


def task_jobs(plan):
    """The plan's first round: one job per task."""
    return [(f"task{t}", classes, [plan["targets"][c] for c in classes]) for t, classes in enumerate(plan["tasks"])]


def job_path(work_dir, name):
    return Path(work_dir) / "picks" / f"{name}.npz"


PICKS_KEYS = ("classes", "targets", "ptr", "indices", "gains")


def read_picks(path):
    """A picks file's arrays, or None when it does not read as one (truncated, garbage, half-copied)."""
    try:
        with np.load(path) as z:
            out = {key: z[key] for key in PICKS_KEYS}
    except Exception:  # noqa: BLE001 - whatever np.load makes of a broken file (BadZipFile, EOFError, ...)
        return None
    ptr = out["ptr"]
    if not (len(ptr) == len(out["classes"]) + 1 == len(out["targets"]) + 1 and ptr[0] == 0 and
            ptr[-1] == len(out["indices"]) == len(out["gains"]) and np.all(np.diff(ptr) >= 0)):
        return None
    return out


def job_done(work_dir, name):
    """The job's picks file exists and reads; an unreadable one is removed (and so recomputed)."""
    path = job_path(work_dir, name)
    if not path.is_file():
        return False
    if read_picks(path) is None:
        log.warning("work: %s does not read as a picks file; removing it, the job runs again", path)
        path.unlink(missing_ok=True)
        return False
    return True


def _sums(work_dir):
    key = str(Path(work_dir).resolve())
    path = Path(work_dir) / "sums.npz"
    try:
        stamp = path.stat().st_mtime_ns
        if key not in _SUMS or _SUMS[key][0] != stamp:
            with np.load(path) as z:
                _SUMS[key] = (stamp, z["sum_img"], z["sum_txt"], z["count"])
    except Exception as e:  # noqa: BLE001 - a missing or broken file, however np.load reports it
        raise ValueError(f"--work-dir: {path} does not read ({e}); plan again in a new work directory") from e
    return _SUMS[key][1:]


def read_bucket(work_dir, plan, c):
    """Class c's (img, txt, global index, label similarity or None), rows in ascending global index;
    img and txt are None when the rows are read from the pool's files (rows_from_files)."""
    base = Path(work_dir) / "buckets" / str(c)
    m, d = plan["counts"][c], plan["d"]
    dtype = np.dtype(plan["dtype"])
    img = txt = None
    try:
        idx = np.fromfile(f"{base}.idx", dtype=np.int64)
        ls = np.fromfile(f"{base}.ls", dtype=np.float64) if plan["label_sim"] else None
        if _copied(plan):
            img = np.fromfile(f"{base}.img", dtype=dtype).reshape(m, d)
            txt = np.fromfile(f"{base}.txt", dtype=dtype).reshape(m, d)
    except (OSError, ValueError) as e:
        raise ValueError(f"--work-dir: bucket {base} of class {plan['classes'][c]} is missing or truncated "
                         f"({e}); plan again in a new work directory") from e
    if len(idx) != m or (ls is not None and len(ls) != m):
        raise ValueError(f"--work-dir: bucket {base} has {len(idx)} rows, the plan says {m}")
    return img, txt, idx, ls


def _copied(plan):
    return plan.get("rows", {"copied": True})["copied"]


def _npy_layout(path, shape):
    """(dtype, fortran order, byte offset of the data) of a pool .npy file that must hold `shape`."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            found, fortran, dtype = read(f)
            offset = f.tell()
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read this pool file the plan reads rows from ({e}); plan again in a "
                         "new work directory") from e
    if tuple(found) != tuple(shape):
        raise ValueError(f"{path}: holds an array of shape {tuple(found)}, but the plan read {tuple(shape)} "
                         "from it; plan again in a new work directory")
    return np.dtype(dtype), fortran, offset


def rows_from_files(plan, idx):
    """The pool rows idx (global indices, distinct) read from the pool's .npy files the
    plan names, by pread (_core.read_rows): no memory map, so no page faults and no file pages in the RSS."""
    from .. import _core, inputs

    files_ = plan["rows"]["files"]
    d, dtype = plan["d"], np.dtype(plan["dtype"])
    off = np.concatenate([[0], np.cumsum([f[2] for f in files_])]).astype(np.int64)
    shard = np.searchsorted(off, idx, side="right") - 1
    img, txt = np.empty((len(idx), d), dtype), np.empty((len(idx), d), dtype)
    for s in np.unique(shard):
        at = np.flatnonzero(shard == s)
        at = at[np.argsort(idx[at], kind="stable")]  # ascending in the file: one pass, runs coalesce
        rows = idx[at] - off[s]
        for out, path in ((img, files_[s][0]), (txt, files_[s][1])):
            file_dtype, fortran, offset = _npy_layout(path, (files_[s][2], d))
            if fortran:  # rare (np.save writes C order): rows are not contiguous, read through a map
                mm = np.load(path, mmap_mode="r")
                out[at] = mm[rows]
                inputs.release_pages(mm)
                continue
            part = np.empty((len(rows), d), file_dtype)
            _core.read_rows(path, offset, rows, part)
            out[at] = part
    return img, txt


def run_job(work_dir, job, num_threads=1):
    """Compute one job unless its picks file exists. Returns the picks file."""
    from .. import _core, inputs

    name, classes, targets = job
    out = job_path(work_dir, name)
    if job_done(work_dir, name):
        return out
    t0 = time.perf_counter()
    plan = load_plan(work_dir)
    if not _copied(plan):  # rows come from the pool's files: they must be the files the plan read
        fingerprint.check_unchanged(plan["source"]["files"])
    args, w = plan["args"], plan["args"]["weights"]
    parts = [read_bucket(work_dir, plan, c) for c in classes]
    sizes = np.array([len(p[2]) for p in parts], np.int64)
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    idx = np.concatenate([p[2] for p in parts])
    if _copied(plan):
        A = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        B = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    else:
        A, B = rows_from_files(plan, idx)
    ls = np.concatenate([p[3] for p in parts]) if plan["label_sim"] else np.zeros(len(idx))
    del parts
    m = len(idx)
    eng = _core.Engine(np.arange(m, dtype=np.int64), ptr, plan["d"], bool(args["normalize"]), int(num_threads))
    for s in range(0, m, inputs.CHUNK_ROWS):
        e = min(m, s + inputs.CHUNK_ROWS)
        row, what = eng.load(s, A[s:e], B[s:e])
        if what:
            name, problem = inputs.LOAD_PROBLEMS[what]
            raise ValueError(f"--work-dir: the {name} embedding of pool row {idx[s + row]} has {problem}")
    other = {}
    if len(plan["counts"]) > 1:
        sum_img, sum_txt, count = _sums(work_dir)
        other["other_img"], other["other_txt"] = _core.other_means(sum_img, sum_txt, count,
                                                                   np.asarray(classes, np.int64))
    eng.prepare(A, B, args["objective"], plan["k"], args["threshold"], w["coverage"], w["easiness"],
                w["center"], w["redundancy"], w["label"] * ls, pool_n=plan["n"], **other)
    quota = np.asarray(targets, np.int64)
    local, gains = eng.greedy(quota, int(quota.sum()), False)
    del eng
    which = np.searchsorted(ptr, local, side="right") - 1  # the engine class of each pick
    order = np.argsort(which, kind="stable")  # per class, in its pick order
    picked = np.bincount(which, minlength=len(classes))
    files_ptr = np.concatenate([[0], np.cumsum(picked)]).astype(np.int64)
    with files.atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, classes=np.asarray(classes, np.int64), targets=quota, ptr=files_ptr,
                 indices=idx[local[order]], gains=gains[order])
    log.debug("work %s: %d classes, %d rows, %d picks in %.2fs", name, len(classes), m, len(local),
              time.perf_counter() - t0)
    return out


def warm_up():
    """Import what a job needs (a fresh worker does this while the driver plans)."""
    from .. import _core, inputs  # noqa: F401


def run_shard(work_dir, shard=0, num_shards=1, num_threads=1):
    """The plan's tasks t with t % num_shards == shard (a SLURM array's or Spark job's share)."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"--shard must be i/N with 0 <= i < N, got {shard}/{num_shards}")
    plan = load_plan(work_dir)
    jobs = [j for t, j in enumerate(task_jobs(plan)) if t % num_shards == shard]
    done = 0
    for job in jobs:
        if not job_done(work_dir, job[0]):
            run_job(work_dir, job, num_threads)
            done += 1
    return len(jobs), done
