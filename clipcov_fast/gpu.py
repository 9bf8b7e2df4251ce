"""CUDA dispatch: is a GPU usable, and the full selection on it.

Inputs stay where they are: numpy arrays (and CPU tensors) are copied to the GPU once; torch CUDA
tensors and cupy arrays are read in place through __cuda_array_interface__ (no host round trip).
The pick-deciding arithmetic is float64 except the coverage tiles (float32 FMA with float64 sums
and a float64 recheck near the threshold); docs/gpu.md gives the argument.
"""
import functools
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from . import inputs
from .selection import Selection

# Set to True only with a passing GPU run recorded in docs/benchmarks.md (bench/gpu_check.sh): until
# then device="auto" stays on the CPU engine and device="cuda" warns.
GPU_VERIFIED = False

_DTYPES = {"<f2": 2, "<f4": 4, "<f8": 8}


@functools.lru_cache(maxsize=1)  # once per process
def warn_if_unverified():
    if not GPU_VERIFIED:
        warnings.warn("the CUDA backend has not yet passed a recorded GPU run (docs/gpu.md); "
                      "device='auto' uses the CPU engine until it has", RuntimeWarning, stacklevel=4)


@functools.lru_cache(maxsize=1)  # asked on every select(device="auto"); the answer does not change
def available():
    """(True, description) when the CUDA module is built and a GPU answers, else (False, reason)."""
    try:
        from . import _cuda
    except ImportError as e:
        return False, f"clipcov_fast was built without its CUDA module ({e}); rebuild with CLIPCOV_CUDA=ON"
    try:
        count = _cuda.device_count()
    except RuntimeError as e:
        if not _nvidia_driver_loaded():  # the usual case on a CPU machine: not a broken driver
            return False, "this machine has no NVIDIA GPU (no NVIDIA driver is loaded)"
        return False, f"an NVIDIA driver is loaded, but CUDA cannot use it: {e}"
    if count == 0:
        return False, "no CUDA GPU is visible"
    return True, f"{count} CUDA device(s)"


def _nvidia_driver_loaded():
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def _is_torch(x):
    return type(x).__module__.split(".")[0] == "torch"


def on_gpu(x):
    """True for a torch CUDA tensor or any array with __cuda_array_interface__ (cupy, numba)."""
    if _is_torch(x):
        return bool(x.is_cuda)
    return hasattr(x, "__cuda_array_interface__")


def _prepare_device(x, name):
    """A 2-D float device array with contiguous rows, and its description for the engine."""
    if _is_torch(x):
        x = x.detach()
        if str(x.dtype) == "torch.bfloat16":  # upcast exactly; the interface has no bfloat16
            x = x.float()
        if x.dim() == 2 and x.shape[1] > 0 and x.stride(1) != 1:
            x = x.contiguous()
    cai = x.__cuda_array_interface__
    shape, typestr = tuple(cai["shape"]), cai["typestr"]
    if typestr not in _DTYPES:
        raise TypeError(f"{name} must hold float16, float32 or float64 numbers, got typestr {typestr!r}")
    if len(shape) != 2 or shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D array of shape (n, d) with d >= 1, got shape {shape}")
    item = _DTYPES[typestr]
    strides = cai.get("strides") or (shape[1] * item, item)
    if strides[1] != item or strides[0] < shape[1] * item:
        if _is_torch(x):
            x = x.contiguous()
        else:
            import cupy

            x = cupy.ascontiguousarray(x)
        return _prepare_device(x, name)
    return x, (int(cai["data"][0]), shape[0], shape[1], int(strides[0]), item)


def _to_host(x):
    if _is_torch(x):
        return x.detach().cpu().numpy()
    if hasattr(x, "get") and on_gpu(x):  # cupy
        return x.get()
    return np.asarray(x)


def _f64(x):
    return x.double() if _is_torch(x) else x.astype("float64")


def _like(x, host):
    """host array moved to x's device with x's library."""
    if _is_torch(x):
        import torch

        return torch.as_tensor(host, device=x.device)
    import cupy

    return cupy.asarray(host)


def _device_labels(A, B, labels, class_emb, normalize):
    """Proxy labels and label similarity for device inputs, in float64 on the GPU."""
    n, d = A.shape
    T = None if class_emb is None else inputs.check_class_emb(_to_host(class_emb), d, normalize)
    if labels is not None:
        y = inputs.check_labels(_to_host(labels), n, None if T is None else len(T))
    elif T is None:
        y = np.zeros(n, dtype=np.int64)
    else:
        y = np.empty(n, dtype=np.int64)
    label_sim = np.zeros(n)
    if T is None:
        return y, label_sim
    Tg = _like(A, T)

    def rows(X, s, e):
        r = _f64(X[s:e])
        return r / ((r * r).sum(1) ** 0.5)[:, None] if normalize else r

    for s in range(0, n, inputs.CHUNK_ROWS):
        e = min(n, s + inputs.CHUNK_ROWS)
        if labels is None:  # float64 scores, first maximum: the reference's rule
            y[s:e] = _to_host((rows(A, s, e) @ Tg.T).argmax(1))
        label_sim[s:e] = _to_host((rows(B, s, e) * Tg[_like(A, y[s:e])]).sum(1))
    return y, label_sim


def _same_dtype(A, B):
    if A.dtype == B.dtype:
        return A, B
    wide = A if A.dtype.itemsize > B.dtype.itemsize else B
    if isinstance(A, np.ndarray):
        return A.astype(wide.dtype), B.astype(wide.dtype)
    return (A.to(wide.dtype), B.to(wide.dtype)) if _is_torch(A) else (A.astype(wide.dtype), B.astype(wide.dtype))


def _release_torch_cache():
    """Hand torch's cached, unused GPU blocks back to the driver, so that the engine's memory check sees
    them as free; returns the bytes torch's live tensors still hold (0 without torch on the GPU)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return 0
    torch.cuda.empty_cache()
    return int(torch.cuda.memory_allocated())


def select(emb_img, emb_txt, k, *, objective, labels, class_emb, threshold, weights, budget, normalize):
    """The whole selection on the GPU; returns a Selection."""
    from . import _cuda

    t0 = time.perf_counter()
    w = inputs.resolve_weights(objective, weights, threshold)
    if on_gpu(emb_img) != on_gpu(emb_txt):
        raise TypeError("emb_img and emb_txt must both be on the GPU or both on the host")
    if on_gpu(emb_img):
        A, a_desc = _prepare_device(emb_img, "emb_img")
        B, b_desc = _prepare_device(emb_txt, "emb_txt")
        if a_desc[1:3] != b_desc[1:3]:
            raise ValueError(f"emb_img and emb_txt must have the same shape, got {a_desc[1:3]} and {b_desc[1:3]}")
        if a_desc[4] != b_desc[4]:
            A, B = _same_dtype(A, B)
            (A, a_desc), (B, b_desc) = _prepare_device(A, "emb_img"), _prepare_device(B, "emb_txt")
        y, label_sim = _device_labels(A, B, labels, class_emb, normalize)
    else:
        A, B, y, label_sim = inputs.checked(emb_img, emb_txt, labels, class_emb, normalize)
        A, B = _same_dtype(A, B)
        a_desc, b_desc = (np.ascontiguousarray(A) if A.strides[1] != A.itemsize or A.strides[0] < 0 else A,
                          np.ascontiguousarray(B) if B.strides[1] != B.itemsize or B.strides[0] < 0 else B)
    n = len(y)
    k = inputs.resolve_k(k, n)
    timings = {"inputs": time.perf_counter() - t0}
    if n == 0:
        return Selection(np.zeros(0, np.int64), np.zeros(0), 0.0, y, 0, 0, objective, budget, timings)
    t1 = time.perf_counter()
    classes, dense, counts = np.unique(y, return_inverse=True, return_counts=True)  # on the host, for now
    order = np.argsort(dense, kind="stable").astype(np.int64)
    class_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    timings["sort"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    _cuda.reset_peak()
    torch_held = _release_torch_cache()
    eng = _cuda.Engine(order, class_ptr, int(A.shape[1]), bool(normalize), objective)
    try:
        eng.set_inputs(a_desc, b_desc)
    except MemoryError as e:
        if torch_held:
            raise type(e)(f"{e}; torch's live tensors hold {torch_held} bytes on this GPU "
                              "(its cache was released first)") from e
        raise
    timings["load"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    row, what = eng.prepare(k, float(threshold), w["coverage"], w["easiness"], w["center"],
                            w["redundancy"], w["label"] * label_sim)
    if what:
        name, problem = {1: ("emb_img", "a NaN or Inf"), 2: ("emb_txt", "a NaN or Inf"),
                         3: ("emb_img", "an all-zero row (cannot be normalized)"),
                         4: ("emb_txt", "an all-zero row (cannot be normalized)")}[what]
        raise ValueError(f"{name} has {problem} in row {row}")
    timings["terms"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    idx, gains = eng.greedy(inputs.quotas(counts, k, budget), k, budget == "global")
    timings["greedy"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    sel = Selection(idx, gains, float(np.sum(gains)), y, k, n, objective, budget, timings)
    sel.device_peak_bytes = int(_cuda.peak_bytes())  # the engine's own buffers (inputs it borrowed excluded)
    sel.device_need_bytes = int(eng.memory_need)  # what the memory check counted for them
    return sel
