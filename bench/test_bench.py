"""Benchmarks (make bench): the engine against the reference and peer libraries, and scaling.

Each case runs once in a fresh process (bench/measure.py) for time and peak memory; the figures go
to the pytest-benchmark JSON (extra_info), which bench/report.py turns into docs/benchmarks.md and
bench/results/scaling.png.
"""
import pytest

from conftest import pool

ONE_CLASS_N = [1000, 3000, 6000, 12000]
ZIPF_N = [10_000, 30_000, 100_000, 300_000, 1_000_000, 2_840_000]  # 2.84M: the CC3M shape


@pytest.mark.parametrize("n", ONE_CLASS_N)
@pytest.mark.parametrize("method", ["clipcov", "apricot", "submodlib", "reference"])
def test_one_class(record, method, n):
    """One class, d = 512, k = n/10, from embeddings (the peers get the dense kernel they need)."""
    if method == "reference" and n > 6000:
        pytest.skip("the float64 reference holds n x n float64 blocks; kept to n <= 6000")
    timeout = 300 if method == "submodlib" else 900
    record(method, pool(n, 1, dtype="float32"), n // 10, timeout=timeout, series="one class", n=n)


@pytest.mark.parametrize("n", ZIPF_N)
@pytest.mark.parametrize("method", ["clipcov", "reference"])
def test_zipf_classes(record, method, n):
    """1,000 classes with Zipf(0.5) sizes, d = 512, float16 memory-mapped inputs, k = 10%."""
    if method == "reference" and n > 30_000:
        pytest.skip("the float64 reference is kept to n <= 30,000")
    record(method, pool(n, 1000), n // 10, series="zipf 1000 classes", n=n)
