"""The Ray engine gives select()'s picks exactly: on one local Ray (ray.init(num_cpus=2), shared by the
test run) and on a two-node cluster simulated on this machine (ray.cluster_utils.Cluster)."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray engine needs ray: pip install 'clipcov-fast[scale]'")
pytest.importorskip("pyarrow", reason="the scale tests read parquet: pip install 'clipcov-fast[scale]'")

import clipcov_fast as cc  # noqa: E402
from clipcov_fast.pipeline.sources import open_pool  # noqa: E402
from clipcov_fast.scale import select_pool  # noqa: E402
from conftest import make_pool  # noqa: E402
from scale_util import write_clip_retrieval  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("objective,budget", [("clipcov", "proportional"), ("xcov", "global")])
def test_ray_engine_matches_select(tmp_path, local_ray, objective, budget):
    A, B, y = make_pool(1200, 10, classes=20, seed=8)
    write_clip_retrieval(tmp_path / "cr", A, B, parts=3)
    ref = cc.select(A.astype(np.float16), B.astype(np.float16), 0.1, labels=y, objective=objective, budget=budget)
    sel = select_pool(open_pool(clip_retrieval=tmp_path / "cr"), 0.1, labels=y, objective=objective, budget=budget,
                      engine="ray", work_dir=tmp_path / "w", batch_rows=150)
    np.testing.assert_array_equal(sel.indices, ref.indices)
    np.testing.assert_array_equal(sel.gains, ref.gains)


CLUSTER = textwrap.dedent("""
    import sys, numpy as np
    from ray.cluster_utils import Cluster
    import clipcov_fast as cc
    from clipcov_fast.pipeline.sources.pool import ArrayPool
    from clipcov_fast.scale import select_pool
    sys.path.insert(0, sys.argv[2])
    from conftest import make_pool
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    A, B, y = make_pool(1000, 8, classes=12, seed=9)
    for budget in ("proportional", "global"):
        ref = cc.select(A, B, 0.1, labels=y, budget=budget)
        sel = select_pool(ArrayPool(A, B), 0.1, labels=y, budget=budget, engine="ray", work_dir=sys.argv[1] + budget,
                          ray_address=cluster.address, batch_rows=120)
        assert np.array_equal(sel.indices, ref.indices) and np.array_equal(sel.gains, ref.gains), budget
    import ray
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    ray.shutdown()
    cluster.shutdown()
    print("ok")
""")


def test_ray_engine_on_a_two_node_cluster(tmp_path):
    # its own process: a simulated cluster cannot share a driver with the session's local Ray
    proc = subprocess.run([sys.executable, "-c", CLUSTER, str(tmp_path / "w"), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
