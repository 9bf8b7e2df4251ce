"""The local engine: a process pool over a work directory's jobs (biggest first), one thread each.

The pool starts when the engine is entered, so its processes start and import while the driver plans;
the same processes then serve the first round and the global budget's extensions."""
import concurrent.futures as cf
import concurrent.futures.process  # noqa: F401 - cf.process.BrokenProcessPool
import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time

from tqdm.auto import tqdm

from .. import work
from . import Engine, job_kind


def _affinity():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _die_with(driver):
    """A worker's initializer: it dies when its driver does (kill -9 included), instead of computing and
    writing picks into a work directory nobody waits on."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    else:  # elsewhere: a thread that watches for the driver to go
        def watch():
            while os.getppid() == driver:
                time.sleep(1)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != driver:  # the driver died before prctl took effect
        os._exit(1)


class LocalEngine(Engine):
    def __init__(self, workers=None):
        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise ValueError(f"workers must be a positive int or None, got {workers!r}")
        self.workers = int(workers) if workers else _affinity()
        self._pool = None

    def __enter__(self):
        if self.workers > 1:
            # spawn: a forked child of a process that has run OpenMP can hang in its first parallel region
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                                initializer=_die_with, initargs=(os.getpid(),))
            for _ in range(self.workers):  # start every worker now, each importing the engine
                self._pool.submit(work.warm_up)
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        return False

    def run(self, work_dir, jobs, plan, kind=None):
        run_job, job_done, rows = job_kind(kind)
        jobs = [j for j in jobs if not job_done(work_dir, j[0])]
        if not jobs:
            return
        jobs.sort(key=lambda j: -rows(plan, j))
        bar = tqdm(total=len(jobs), desc="clipcov work", unit="job", disable=None, leave=False)
        if self.workers == 1 or len(jobs) == 1:
            for job in jobs:
                run_job(str(work_dir), job, self.workers)
                bar.update()
            bar.close()
            return
        with contextlib.ExitStack() as stack:
            if self._pool is None:  # not entered: a pool for this call only
                stack.enter_context(self)
            futures = [self._pool.submit(run_job, str(work_dir), job, 1) for job in jobs]
            try:
                for f in cf.as_completed(futures):
                    f.result()
                    bar.update()
            except cf.process.BrokenProcessPool as e:  # a worker was killed (the OOM killer, a signal)
                raise ChildProcessError(f"--engine local: a worker process died before its job was done "
                                        f"({e}); out of memory? rerun to resume, with fewer --workers") from e
            finally:
                bar.close()
