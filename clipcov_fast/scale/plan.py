"""plan: one streaming pass over a pool's shards into a work directory.

It computes per-class counts, the per-class float64 sums of the stored (normalized float32) image and
caption rows (the same sums, added in the same order, that the in-process engine takes its class means
from), and the quotas; and it appends each row's global index and label similarity to its class's
bucket. Memory: one shard plus K x d.

The rows' embeddings are copied into the buckets too (as given) unless every shard is a pair of .npy
files (clip-retrieval output, --img/--txt): then a work step reads its rows from those files by index,
which saves writing the pool a second time (the work directory stays a few bytes per row). Copy them
(copy_rows=True, `--copy-rows`) when the workers cannot read the pool's files, e.g. Ray nodes that share
only the work directory.

Work directory:
    plan.json        arguments, the identity of every pool file ("source", fingerprint.py), n, d, classes,
                     counts, quotas, targets, tasks, and where the rows are ("rows": copied into buckets,
                     or the .npy files to read)
    .lock            held (fcntl) while a run plans: one plan at a time; each plans in its own .plan-*/
    sums.npz         sum_img, sum_txt (K x d float64), count
    buckets/C.idx    class C's global row indices (int64, ascending), C.ls (label similarities),
                     C.img and C.txt (its rows as given, dtype in plan.json) when the rows are copied
    picks/NAME.npz   a job's per-class picks and gains (work.py)
"""
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import files, inputs
from . import fingerprint

log = logging.getLogger("clipcov_fast.scale")
PLAN = "plan.json"
LOCK = ".lock"
BATCH_ROWS = 20_000  # small classes are batched into tasks of about this many rows
BLOCK_ROWS = 1 << 18  # plan reads a shard in blocks of this many rows
VERSION = 2  # 2: resolved paths and a fingerprint of every source file


def targets_for(counts, quotas, k, budget):
    """Picks each class computes first: its quota (proportional), or its share plus a margin (global)."""
    counts = np.asarray(counts, np.int64)
    if budget != "global":
        return np.asarray(quotas, np.int64).copy()
    n = max(1, int(counts.sum()))
    share = (k * counts + n - 1) // n
    return np.minimum(counts, share + share // 4 + 8)


def tasks_for(counts, targets, batch_rows=BATCH_ROWS):
    """Classes (dense ids, ascending) grouped into tasks of about batch_rows rows; big classes alone."""
    tasks, cur, rows = [], [], 0
    for c in np.flatnonzero(np.asarray(targets) > 0):
        m = int(counts[c])
        if m >= batch_rows:
            tasks.append([int(c)])
            continue
        cur.append(int(c))
        rows += m
        if rows >= batch_rows:
            tasks.append(cur)
            cur, rows = [], 0
    if cur:
        tasks.append(cur)
    return tasks


def class_memory(m, d, itemsize):
    """Bytes a work step needs for a class of m rows: raw rows, the engine's float32 copy, per-row state."""
    return int(m * d * (2 * itemsize + 2 * 4) + m * 160)


def memory_limit_default():
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8)
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _digest(array):
    return None if array is None else hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


PLAN_KEYS = ("args", "n", "d", "k", "dtype", "label_sim", "rows", "source", "classes", "counts", "quotas",
             "targets", "tasks")


def load_plan(work_dir):
    path = Path(work_dir) / PLAN
    if not path.is_file():
        raise FileNotFoundError(f"--work-dir: {work_dir} has no {PLAN} (run plan first: clipcov select ... "
                                "--engine local --work-dir W)")
    try:
        out = json.loads(path.read_text())
        missing = [key for key in PLAN_KEYS if key not in out] if isinstance(out, dict) else ["all"]
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"--work-dir: {path} is not a readable plan ({e}); delete {work_dir} or use a new "
                         "work directory") from e
    if missing:
        raise ValueError(f"--work-dir: {path} is not a plan of this version of clipcov-fast (it lacks "
                         f"{', '.join(missing)}); delete {work_dir} or use a new work directory")
    return out


@contextlib.contextmanager
def locked(work_dir):
    """Hold the work directory's lock (fcntl, released when the process ends, however it ends): one plan
    at a time; a second run waits for the first, then finds its plan."""
    with files.naming(work_dir / LOCK), open(work_dir / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            log.warning("plan: %s is being planned by another clipcov run (pid %s); waiting for it", work_dir,
                        f.read().strip() or "?")
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def work_dir_of(work_dir):
    """work_dir as a folder that exists (made if needed); a file there is refused."""
    work_dir = Path(work_dir)
    if work_dir.exists() and not work_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder (--work-dir)", str(work_dir))
    files.check_can_write(work_dir / PLAN)
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir


def labels_for(pool, labels, T, normalize):
    """Proxy classes of every row: given, zero-shot against T (streamed by shard), or one class."""
    n = pool.n
    if labels is not None:
        return inputs.check_labels(labels, n, None if T is None else len(T))
    if T is None:
        return np.zeros(n, np.int64)
    y = np.empty(n, np.int64)
    off = pool.offsets()
    for i in range(len(pool.shards)):
        A, _ = pool.read(i)
        y[off[i]:off[i + 1]] = inputs.zero_shot_labels(inputs.as_matrix(A, pool.shards[i].name), T, normalize)
    return y


def _plan_block(a, b, yl, g0, shard_name, b0, T, y, normalize, eng, K, sum_img, sum_txt, wanted, dtype, buckets,
                copy):
    """One block of consecutive rows (global rows g0..): class sums, then appends to the buckets."""
    ls = None if T is None else inputs.label_similarity(b, T, y[g0:g0 + len(yl)], normalize)
    # class sums, chunk by chunk, in ascending row order inside each class (as the engine adds them)
    for s in range(0, len(yl), inputs.CHUNK_ROWS):
        e = min(len(yl), s + inputs.CHUNK_ROWS)
        row, what = eng.load(0, a[s:e], b[s:e])  # the engine's own stored rows, loaded in parallel
        if what:
            name, problem = inputs.LOAD_PROBLEMS[what]
            raise ValueError(f"{shard_name}: the {name} embedding of row {b0 + s + row} (pool row "
                             f"{g0 + s + row}) has {problem}")
        eng.add_row_sums(np.ascontiguousarray(yl[s:e], np.int64), sum_img, sum_txt)
    order = np.argsort(yl, kind="stable")
    bounds = np.searchsorted(yl[order], np.arange(K + 1))
    for c in np.flatnonzero((np.diff(bounds) > 0) & wanted):
        rows = order[bounds[c]:bounds[c + 1]]
        base = buckets / str(c)
        if copy:
            with open(f"{base}.img", "ab") as f:
                f.write(np.ascontiguousarray(a[rows], dtype=dtype).tobytes())
            with open(f"{base}.txt", "ab") as f:
                f.write(np.ascontiguousarray(b[rows], dtype=dtype).tobytes())
        with open(f"{base}.idx", "ab") as f:
            f.write((rows + g0).astype(np.int64).tobytes())
        if ls is not None:
            with open(f"{base}.ls", "ab") as f:
                f.write(ls[rows].astype(np.float64).tobytes())


def plan(pool, work_dir, k, *, objective="clipcov", labels=None, class_emb=None, threshold=0.0, weights=None,
         budget="proportional", normalize=True, memory_limit=None, batch_rows=BATCH_ROWS, copy_rows=None):
    """Plan a selection of k rows of `pool` into work_dir (skipped when work_dir already holds this plan of
    these files; refused when it holds another, or the pool's files changed since). copy_rows: copy the
    rows' embeddings into the buckets (None: only when some shard is not a pair of .npy files). Returns
    the plan (dict)."""
    if budget not in inputs.BUDGETS:
        raise ValueError(f"budget must be one of {inputs.BUDGETS}, got {budget!r}")
    w = inputs.resolve_weights(objective, weights, threshold)
    n, d = pool.n, pool.d
    k = inputs.resolve_k(k, n)
    T = None if class_emb is None else inputs.check_class_emb(class_emb, d, normalize)
    if labels is not None:
        labels = inputs.check_labels(labels, n, None if T is None else len(T))
    args = json.loads(json.dumps({
        "version": VERSION, "pool": pool.describe(), "k": k, "objective": objective, "budget": budget,
        "threshold": float(threshold), "weights": w, "normalize": bool(normalize), "labels": _digest(labels),
        "class_emb": _digest(T)}))
    work_dir = work_dir_of(work_dir)
    source = fingerprint.of_pool(pool)
    with locked(work_dir):
        if (work_dir / "scores.json").is_file():  # scale/scores.py's plan
            raise ValueError(f"--work-dir: {work_dir} holds a plan of a score-based selector; use a new work "
                             "directory")
        if (work_dir / PLAN).is_file():
            return _reuse(work_dir, args, source)
        with private_folder(work_dir) as tmp:
            out = _build(pool, work_dir, tmp, args, source, k, T, labels, normalize, budget, memory_limit,
                         batch_rows, copy_rows)
    return json.loads(json.dumps(out))


def _reuse(work_dir, args, source):
    old = load_plan(work_dir)
    check_same(work_dir, old, args, source)
    log.info("plan: %s already planned, reusing it", work_dir)
    return old


def check_same(work_dir, old, args, source):
    """Raise unless the work directory's plan `old` was made with `args` from the files `source` describes."""
    if old["args"] != args:
        changed = sorted(key for key in args if args[key] != old["args"].get(key))
        raise ValueError(f"--work-dir: {work_dir} holds a plan made with other arguments (they differ in "
                         f"{', '.join(changed)}); use a new work directory or delete it")
    changed = fingerprint.changes(old["source"], source)
    if changed:
        raise ValueError(f"--work-dir: {work_dir} was planned from other contents of the pool: "
                         f"{'; '.join(changed[:3])}; its results are not this pool's: use a new work directory "
                         "or delete it")


@contextlib.contextmanager
def private_folder(work_dir):
    """A plan's own temporary folder in work_dir, removed afterwards whatever happens (ENOSPC included); a
    killed plan's folders are removed first (the caller holds the lock: no other plan is running)."""
    for stale in work_dir.glob(".plan-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".plan-", dir=work_dir))
    try:
        with files.naming(tmp):
            yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(pool, work_dir, tmp, args, source, k, T, labels, normalize, budget, memory_limit, batch_rows,
           copy_rows):
    """One pass over the pool into tmp, then published into work_dir, plan.json last."""
    from .. import _core

    n, d = pool.n, pool.d
    y = labels_for(pool, labels, T, normalize)
    classes, dense, counts = np.unique(y, return_inverse=True, return_counts=True)
    dense = dense.astype(np.int64).ravel()
    quotas = inputs.quotas(counts, k, budget)
    targets = targets_for(counts, quotas, k, budget)
    dtype = pool.dtype
    limit = memory_limit_default() if memory_limit is None else int(memory_limit)
    for c in np.flatnonzero(targets > 0):
        need = class_memory(int(counts[c]), d, dtype.itemsize)
        if need > limit:
            raise ValueError(f"plan: class {int(classes[c])} has {int(counts[c])} rows; its work step needs about "
                             f"{need / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB memory limit "
                             "(use finer proxy classes)")
    wanted = targets > 0 if budget != "global" else np.ones(len(counts), bool)
    files_of = [pool.mapped(i) for i in range(len(pool.shards))]
    copy = any(f is None for f in files_of) if copy_rows is None else bool(copy_rows)
    if not copy and any(f is None for f in files_of):
        raise ValueError(f"copy_rows=False needs a pool of .npy files; {pool.kind} shards cannot be read by row")
    rows_at = {"copied": copy, "files": None if copy else
               [[img, txt, s.rows] for (img, txt), s in zip(files_of, pool.shards)]}

    (tmp / "buckets").mkdir()
    K = len(counts)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    sum_img, sum_txt = np.zeros((K, d)), np.zeros((K, d))
    # one chunk-sized engine of one class for every chunk: a fresh engine per chunk spent more time
    # populating its buffers' pages than loading rows
    rows = min(n, inputs.CHUNK_ROWS)
    eng = _core.Engine(np.arange(rows, dtype=np.int64), np.array([0, rows], np.int64), d, bool(normalize), threads)
    off = pool.offsets()
    for i in tqdm(range(len(pool.shards)), desc="clipcov plan", unit="shard", disable=None, leave=False):
        shard = pool.shards[i]
        A, B = pool.read(i)
        if A.shape != (shard.rows, d) or B.shape != (shard.rows, d):
            raise ValueError(f"{shard.name}: holds arrays of shape {A.shape} and {B.shape}, expected {(shard.rows, d)}")
        # blocks of rows: a memory-mapped shard's pages are dropped after each block (bounded RSS)
        for b0 in range(0, shard.rows, BLOCK_ROWS):
            b1 = min(shard.rows, b0 + BLOCK_ROWS)
            a, b = A[b0:b1], B[b0:b1]
            g0 = off[i] + b0  # global index of the block's first row
            _plan_block(inputs.native(a), inputs.native(b), dense[g0:g0 + (b1 - b0)], g0, shard.name, b0, T, y,
                        normalize, eng, K, sum_img, sum_txt, wanted, dtype, tmp / "buckets", copy)
            inputs.release_pages(a)
            inputs.release_pages(b)
            del a, b
        del A, B
    with open(tmp / "sums.npz", "wb") as f:
        np.savez(f, sum_img=sum_img, sum_txt=sum_txt, count=counts.astype(np.int64))
    for name in ("buckets", "sums.npz", "picks"):
        if (work_dir / name).exists():
            shutil.rmtree(work_dir / name) if (work_dir / name).is_dir() else (work_dir / name).unlink()
    os.replace(tmp / "buckets", work_dir / "buckets")
    os.replace(tmp / "sums.npz", work_dir / "sums.npz")
    out = {"args": args, "n": n, "d": d, "k": k, "dtype": str(dtype), "label_sim": T is not None,
           "rows": rows_at, "source": source, "classes": classes.tolist(), "counts": counts.tolist(),
           "quotas": quotas.tolist(), "targets": targets.tolist(), "tasks": tasks_for(counts, targets, batch_rows)}
    files.save_npy(work_dir / "labels.npy", y)
    files.save_json(work_dir / PLAN, out)  # last: a plan.json means a complete plan
    log.info("plan: n=%d d=%d k=%d classes=%d tasks=%d into %s (rows %s)", n, d, k, K, len(out["tasks"]), work_dir,
             "copied" if copy else "read from the pool's .npy files")
    return out
