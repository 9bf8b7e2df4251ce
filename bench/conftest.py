"""Shared fixtures of the benchmarks: cached synthetic pools and one-shot measurements in a
fresh process (so that peak memory belongs to the run alone)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipcov_fast import synthetic

HERE = Path(__file__).parent
DATA = Path(os.environ.get("CLIPCOV_BENCH_DATA", HERE / "data"))


def pool(n, classes, d=512, dtype="float16", seed=0):
    """A synthetic pool on disk (Zipf(0.5) class sizes), written once and reused."""
    out = DATA / f"n{n}_c{classes}_d{d}_{dtype}_s{seed}"
    if not (out / "manifest.json").exists():
        synthetic.write_pool(out, n, d=d, classes=classes, zipf=0.5, seed=seed, dtype=dtype)
    return out


def _fresh_process(script, args, what, timeout):
    """The last JSON line of bench/SCRIPT ARGS run in a fresh process; None past `timeout` seconds."""
    cmd = [sys.executable, str(HERE / script), *map(str, args)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"{what} failed:\n{e.stderr}") from e
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(method, pool_dir, k, timeout=900):
    """Run bench/measure.py in a fresh process; None if it ran past `timeout` seconds."""
    return _fresh_process("measure.py", (method, pool_dir, k), method, timeout)


@pytest.fixture
def record(benchmark):
    """Time a one-shot measurement with pytest-benchmark and keep its figures in extra_info."""
    def run(method, pool_dir, k, timeout=900, **info):
        result = {}

        def once():
            result.update(measure(method, pool_dir, k, timeout) or {"timed_out_after_s": timeout})

        benchmark.pedantic(once, rounds=1, iterations=1)
        benchmark.extra_info.update(info, **result)
        return result
    return run


def measure_scale(engine, pool_dir, k, *extra, timeout=1800):
    """Run bench/scale_measure.py in a fresh process (its JSON line), None past `timeout` seconds."""
    return _fresh_process("scale_measure.py", (engine, pool_dir, k, *extra), f"scale {engine}", timeout)


@pytest.fixture
def record_scale(benchmark):
    """Like record, for bench/scale_measure.py cases; peak_bytes is the larger of the driver and its children."""
    def run(engine, pool_dir, k, *extra, timeout=1800, **info):
        result = {}

        def once():
            got = measure_scale(engine, pool_dir, k, *extra, timeout=timeout) or {"timed_out_after_s": timeout}
            if "peak_bytes" in got:
                got["peak_bytes"] = max(got["peak_bytes"], got.get("child_peak_bytes", 0))
            got["method"] = f"{engine} ({got.get('layout', 'npy')}, {got.get('budget', 'proportional')})"
            result.update(got)

        benchmark.pedantic(once, rounds=1, iterations=1)
        benchmark.extra_info.update(info, **result)
        return result
    return run
