"""Engines that run a work directory's jobs: one file per engine behind `Engine.run(work_dir, jobs)`.

local: a process pool on this machine. ray: Ray tasks (`import ray` only in ray.py). The in-process path
(the whole pool in one engine) is not an engine here: scale.select_pool calls clipcov_fast.select.
"""
ENGINES = ("inprocess", "local", "ray")


class Engine:
    """Runs jobs (name, classes, targets) of a work directory; each writes its picks file. Use it as a
    context manager: workers it starts on entering (while the driver plans) stop on leaving."""

    def run(self, work_dir, jobs, plan):
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
