"""Selection over pools that do not fit one process: plan, work, merge over a work directory.

select_pool() takes select()'s arguments plus the pool (pipeline.sources.pool), the engine and the work
directory, and returns the same Selection as select() on the concatenated arrays.
"""
import logging
import time
from pathlib import Path

import numpy as np

from .. import api
from ..pipeline.subsets import load_array
from ..selection import Selection
from . import merge, scores, work
from .engines import ENGINES, get_engine
from .plan import load_plan
from .plan import plan as plan_pool  # (the name `plan` stays the module)

log = logging.getLogger("clipcov_fast.scale")
__all__ = ["select_pool", "select_scores", "plan_pool", "merge_work_dir", "ENGINES"]


def select_pool(pool, k, *, objective="clipcov", labels=None, class_emb=None, threshold=0.0, weights=None,
                budget="proportional", normalize=True, engine="inprocess", work_dir=None, ray_address=None,
                workers=None, num_threads=None, memory_limit=None, batch_rows=None, copy_rows=None):
    """Choose k rows of `pool` exactly as select() would on its concatenated arrays.

    engine: "inprocess" (the whole pool in this process), "local" (a process pool over work_dir) or
    "ray" (Ray tasks; ray_address, else a local Ray). work_dir is required for local and ray; an
    interrupted run resumes from it, and a run with other arguments is refused. batch_rows: small
    classes are batched into work jobs of about this many rows. copy_rows: copy the rows into work_dir
    even when the workers could read them from the pool's .npy files (None: copy only for a Ray cluster
    at ray_address, whose nodes may not see the pool's files, or when the pool is not .npy files).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "inprocess":
        A, B = pool.arrays()
        return api.select(A, B, k, objective=objective, labels=labels, class_emb=class_emb, threshold=threshold,
                          weights=weights, budget=budget, normalize=normalize, device="cpu",
                          num_threads=num_threads)
    if work_dir is None:
        raise ValueError(f"--work-dir is required with --engine {engine}")
    t0 = time.perf_counter()
    with get_engine(engine, workers=workers, ray_address=ray_address) as runner:
        return _plan_work_merge(runner, pool, k, work_dir, t0, objective=objective, labels=labels,
                                class_emb=class_emb, threshold=threshold, weights=weights, budget=budget,
                                normalize=normalize, memory_limit=memory_limit, batch_rows=batch_rows,
                                copy_rows=True if copy_rows is None and ray_address else copy_rows)


def _plan_work_merge(runner, pool, k, work_dir, t0, *, objective, budget, batch_rows, **plan_args):
    p = plan_pool(pool, work_dir, k, objective=objective, budget=budget, **plan_args,
                  **({} if batch_rows is None else {"batch_rows": batch_rows}))
    timings = {"plan": time.perf_counter() - t0}
    t1 = time.perf_counter()
    runner.run(work_dir, work.task_jobs(p), p)
    timings["work"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    idx, gains = merge.run(work_dir, p, lambda jobs: runner.run(work_dir, jobs, p))
    timings["merge"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    y = np.asarray(load_array(Path(work_dir) / "labels.npy", "--work-dir"))
    log.info("select_pool %s (%s): n=%d k=%d in %.2fs", objective, type(runner).__name__, p["n"], p["k"],
             timings["total"])
    return Selection(np.asarray(idx, np.int64), np.asarray(gains, np.float64), float(np.sum(gains)), y,
                     p["k"], p["n"], objective, budget, timings)


def merge_work_dir(work_dir, engine="local", workers=None, ray_address=None):
    """Finish a planned work directory (missing jobs, extensions) and return (indices, gains)."""
    p = load_plan(work_dir)
    with get_engine(engine, workers=workers, ray_address=ray_address) as runner:
        runner.run(work_dir, work.task_jobs(p), p)
        return merge.run(work_dir, p, lambda jobs: runner.run(work_dir, jobs, p))


def select_scores(pool, k, method, params, *, seed=0, labels=None, engine="local", work_dir=None, ray_address=None,
                  workers=None, copy_rows=None):
    """A score-based selector of the field (scores.METHODS) over `pool` on a work directory: the same picks as
    methods.run_method on the pool's arrays. params: the method's (target, entries, ... as arrays and lists)."""
    if engine not in ("local", "ray"):
        raise ValueError(f"select_scores runs on --engine local or ray, got {engine!r}")
    if work_dir is None:
        raise ValueError(f"--work-dir is required with --engine {engine}")
    t0 = time.perf_counter()
    with get_engine(engine, workers=workers, ray_address=ray_address) as runner:
        p = scores.plan(pool, work_dir, method, params, seed,
                        copy_rows=True if copy_rows is None and ray_address else copy_rows)
        timings = {"plan": time.perf_counter() - t0}
        runner.run(work_dir, p["jobs"], p, kind=scores.KIND)
        idx, values = scores.merge(work_dir, p, k)
    timings["total"] = time.perf_counter() - t0
    y = np.zeros(pool.n, np.int64) if labels is None else np.asarray(labels, np.int64)
    idx = np.asarray(idx, np.int64)
    log.info("select_scores %s (%s): n=%d, %d picks in %.2fs", method, engine, pool.n, len(idx), timings["total"])
    return Selection(idx, np.full(len(idx), np.nan), float("nan"), y, len(idx), pool.n, method, "-", timings,
                     scores=values)
