"""The CUDA backend against the CPU backend and the float64 reference.

Every parity test runs over `devices` (cpu and cuda), with one expected answer: the reference's.
Without a GPU the cuda cases are collected and skipped, and the CPU-runnable checks still run: the
shared host/device math (compiled as a small C++ test program), the module's import and its clean
"no GPU" error, and the dispatch of device=... Where a GPU answers (asked without our module) but
the CUDA module is not usable, the cuda cases run and fail loudly instead of being skipped.
Every GPU case has a timeout (pytest-timeout, thread method: it ends the run even inside a hung
kernel) so that a hang costs seconds, not the GPU machine's minutes.
"""
import functools
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

import clipcov_fast
from clipcov_fast import gpu, reference
from conftest import assert_same_selection, make_pool

ROOT = Path(__file__).resolve().parents[1]


def _gpu_answers():
    """Whether this machine has a GPU, asked of the driver, not of clipcov_fast's module."""
    if any(Path("/dev").glob("nvidia[0-9]*")):
        return True
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


GPU_ANSWERS = _gpu_answers()
USABLE, WHY = gpu.available()
GPU_TIMEOUT = pytest.mark.timeout(60, method="thread")
needs_gpu = pytest.mark.skipif(not (USABLE or GPU_ANSWERS), reason=WHY)
CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, GPU_TIMEOUT, needs_gpu])
devices = ["cpu", CUDA]


def gpu_only(test):
    return pytest.mark.gpu(GPU_TIMEOUT(needs_gpu(test)))


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


@gpu_only
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


@gpu_only
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


@pytest.mark.skipif(USABLE or GPU_ANSWERS, reason="a GPU is present")
def test_cuda_device_without_gpu_is_a_clean_error_and_auto_falls_back():
    A, B, y = _data(60, 8, 2, seed=9)
    with pytest.raises(ValueError, match="device='cuda' is not usable"):
        clipcov_fast.select(A, B, 6, labels=y, device="cuda")
    auto = clipcov_fast.select(A, B, 6, labels=y, device="auto")
    cpu = clipcov_fast.select(A, B, 6, labels=y, device="cpu")
    np.testing.assert_array_equal(auto.indices, cpu.indices)


def test_a_gpu_that_answers_has_a_usable_backend():
    if not GPU_ANSWERS:
        pytest.skip("no GPU answers on this machine")
    assert USABLE, f"a GPU answers but the CUDA backend is not usable: {WHY}"


# ---- dispatch while the CUDA backend is unverified (CPU-runnable, GPU simulated) -------------

def _simulate_gpu(monkeypatch, verified):
    """gpu.available() says yes; gpu.select, the CUDA backend's entry, records that it was reached."""
    reached = []
    monkeypatch.setattr(gpu, "available", lambda: (True, "simulated"))
    monkeypatch.setattr(gpu, "GPU_VERIFIED", verified)
    monkeypatch.setattr(gpu, "select", lambda *a, **kw: reached.append(kw) or "cuda result")
    return reached


def test_auto_stays_on_the_cpu_engine_while_the_cuda_backend_is_unverified(monkeypatch):
    reached = _simulate_gpu(monkeypatch, verified=False)
    A, B, y = _data(400, 16, 4, seed=10)
    auto = clipcov_fast.select(A, B, 40, labels=y, threshold=0.2, device="auto")
    assert not reached
    cpu = clipcov_fast.select(A, B, 40, labels=y, threshold=0.2, device="cpu")
    np.testing.assert_array_equal(auto.indices, cpu.indices)
    assert_same_selection(auto, reference.select(A, B, 40, labels=y, threshold=0.2))


def test_the_verified_flag_alone_sends_auto_to_the_gpu_and_cuda_warns_once(monkeypatch):
    A, B, y = _data(60, 8, 2, seed=11)
    reached = _simulate_gpu(monkeypatch, verified=True)
    assert clipcov_fast.select(A, B, 6, labels=y, device="auto") == "cuda result" and len(reached) == 1
    monkeypatch.setattr(gpu, "GPU_VERIFIED", False)
    gpu.warn_if_unverified.cache_clear()
    with pytest.warns(RuntimeWarning, match="not yet passed a recorded GPU run"):
        assert clipcov_fast.select(A, B, 6, labels=y, device="cuda") == "cuda result"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call is quiet
        assert clipcov_fast.select(A, B, 6, labels=y, device="cuda") == "cuda result"
    gpu.warn_if_unverified.cache_clear()


# ---- cases the first GPU run needs (each also runs on the CPU engine here) -------------------

def _agree_with_cpu(sel, A, B, k, **kw):
    """Same selection as the float64 reference and as the CPU engine (host copies of the inputs)."""
    assert_same_selection(sel, reference.select(A, B, k, **kw))
    cpu = clipcov_fast.select(A, B, k, device="cpu", **kw)
    assert_same_selection(sel, (cpu.indices, cpu.gains, cpu.objective))


def _easy_class_pool(n, d, classes, seed):
    """Class 0's captions match their images, the others' do not: the global budget takes far more
    than class 0's proportional share from it."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % classes)
    A = rng.standard_normal((n, d))
    B = rng.standard_normal((n, d))
    B[y == 0] = A[y == 0] + 0.3 * rng.standard_normal(((y == 0).sum(), d))
    return A, B, y


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("objective,weights", [("clipcov", None), ("xcov", {"easiness": 8.0})])
def test_global_budget_resumes_a_class_past_its_first_target(device, objective, weights):
    A, B, y = _easy_class_pool(1800, 64, 6, seed=11)
    k = 400
    want = reference.select(A, B, k, objective=objective, labels=y, budget="global", weights=weights)
    n0 = int(np.sum(y == 0))
    first = k * n0 // len(y) + k * n0 // (4 * len(y)) + 16  # the CUDA engine's first target ...
    second = max(2 * first, first + 64)  # ... and the next one (csrc/cuda/engine.cu, greedy)
    assert np.sum(y[want[0]] == 0) > second, "the case must make class 0 resume twice"
    sel = clipcov_fast.select(A, B, k, objective=objective, labels=y, budget="global", weights=weights,
                              device=device)
    _agree_with_cpu(sel, A, B, k, objective=objective, labels=y, budget="global", weights=weights)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("objective", ["clipcov", "xcov"])
def test_float64_inputs(device, objective):
    A, B, y = _data(900, 24, 5, seed=12, dtype=np.float64)
    tau = 0.2 if objective == "clipcov" else 0.0
    sel = clipcov_fast.select(A, B, 100, objective=objective, labels=y, threshold=tau, device=device)
    _agree_with_cpu(sel, A, B, 100, objective=objective, labels=y, threshold=tau)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtypes", [(np.float16, np.float32), (np.float32, np.float64)])
def test_mixed_dtypes_between_the_two_arguments(device, dtypes):
    A, B, y = _data(700, 24, 4, seed=13)
    A, B = A.astype(dtypes[0]), B.astype(dtypes[1])
    sel = clipcov_fast.select(A, B, 80, labels=y, threshold=0.2, device=device)
    _agree_with_cpu(sel, A.astype(np.float64), B.astype(np.float64), 80, labels=y, threshold=0.2)


@gpu_only
@pytest.mark.parametrize("layout", ["bfloat16", "strided rows", "column slice", "transposed", "mixed"])
def test_torch_device_tensors_of_every_layout(layout):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    A, B, y = _data(1200, 32, 6, seed=14)
    wide = lambda X: np.concatenate([X, np.ones_like(X)], axis=1)  # noqa: E731
    on = lambda X: torch.as_tensor(X, device="cuda")  # noqa: E731
    if layout == "bfloat16":
        tA, tB = on(A).bfloat16(), on(B).bfloat16()
        A, B = tA.float().cpu().numpy(), tB.float().cpu().numpy()  # the values the engines see
    elif layout == "strided rows":
        tA, tB = on(np.repeat(A, 2, axis=0))[::2], on(np.repeat(B, 2, axis=0))[::2]
    elif layout == "column slice":
        tA, tB = on(wide(A))[:, :32], on(wide(B))[:, :32]
    elif layout == "transposed":
        tA, tB = on(A.T.copy()).T, on(B.T.copy()).T
    else:
        tA, tB = on(A).half(), on(B)
        A = tA.float().cpu().numpy()
    for objective, tau in (("clipcov", 0.2), ("xcov", 0.0)):
        sel = clipcov_fast.select(tA, tB, 150, objective=objective, labels=y, threshold=tau, device="cuda")
        _agree_with_cpu(sel, A.astype(np.float64), B.astype(np.float64), 150, objective=objective, labels=y,
                        threshold=tau)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("budget", ["proportional", "global"])
def test_xcov_with_classes_longer_than_one_segment(device, budget):
    A, B, y = make_pool(2600, 24, classes=3, zipf=3.0, seed=15)
    assert np.bincount(y).max() > 2 * 1024  # kSegment in csrc/cuda/kernels.cuh
    sel = clipcov_fast.select(A, B, 260, objective="xcov", labels=y, budget=budget, device=device)
    _agree_with_cpu(sel, A, B, 260, objective="xcov", labels=y, budget=budget)


def _dyadic_pool(n, d, share, seed):
    """Generic rows, and a share of unit rows of four entries +-1/2 (captions: the same row with at
    most one sign flipped). Similarities among those rows are exact multiples of 1/4 in any
    precision and order, so many of them equal tau = 0.5 exactly."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    B = A + 3 * rng.standard_normal((n, d))
    seen, i = set(), 0
    while i < int(share * n):
        a = np.zeros(d)
        a[rng.choice(d, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
        if a.tobytes() in seen:  # no duplicate rows: no exact gain ties
            continue
        seen.add(a.tobytes())
        b = a.copy()
        b[rng.choice(np.flatnonzero(a), rng.integers(0, 2), replace=False)] *= -1
        A[i], B[i] = a, b
        i += 1
    return A, B, rng.integers(0, 3, n)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("budget", ["proportional", "global"])
def test_threshold_equal_to_float64_similarities(device, budget):
    A, B, y = _dyadic_pool(900, 16, 0.4, seed=12)
    tau, k = 0.5, 120
    unit = lambda X: X / np.linalg.norm(X, axis=1, keepdims=True)  # noqa: E731
    s = unit(A)[y == 0] @ unit(B)[y == 0].T
    assert np.sum(s == tau) > 100  # many entries sit exactly at tau ...
    want = reference.select(A, B, k, labels=y, threshold=tau, budget=budget)
    at_or_above = reference.select(A, B, k, labels=y, threshold=np.nextafter(tau, 0), budget=budget)
    assert not np.array_equal(want[0], at_or_above[0])  # ... and s >= tau would pick differently
    sel = clipcov_fast.select(A, B, k, labels=y, threshold=tau, budget=budget, device=device)
    _agree_with_cpu(sel, A, B, k, labels=y, threshold=tau, budget=budget)


@gpu_only
@pytest.mark.parametrize("batch_tiles", ["1", "7"])
def test_coverage_across_many_small_batches(monkeypatch, batch_tiles):
    # The debug setting forces batch borders (a batch always holds one whole tile row) into inputs
    # small enough for the reference; the dyadic rows put many entries exactly at tau.
    monkeypatch.setenv("CLIPCOV_CUDA_BATCH_TILES", batch_tiles)
    A, B, y = _dyadic_pool(3000, 16, 0.3, seed=16)
    for tau in (0.0, 0.5):
        sel = clipcov_fast.select(A, B, 300, labels=y, threshold=tau, device="cuda")
        _agree_with_cpu(sel, A, B, 300, labels=y, threshold=tau)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("objective", ["clipcov", "xcov"])
def test_unnormalized_with_many_classes(device, objective):
    A, B, y = make_pool(3000, 16, classes=80, seed=17)
    tau = 0.5 if objective == "clipcov" else 0.0
    sel = clipcov_fast.select(A, B, 300, objective=objective, labels=y, threshold=tau, normalize=False,
                              device=device)
    _agree_with_cpu(sel, A, B, 300, objective=objective, labels=y, threshold=tau, normalize=False)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-30, 1e25])
def test_inputs_of_extreme_magnitude(device, dtype, scale):
    # float32 products of such raw values under- or overflow; scaled first, they do not.
    A, B, y = _data(800, 32, 4, seed=18, dtype=np.float64)
    A, B = (A * scale).astype(dtype), (B * scale).astype(dtype)
    assert np.all(np.isfinite(A)) and np.all(A != 0)
    sel = clipcov_fast.select(A, B, 80, labels=y, threshold=0.2, device=device)
    _agree_with_cpu(sel, A.astype(np.float64), B.astype(np.float64), 80, labels=y, threshold=0.2)


@functools.lru_cache(maxsize=None)  # the cpu and cuda cases share the slow reference
def _duplicates_case(budget):
    """1,000 classes (1,000 greedy blocks, many per SM); 25% of the rows are exact copies of others,
    so exact gain ties abound."""
    A, B, y = _data(12000, 32, 1000, seed=19)
    y[:1000] = np.arange(1000)  # every class present
    dst, src = np.random.default_rng(20).permutation(np.arange(1000, len(y)))[:6000].reshape(2, 3000)
    A[dst], B[dst], y[dst] = A[src], B[src], y[src]
    return A, B, y, reference.select(A, B, 1200, labels=y, threshold=0.2, budget=budget)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("budget", ["proportional", "global"])
def test_many_classes_with_exact_duplicates_give_the_same_bits_every_run(device, budget):
    A, B, y, want = _duplicates_case(budget)
    assert len(np.unique(y)) == 1000
    runs = [clipcov_fast.select(A, B, 1200, labels=y, threshold=0.2, budget=budget, device=device)
            for _ in range(3)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.indices, runs[0].indices)
        np.testing.assert_array_equal(other.gains, runs[0].gains)  # bit for bit
    # Against the others, exact ties may go either way (the contract): the same gains and F.
    cpu = clipcov_fast.select(A, B, 1200, labels=y, threshold=0.2, budget=budget, device="cpu")
    for gains, value in ((want[1], want[2]), (cpu.gains, cpu.objective)):
        np.testing.assert_allclose(runs[0].gains, gains, rtol=1e-6, atol=1e-6)
        assert abs(runs[0].objective - value) <= 1e-6 * abs(value)


@gpu_only
def test_a_request_larger_than_the_device_is_a_memory_error_naming_bytes(tmp_path):
    from clipcov_fast import _cuda

    total = _cuda.memory_info()[1]
    d = 1 << 16
    n = total // (8 * d) + 1024  # its two float32 copies alone exceed the device
    arrays = []
    for name in ("a", "b"):  # sparse files: no disk, no host memory, nothing is read before the check
        path = tmp_path / f"{name}.f32"
        with open(path, "wb") as f:
            f.truncate(n * d * 4)
        arrays.append(np.memmap(path, dtype=np.float32, mode="r", shape=(n, d)))
    with pytest.raises(MemoryError) as err:
        clipcov_fast.select(arrays[0], arrays[1], 10, device="cuda")
    msg = str(err.value)
    need = int(re.search(r"needs (\d+) bytes", msg).group(1))
    have = int(re.search(r"has (\d+) of (\d+) bytes free", msg).group(1))
    assert need >= 2 * n * d * 4 > total and have <= total


@gpu_only
@pytest.mark.parametrize("objective", ["clipcov", "xcov"])
@pytest.mark.parametrize("d", [64, 512])
def test_memory_check_counts_every_buffer(objective, d):
    A, B, y = _data(12000, d, 40, seed=21)
    sel = clipcov_fast.select(A, B, 1200, objective=objective, labels=y, device="cuda")
    # The check counted at least what the engine held at its peak, and not wildly more.
    assert sel.device_need_bytes >= sel.device_peak_bytes >= 0.5 * sel.device_need_bytes
