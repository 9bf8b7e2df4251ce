"""Run one scale-out case once in this process and print a JSON line: seconds, stage times, peak memory of
this process and of its largest descendant (VmHWM polled twice a second; ru_maxrss of the children is
also recorded, but on Linux a spawned child's ru_maxrss starts from its parent's RSS at fork), and the
work directory's size.

    python bench/scale_measure.py ENGINE POOL_DIR K [--budget global] [--layout npy|clip-retrieval|datacomp]
                                  [--workers 2] [--work-dir W]

ENGINE: inprocess (with --layout npy: clipcov_fast.select on the memory-mapped img.npy/txt.npy, today's
path; with another layout: select_pool(engine="inprocess") on that source, the whole pool concatenated in
memory, so that both engines open and check the same files), local, ray2
(the Ray engine on a two-node cluster simulated on this machine, one CPU per node). POOL_DIR holds img.npy,
txt.npy, labels.npy (clipcov_fast.synthetic.write_pool); --layout clip-retrieval/datacomp reads
POOL_DIR/clip-retrieval or POOL_DIR/datacomp (bench/scale_pools.py writes them).
"""
import argparse
import json
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def _status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class ChildPeaks:
    """The largest VmHWM of any descendant process, polled twice a second (the local engine's workers)."""

    def __init__(self):
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.5):
            for child in me.children(recursive=True):
                try:
                    for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak = max(self.peak, int(line.split()[1]) * 1024)
                except OSError:
                    pass

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


def _du(path):
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("engine", choices=("inprocess", "local", "ray2"))
    p.add_argument("pool")
    p.add_argument("k", type=int)
    p.add_argument("--budget", default="proportional")
    p.add_argument("--layout", default="npy", choices=("npy", "clip-retrieval", "datacomp"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work-dir")
    args = p.parse_args(argv)
    pool_dir = Path(args.pool)
    labels = np.load(pool_dir / "labels.npy")
    info = {"engine": args.engine, "layout": args.layout, "budget": args.budget, "k": args.k}
    import clipcov_fast as cc
    from clipcov_fast.pipeline.sources import open_pool
    from clipcov_fast.scale import select_pool

    # the page cache holds the files the engine reads, for every engine alike (this VM's DAMON reclaim
    # evicts files unread for a while, and a cold read of 2 GB here took up to 80 s)
    source = {"npy": pool_dir, "clip-retrieval": pool_dir / "clip-retrieval", "datacomp": pool_dir / "datacomp"}
    warm = [pool_dir / "img.npy", pool_dir / "txt.npy"] if args.layout == "npy" else \
        sorted(p for p in source[args.layout].rglob("*") if p.is_file() and p.suffix in (".npy", ".npz"))
    for path in warm:
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    info["warmed_bytes"] = sum(p.stat().st_size for p in warm)
    Path("/proc/self/clear_refs").write_text("5")
    base = _status("VmRSS")
    children = ChildPeaks()
    def opened():  # the source, checked (keys, row counts), as `clipcov select --LAYOUT DIR` opens it
        t = time.perf_counter()
        if args.layout == "npy":
            pool = open_pool(img=pool_dir / "img.npy", txt=pool_dir / "txt.npy")
        elif args.layout == "clip-retrieval":
            pool = open_pool(clip_retrieval=pool_dir / "clip-retrieval")
        else:
            pool = open_pool(datacomp=pool_dir / "datacomp")
        info["open_s"] = time.perf_counter() - t
        return pool

    t0 = time.perf_counter()
    if args.engine == "inprocess" and args.layout == "npy":  # today's path: select() on memory maps
        A = np.load(pool_dir / "img.npy", mmap_mode="r")
        B = np.load(pool_dir / "txt.npy", mmap_mode="r")
        sel = cc.select(A, B, args.k, labels=labels, budget=args.budget)
    elif args.engine == "inprocess":  # the same source as the other engines, concatenated in memory
        sel = select_pool(opened(), args.k, labels=labels, budget=args.budget, engine="inprocess")
    else:
        pool = opened()
        work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="clipcov-work-", dir=pool_dir))
        cluster = None
        address = None
        if args.engine == "ray2":
            from ray.cluster_utils import Cluster

            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            address = cluster.address
            t0 = time.perf_counter()  # the cluster's start-up is not the engine's time
        sel = select_pool(pool, args.k, labels=labels, budget=args.budget, engine="ray" if cluster else "local",
                          work_dir=work, workers=args.workers, ray_address=address)
        info["seconds"] = time.perf_counter() - t0  # the engine's time, not du's and rmtree's below
        info["work_dir_bytes"] = _du(work)
        if cluster:
            import ray

            ray.shutdown()
            cluster.shutdown()
        if not args.work_dir:
            shutil.rmtree(work)
    info.setdefault("seconds", time.perf_counter() - t0)
    info.update(n=int(sel.n), stages_s=sel.timings, peak_bytes=_status("VmHWM"),
                peak_growth_bytes=_status("VmHWM") - base,
                child_peak_bytes=children.stop(),  # polled: a worker's peak between polls can be missed
                child_maxrss_bytes=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                picks_sha1=__import__("hashlib").sha1(np.asarray(sel.indices).tobytes()).hexdigest(),
                first_picks=[int(i) for i in sel.indices[:10]])
    print(json.dumps(info))


if __name__ == "__main__":
    main()
