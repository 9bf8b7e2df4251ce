"""Input checking and conversion for the public API.

Every error names the argument and says what is wrong. Arrays are viewed, not copied, where numpy
allows it (memory maps and torch CPU tensors included); large inputs are read in row chunks.
"""
import mmap
import numbers

import numpy as np

from .reference import DEFAULT_WEIGHTS

CHUNK_ROWS = 1 << 15
OBJECTIVES = ("clipcov", "xcov")
BUDGETS = ("proportional", "global")
DEVICES = ("auto", "cpu", "cuda")
# the C++ engine's load() problem codes (csrc/cpu/engine.hpp, LoadProblem): which input, what is wrong
LOAD_PROBLEMS = {1: ("image", "a NaN or Inf"), 2: ("caption", "a NaN or Inf"),
                 3: ("image", "an all-zero row (cannot be normalized)"),
                 4: ("caption", "an all-zero row (cannot be normalized)"),
                 5: ("image", "a row too large for float32 (norm over 2^63; normalize=False keeps rows as given)"),
                 6: ("caption", "a row too large for float32 (norm over 2^63; normalize=False keeps rows as given)")}


def native(arr):
    """arr in this machine's byte order (the C++ engine reads only that): itself, or a converted copy."""
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def as_matrix(x, name):
    """A 2-D float16/32/64 numpy view of x (torch tensors and __array__ objects accepted)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor
        x = x.detach()
        if getattr(x, "is_cuda", False):
            x = x.cpu()
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16: upcast exactly
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - anything numpy cannot read
        raise TypeError(f"{name} must be an array of shape (n, d), got {type(x).__name__}") from e
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8):
        raise TypeError(f"{name} must hold float16, float32 or float64 numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n, d), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {arr.shape}")
    return native(arr)


def resolve_k(k, n):
    """k as an int in [0, n]; a float in (0, 1) is a fraction of n, rounded down."""
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise TypeError(f"k must be an int or a float fraction in (0, 1), got {k!r}")
    if isinstance(k, numbers.Integral):
        k = int(k)
    elif 0.0 < float(k) < 1.0:
        k = int(np.floor(float(k) * n))
    else:
        raise ValueError(f"k as a float must be a fraction in (0, 1), got {k!r}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n = {n}, got {k}")
    return k


def resolve_weights(objective, weights, threshold):
    """Full weight dict for the objective; unknown keys and misuse are errors."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    w = dict(DEFAULT_WEIGHTS[objective])
    given = dict(weights or {})
    allowed = set(DEFAULT_WEIGHTS["clipcov"])
    unknown = set(given) - allowed
    if unknown:
        raise ValueError(f"weights has unknown key(s) {sorted(unknown)}; known: {sorted(allowed)}")
    if objective == "xcov":
        bad = sorted(set(given) & {"coverage", "redundancy"})
        if bad:
            raise ValueError(f"weights {bad} do not apply to objective='xcov' (only easiness, label, center)")
        if threshold != 0:
            raise ValueError(f"threshold does not apply to objective='xcov', got {threshold}")
    elif threshold < 0:
        raise ValueError(f"threshold must be >= 0 (the objective is submodular only then), got {threshold}")
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"weights[{key!r}] must be a finite number, got {value!r}")
        w[key] = float(value)
    if w.get("redundancy", 0.0) < 0:
        raise ValueError(f"weights['redundancy'] must be >= 0, got {w['redundancy']}")
    return {key: w.get(key, 0.0) for key in allowed}


def checked(emb_img, emb_txt, labels, class_emb, normalize):
    """Checked arrays, proxy labels, and the label-similarity term."""
    A = as_matrix(emb_img, "emb_img")
    B = as_matrix(emb_txt, "emb_txt")
    if A.shape != B.shape:
        raise ValueError(f"emb_img and emb_txt must have the same shape, got {A.shape} and {B.shape}")
    n, d = A.shape
    T = None if class_emb is None else check_class_emb(class_emb, d, normalize)
    if labels is not None:
        y = check_labels(labels, n, None if T is None else len(T))
    elif T is not None:
        y = zero_shot_labels(A, T, normalize)
    else:
        y = np.zeros(n, dtype=np.int64)
    label_sim = label_similarity(B, T, y, normalize) if T is not None else np.zeros(n)
    return A, B, y, label_sim


def check_extra_utility(values, n):
    """select()'s extra_utility as a float64 array of n finite values."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"extra_utility must have one value per pair, shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"extra_utility has a non-finite value at row {int(np.flatnonzero(~np.isfinite(arr))[0])}")
    return arr


def check_labels(labels, n, n_classes=None):
    """labels as an int64 array of length n with values in [0, n_classes) (n_classes: class_emb rows)."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"labels must be a 1-D array of length n = {n}, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"labels must hold integers, got dtype {arr.dtype}")
    if n and arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:  # would wrap to a negative class
        raise ValueError(f"labels has class {arr.max()} at row {int(np.argmax(arr))}, beyond the int64 range "
                         "of class ids")
    if n and arr.min() < 0:
        raise ValueError(f"labels must be >= 0, got {arr.min()} at row {int(np.argmin(arr))}")
    if n_classes is not None and n and arr.max() >= n_classes:
        raise ValueError(f"labels has class {arr.max()} at row {int(np.argmax(arr))}, but class_emb "
                         f"has only {n_classes} rows")
    return arr.astype(np.int64, copy=False)


def check_finite_rows(chunk, name, start, normalize):
    """Raise on the first row with NaN/Inf (or zero norm when normalizing)."""
    bad = ~np.isfinite(chunk).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} has a NaN or Inf in row {start + int(np.argmax(bad))}")
    if normalize:
        zero = ~np.any(chunk != 0, axis=1)
        if zero.any():
            raise ValueError(f"{name} has an all-zero row {start + int(np.argmax(zero))}; "
                             "it cannot be normalized (pass normalize=False or drop it)")


def check_class_emb(class_emb, d, normalize):
    T = as_matrix(class_emb, "class_emb").astype(np.float64)
    if T.shape[1] != d:
        raise ValueError(f"class_emb must have d = {d} columns like emb_img, got shape {T.shape}")
    if len(T) == 0:
        raise ValueError("class_emb must have at least one row")
    check_finite_rows(T, "class_emb", 0, normalize)
    return T / np.linalg.norm(T, axis=1, keepdims=True) if normalize else T


def _rows64(X, start, stop, normalize):
    x = np.asarray(X[start:stop], dtype=np.float64)
    if not normalize:
        return x
    with np.errstate(over="ignore", under="ignore"):
        norm = np.linalg.norm(x, axis=1, keepdims=True)
    odd = ~np.isfinite(norm[:, 0]) | (norm[:, 0] < 2.0 ** -450)  # the squares over- or underflowed
    if odd.any():  # those rows: divided by their largest magnitude first (as the engine does)
        m = np.abs(x[odd]).max(axis=1, keepdims=True)
        norm[odd] = m * np.linalg.norm(x[odd] / m, axis=1, keepdims=True)
    return x / norm


def zero_shot_labels(A, T, normalize):
    """y_i = argmax_c <a_i, t_c>, ties to the smallest c, in float64 exactly where it matters.

    float32 products pick the class; rows whose top two scores are within the float32 error bound
    are redone in float64 so that the decision equals the float64 definition.
    """
    n, d = A.shape
    T32 = T.astype(np.float32)
    y = np.empty(n, dtype=np.int64)
    band = (d + 8) * 2.0 ** -23 * np.abs(T).sum(axis=1).max() if not normalize else (d + 8) * 2.0 ** -22
    for start in range(0, n, CHUNK_ROWS):
        stop = min(n, start + CHUNK_ROWS)
        check_finite_rows(np.asarray(A[start:stop]), "emb_img", start, normalize)
        a = _rows64(A, start, stop, normalize)
        scores = a.astype(np.float32) @ T32.T
        y[start:stop] = np.argmax(scores, axis=1)
        if T.shape[0] > 1:
            top2 = -np.partition(-scores, 1, axis=1)[:, :2]
            scale = 1.0 if normalize else np.abs(a).max(axis=1) * d
            close = np.flatnonzero(top2[:, 0] - top2[:, 1] <= band * scale)
            if len(close):
                y[start + close] = np.argmax(a[close] @ T.T, axis=1)
    return y


def label_similarity(B, T, y, normalize):
    """ls_i = <b_i, t_{y_i}> in float64, chunked."""
    n = len(B)
    out = np.empty(n)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(n, start + CHUNK_ROWS)
        check_finite_rows(np.asarray(B[start:stop]), "emb_txt", start, normalize)
        out[start:stop] = np.einsum("ij,ij->i", _rows64(B, start, stop, normalize), T[y[start:stop]])
    return out


def quotas(counts, k, budget):
    """Per-class pick limits: proportional (largest remainders, ties to the smaller class) or global."""
    counts = np.asarray(counts, dtype=np.int64)
    if budget == "global":
        return counts.copy()
    n = int(counts.sum())
    q = (k * counts) // n
    rem = (k * counts) % n
    left = k - int(q.sum())
    order = np.lexsort((np.arange(len(counts)), -rem))  # remainder desc, then class id asc
    q[order[:left]] += 1
    return q


def release_pages(view):
    """Drop the resident pages of a read-only memory map after reading them (keeps RSS low).

    Only for mode 'r' memory maps, where the file keeps the data; never for anonymous memory.
    """
    base = view
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    if base is None or base.mode != "r":
        return
    start = view.__array_interface__["data"][0]
    stop = start + view.nbytes
    page = mmap.PAGESIZE
    lo, hi = -(-start // page) * page, (stop // page) * page
    if hi > lo:
        _madvise(lo, hi - lo)


def _madvise(addr, length):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise(ctypes.c_void_p(addr), ctypes.c_size_t(length), 4)  # MADV_DONTNEED
