"""What every baseline shares: checked inputs, rows read in chunks (normalized), rankings, parameters."""
import logging
import numbers

import numpy as np

from ..inputs import CHUNK_ROWS, as_matrix, check_finite_rows, resolve_k

log = logging.getLogger("clipcov_fast.baselines")


def int_arg(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def float_arg(value, name, low=None, high=None, low_open=False):
    """A finite number in [low, high] (or (low, high] with low_open)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and np.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        where = f"in {'(' if low_open else '['}{low}, {high}]" if high is not None else f"{'>' if low_open else '>='} {low}"
        raise ValueError(f"{name} must be a number {where}, got {value!r}")
    return float(value)


def checked(X, name, normalize):
    """Validated (n, d) float array; raises on NaN/Inf (and zero rows when normalizing)."""
    X = as_matrix(X, name)
    for start in range(0, len(X), CHUNK_ROWS):
        check_finite_rows(np.asarray(X[start:start + CHUNK_ROWS]), name, start, normalize)
    return X


def checked_pair(emb_img, emb_txt, normalize):
    A, B = checked(emb_img, "emb_img", normalize), checked(emb_txt, "emb_txt", normalize)
    if A.shape != B.shape:
        raise ValueError(f"emb_img and emb_txt must have the same shape, got {A.shape} and {B.shape}")
    return A, B


def checked_target(target, d, name="target"):
    """The target's rows (image embeddings of the downstream data), normalized, float64; refused when empty,
    of another width, or with a NaN/Inf or all-zero row."""
    if target is None:
        raise ValueError(f"{name} is required: (m, d) image embeddings of the target data (--target FILE.npy)")
    T = as_matrix(target, name)
    if T.shape[1] != d:
        raise ValueError(f"{name} must have d = {d} columns like the pool, got shape {T.shape}")
    if len(T) == 0:
        raise ValueError(f"{name} must have at least one row")
    T = np.asarray(T, dtype=np.float64)
    check_finite_rows(T, name, 0, True)
    return T / np.linalg.norm(T, axis=1, keepdims=True)


def rows(X, start, stop, normalize, dtype=np.float64):
    """Rows start..stop of X in float64 (normalized when asked), then as dtype."""
    x = np.asarray(X[start:stop], dtype=np.float64)
    if normalize:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype, copy=False)


def rows_at(X, idx, normalize, dtype=np.float64):
    """Rows idx (any order) of X, as rows() does, CHUNK_ROWS at a time (a float32 result never holds the
    float64 copy of all of them)."""
    idx = np.asarray(idx, np.int64)
    order = np.argsort(idx, kind="stable")
    out = np.empty((len(idx), X.shape[1]), dtype)
    for s in range(0, len(idx), CHUNK_ROWS):
        at = order[s:s + CHUNK_ROWS]  # read in ascending row order, written back where asked
        x = np.asarray(X[idx[at]], dtype=np.float64)
        if normalize:
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
        out[at] = x
    return out


def ranked(scores, idx=None):
    """idx (default: all rows) by score descending, ties to the smaller index."""
    scores = np.asarray(scores, dtype=np.float64)
    idx = np.arange(len(scores)) if idx is None else np.asarray(idx, np.int64)
    return idx[np.lexsort((idx, -scores[idx]))].astype(np.int64)


def top_k(scores, k):
    """The k rows of largest score, in that order (ties to the smaller index)."""
    return ranked(scores)[:resolve_k(k, len(scores))]


def set_to_k(kept, rank_scores, k, rule):
    """A rule's kept set as exactly k rows: the set ranked by `rank_scores` (CLIP score), cut to k, or topped
    up with the best-ranked rows outside it; logs which. k None: the whole set, ranked."""
    kept = np.asarray(kept, np.int64)
    inside = ranked(rank_scores, kept)
    if k is None:
        return inside
    k = resolve_k(k, len(rank_scores))
    if len(inside) >= k:
        log.info("%s keeps %d rows; cut to k = %d by CLIP score", rule, len(inside), k)
        return inside[:k]
    outside = np.setdiff1d(np.arange(len(rank_scores)), kept, assume_unique=True)
    log.info("%s keeps %d rows; topped up to k = %d with the %d best by CLIP score outside it", rule,
             len(inside), k, k - len(inside))
    return np.concatenate([inside, ranked(rank_scores, outside)[:k - len(inside)]])
