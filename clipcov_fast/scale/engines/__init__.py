"""Engines that run a work directory's jobs: one file per engine behind `Engine.run(work_dir, jobs)`.

local: a process pool on this machine. ray: Ray tasks (`import ray` only in ray.py). The in-process path
(the whole pool in one engine) is not an engine here: scale.select_pool calls clipcov_fast.select.
"""
ENGINES = ("inprocess", "local", "ray")


class Engine:
    """Runs jobs of a work directory; each writes its own file. Use it as a context manager: workers it
    starts on entering (while the driver plans) stop on leaving. A job kind is (run_job, job_done, rows):
    ClipCov's class jobs (work.py, the default) or the field's score jobs (scores.py)."""

    def run(self, work_dir, jobs, plan, kind=None):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def get_engine(name, workers=None, ray_address=None):
    if name == "local":
        from .local import LocalEngine
        return LocalEngine(workers)
    if name == "ray":
        from .ray import RayEngine
        return RayEngine(ray_address)
    raise ValueError(f"engine must be one of {ENGINES[1:]} for a work directory, got {name!r}")


def job_kind(kind):
    """(run_job(work_dir, job, threads), job_done(work_dir, name), rows(plan, job)) of a job kind."""
    if kind is None:
        from .. import work
        return work.run_job, work.job_done, lambda plan, job: sum(plan["counts"][c] for c in job[1])
    return kind
