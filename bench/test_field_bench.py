"""The field's selectors' benchmarks (make bench): negCLIPLoss against the anchor's way (one torch matmul of
each batch x batch block, then logsumexp by rows and columns) and this machine's SGEMM rate, each case in a
fresh process (bench/field_measure.py). The 12.8M-row (DataComp-small shape) NormSim-2 and CLIP score runs and
image-based at 1M rows x 10,000 centroids are not in make bench (26 GB of disk; about 40 minutes here):
bench/field_bench.sh runs them, and docs/benchmarks.md gives the figures and commands."""
import pytest

from conftest import _fresh_process


@pytest.fixture
def record_field(benchmark):
    def run(*args, timeout=1800, **info):
        result = {}

        def once():
            result.update(_fresh_process("field_measure.py", args, args[0], timeout) or {"timed_out_after_s": timeout})

        benchmark.pedantic(once, rounds=1, iterations=1)
        benchmark.extra_info.update(info, **result)
        return result
    return run


def test_sgemm_rate(record_field):
    record_field("sgemm", 32768, 512, 2, series="field")


@pytest.mark.parametrize("way", ["negclip-ours", "negclip-torch"])
def test_negclip_100k(record_field, way):
    """n = 100,000, d = 512, batch 32,768, 3 repeats, 2 threads."""
    record_field(way, 100_000, 512, 32768, 3, 2, series="field")
