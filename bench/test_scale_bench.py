"""Scale-out benchmarks (make bench): the local and Ray engines against the in-process engine, and the
global budget's greedy stage. Fresh process per case (bench/scale_measure.py); pools from bench/conftest.pool
and bench/scale_pools.py. The DataComp-small shape (12.8M rows) is not in make bench: it needs about 52 GB
of disk and half an hour here; docs/benchmarks.md gives the command and the largest n that was run."""
import subprocess
import sys

import pytest

from conftest import HERE, pool

N1M = 1_000_000


def clip_retrieval(pool_dir):
    if not (pool_dir / "clip-retrieval").is_dir():
        subprocess.run([sys.executable, str(HERE / "scale_pools.py"), "clip-retrieval", str(pool_dir)], check=True)
    return pool_dir


@pytest.mark.parametrize("engine,layout", [("inprocess", "npy"), ("local", "clip-retrieval"),
                                           ("ray2", "clip-retrieval")])
def test_scale_1m(record_scale, engine, layout):
    """1M rows, 1,000 Zipf(0.5) classes, d = 512, fp16, k = 10%, 2 threads."""
    p = clip_retrieval(pool(N1M, 1000))
    record_scale(engine, p, N1M // 10, "--layout", layout, series="scale 1M", n=N1M)


@pytest.mark.parametrize("budget", ["proportional", "global"])
def test_scale_1m_budget_in_process(record_scale, budget):
    record_scale("inprocess", pool(N1M, 1000), N1M // 10, "--budget", budget, series="scale 1M budgets", n=N1M)


@pytest.mark.parametrize("engine", ["inprocess", "local"])
def test_scale_cc3m(record_scale, engine):
    n = 2_840_000
    record_scale(engine, pool(n, 1000), n // 10, series="scale CC3M", n=n)
