"""The Ray engine: one Ray task per job, CPUs in proportion to its rows (a local Ray when no address is
given; on a multi-node cluster the work directory must be on storage every node reads)."""
import logging

import ray

from .. import work
from . import Engine

log = logging.getLogger("clipcov_fast.scale")


@ray.remote
def _run_job(work_dir, job, threads):
    return str(work.run_job(work_dir, job, threads))


class RayEngine(Engine):
    def __init__(self, address=None):
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.node_cpus = max([int(n["Resources"].get("CPU", 1)) for n in nodes] or [1])

    def run(self, work_dir, jobs, plan):
        jobs = [j for j in jobs if not work.job_path(work_dir, j[0]).is_file()]
        if not jobs:
            return
        counts = plan["counts"]
        rows = [sum(counts[c] for c in j[1]) for j in jobs]
        total = max(1, sum(rows))
        refs = []
        for job, r in sorted(zip(jobs, rows), key=lambda x: -x[1]):
            cpus = int(min(self.node_cpus, max(1, round(self.cpus * r / total))))
            refs.append(_run_job.options(num_cpus=cpus).remote(str(work_dir), job, cpus))
        ray.get(refs)
        log.info("ray: ran %d jobs on %d CPUs", len(refs), self.cpus)
