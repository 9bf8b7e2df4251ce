"""The Ray engine: one Ray task per job, CPUs in proportion to its rows (a local Ray when no address is
given; on a multi-node cluster the work directory must be on storage every node reads)."""
import logging
import socket

import ray

from . import Engine, job_kind

log = logging.getLogger("clipcov_fast.scale")


@ray.remote
def _run_job(run_job, work_dir, job, threads):
    return str(run_job(work_dir, job, threads))


CONNECT_TIMEOUT_S = 10


def check_reachable(address, timeout=CONNECT_TIMEOUT_S):
    """Something answers at a cluster address (host:port, or ray://host:port) within `timeout` seconds:
    ray.init would otherwise wait without a word. 'auto' and 'local' are Ray's own and not checked."""
    if address in (None, "auto", "local"):
        return
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--ray-address must look like HOST:PORT (e.g. 10.0.0.1:6379), 'auto' or "
                         f"ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(f"--ray-address: nothing answers at {address} within {timeout} s "
                              f"({e.strerror or e}); is the cluster up (ray start --head)?") from None


class RayEngine(Engine):
    def __init__(self, address=None):
        check_reachable(address)
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.node_cpus = max([int(n["Resources"].get("CPU", 1)) for n in nodes] or [1])

    def run(self, work_dir, jobs, plan, kind=None):
        run_job, job_done, size = job_kind(kind)
        jobs = [j for j in jobs if not job_done(work_dir, j[0])]
        if not jobs:
            return
        rows = [size(plan, j) for j in jobs]
        total = max(1, sum(rows))
        refs = []
        for job, r in sorted(zip(jobs, rows), key=lambda x: -x[1]):
            cpus = int(min(self.node_cpus, max(1, round(self.cpus * r / total))))
            refs.append(_run_job.options(num_cpus=cpus).remote(run_job, str(work_dir), job, cpus))
        ray.get(refs)
        log.info("ray: ran %d jobs on %d CPUs", len(refs), self.cpus)
