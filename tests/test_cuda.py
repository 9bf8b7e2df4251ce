"""The CUDA backend against the CPU backend and the float64 reference.

Every parity test runs over `devices` (cpu, plus cuda when a GPU and the compiled module are
present), with one expected answer: the reference's. Without a GPU the cuda cases are skipped and
the CPU-runnable checks still run: the shared host/device math (compiled as a small C++ test
program), the module's import and its clean "no GPU" error, and the dispatch of device=...
"""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import clipcov_fast
from clipcov_fast import gpu, reference

ROOT = Path(__file__).resolve().parents[1]
USABLE, WHY = gpu.available()
devices = ["cpu"] + (["cuda"] if USABLE else [])
needs_gpu = pytest.mark.skipif(not USABLE, reason=f"no usable CUDA GPU: {WHY}")


def _data(n, d, classes, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    B = 0.6 * A + rng.standard_normal((n, d))  # correlated pairs: similarities spread around tau
    sizes = np.maximum(1, (n / np.arange(1, classes + 1) ** 0.5))  # Zipf(0.5)-like classes
    y = np.repeat(np.arange(classes), np.ceil(sizes / sizes.sum() * n).astype(int))[:n]
    y = rng.permutation(np.concatenate([y, np.zeros(n - len(y), int)]))
    return A.astype(dtype), B.astype(dtype), y


CASES = [("clipcov", "proportional", 0.0), ("clipcov", "global", 0.0), ("clipcov", "proportional", 0.2),
         ("clipcov", "global", 0.2), ("xcov", "proportional", 0.0), ("xcov", "global", 0.0)]


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("objective,budget,tau", CASES)
def test_same_indices_as_reference(device, objective, budget, tau):
    A, B, y = _data(700, 24, 6, seed=1)
    k = 90
    idx, gains, F, _ = reference.select(A, B, k, objective=objective, labels=y, threshold=tau, budget=budget)
    sel = clipcov_fast.select(A, B, k, objective=objective, labels=y, threshold=tau, budget=budget,
                              device=device)
    np.testing.assert_array_equal(sel.indices, idx)
    np.testing.assert_allclose(sel.gains, gains, rtol=1e-6, atol=1e-7)  # float32 coverage tiles
    assert abs(sel.objective - F) <= 1e-6 * abs(F)


@pytest.mark.parametrize("device", devices)
def test_float16_inputs_match_reference_on_the_upcast_values(device):
    A, B, y = _data(500, 32, 4, seed=2, dtype=np.float16)
    idx, _, F, _ = reference.select(A, B, 60, labels=y, threshold=0.2)
    sel = clipcov_fast.select(A, B, 60, labels=y, threshold=0.2, device=device)
    np.testing.assert_array_equal(sel.indices, idx)
    assert abs(sel.objective - F) <= 1e-6 * abs(F)


@pytest.mark.parametrize("device", devices)
def test_class_emb_and_one_class(device):
    A, B, _ = _data(400, 16, 1, seed=3)
    T = np.random.default_rng(4).standard_normal((5, 16))
    idx, _, _, y = reference.select(A, B, 40, class_emb=T)
    sel = clipcov_fast.select(A, B, 40, class_emb=T, device=device)
    np.testing.assert_array_equal(sel.labels, y)
    np.testing.assert_array_equal(sel.indices, idx)
    idx, _, _, _ = reference.select(A, B, 40, budget="global", normalize=False)
    sel = clipcov_fast.select(A, B, 40, budget="global", normalize=False, device=device)
    np.testing.assert_array_equal(sel.indices, idx)


@pytest.mark.parametrize("device", devices)
def test_bad_rows_are_named(device):
    A, B, y = _data(50, 8, 2, seed=5)
    A[17] = 0
    with pytest.raises(ValueError, match="row 17"):
        clipcov_fast.select(A, B, 5, labels=y, device=device)


@needs_gpu
@pytest.mark.parametrize("lib", ["torch", "cupy"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_device_arrays_without_host_round_trip(lib, dtype):
    mod = pytest.importorskip(lib)
    if lib == "torch" and not mod.cuda.is_available():
        pytest.skip("torch has no CUDA")
    A, B, y = _data(3000, 64, 12, seed=6, dtype=np.dtype(dtype))
    on = (lambda x: mod.as_tensor(x, device="cuda")) if lib == "torch" else mod.asarray
    want = clipcov_fast.select(A, B, 300, labels=y, threshold=0.2, device="cpu")
    got = clipcov_fast.select(on(A), on(B), 300, labels=y, threshold=0.2, device="cuda")
    np.testing.assert_array_equal(got.indices, want.indices)
    assert abs(got.objective - want.objective) <= 1e-6 * abs(want.objective)
    T = np.random.default_rng(7).standard_normal((10, 64))
    want = clipcov_fast.select(A, B, 300, class_emb=T, objective="xcov", device="cpu")
    got = clipcov_fast.select(on(A), on(B), 300, class_emb=on(T), objective="xcov", device="cuda")
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_array_equal(got.indices, want.indices)


@needs_gpu
def test_larger_zipf_case_matches_cpu_backend():
    A, B, y = _data(20000, 64, 40, seed=8)
    for tau in (0.0, 0.2):
        want = clipcov_fast.select(A, B, 2000, labels=y, threshold=tau, device="cpu")
        got = clipcov_fast.select(A, B, 2000, labels=y, threshold=tau, device="cuda")
        np.testing.assert_array_equal(got.indices, want.indices)
        assert got.device_peak_bytes > 0


# ---- CPU-runnable checks -------------------------------------------------------------------

def test_shared_host_device_math(tmp_path):
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        pytest.skip("no C++ compiler")
    exe = tmp_path / "test_shared_math"
    subprocess.run([cxx, "-std=c++17", "-O1", f"-I{ROOT / 'csrc'}", str(ROOT / "tests/cpp/test_shared_math.cpp"),
                    "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_available_gives_a_reason():
    usable, why = gpu.available()
    assert isinstance(usable, bool) and isinstance(why, str) and why


def test_module_imports_without_gpu_and_says_why():
    cuda = pytest.importorskip("clipcov_fast._cuda", reason="built without CUDA")
    if USABLE:
        assert cuda.device_count() >= 1
    else:
        with pytest.raises(RuntimeError, match="CUDA"):
            cuda.device_count()
    assert issubclass(cuda.OutOfDeviceMemory, MemoryError)


@pytest.mark.skipif(USABLE, reason="a GPU is present")
def test_cuda_device_without_gpu_is_a_clean_error_and_auto_falls_back():
    A, B, y = _data(60, 8, 2, seed=9)
    with pytest.raises(ValueError, match="device='cuda' is not usable"):
        clipcov_fast.select(A, B, 6, labels=y, device="cuda")
    auto = clipcov_fast.select(A, B, 6, labels=y, device="auto")
    cpu = clipcov_fast.select(A, B, 6, labels=y, device="cpu")
    np.testing.assert_array_equal(auto.indices, cpu.indices)
