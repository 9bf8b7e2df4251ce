"""The local engine: a process pool over a work directory's jobs (biggest first), one thread each.

The pool starts when the engine is entered, so its processes start and import while the driver plans;
the same processes then serve the first round and the global budget's extensions."""
import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os

from tqdm.auto import tqdm

from .. import work
from . import Engine


def _affinity():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalEngine(Engine):
    def __init__(self, workers=None):
        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise ValueError(f"workers must be a positive int or None, got {workers!r}")
        self.workers = int(workers) if workers else _affinity()
        self._pool = None

    def __enter__(self):
        if self.workers > 1:
            # spawn: a forked child of a process that has run OpenMP can hang in its first parallel region
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
            for _ in range(self.workers):  # start every worker now, each importing the engine
                self._pool.submit(work.warm_up)
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        return False

    def run(self, work_dir, jobs, plan):
        jobs = [j for j in jobs if not work.job_path(work_dir, j[0]).is_file()]
        if not jobs:
            return
        counts = plan["counts"]
        jobs.sort(key=lambda j: -sum(counts[c] for c in j[1]))
        bar = tqdm(total=len(jobs), desc="clipcov work", unit="job", disable=None, leave=False)
        if self.workers == 1 or len(jobs) == 1:
            for job in jobs:
                work.run_job(str(work_dir), job, self.workers)
                bar.update()
            bar.close()
            return
        with contextlib.ExitStack() as stack:
            if self._pool is None:  # not entered: a pool for this call only
                stack.enter_context(self)
            futures = [self._pool.submit(work.run_job, str(work_dir), job, 1) for job in jobs]
            try:
                for f in cf.as_completed(futures):
                    f.result()
                    bar.update()
            finally:
                bar.close()
