"""The heavy scores' one primitive: reductions of S = scale * A Bᵀ by rows (and columns), tiled in C++
(csrc/cpu/reduce.cpp: float32 products, float64 sums, never the m x p block), over A in row chunks so
that memory stays bounded by a chunk, B and the outputs."""
import os

import numpy as np

CHUNK = 1 << 16  # rows of A handed to the engine at a time


def threads(num_threads=None):
    if num_threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, int(num_threads))


def _f32(x):
    return np.ascontiguousarray(x, dtype=np.float32)


def row_max(A, B, absolute=False, num_threads=None):
    """(max_j S_ij, first argmax j) for every row of A (S = A Bᵀ; |S| with absolute)."""
    from .. import _core

    B = _f32(B)
    mx, arg = np.empty(len(A), np.float32), np.empty(len(A), np.int64)
    for s in range(0, len(A), CHUNK):
        out = _core.reduce_block(_f32(A[s:s + CHUNK]), B, 1.0, row_max=True, abs_max=absolute,
                                 threads=threads(num_threads))
        mx[s:s + CHUNK], arg[s:s + CHUNK] = out["row_max"], out["row_arg"]
    return mx, arg


def lse_rows_cols(A, B, scale, num_threads=None):
    """(log sum_j exp(scale S_ij) for every row, log sum_i exp(scale S_ij) for every column), S = A Bᵀ: one
    block (a negCLIPLoss batch), float64 sums."""
    from .. import _core

    out = _core.reduce_block(_f32(A), _f32(B), float(scale), row_lse=True, col_lse=True, threads=threads(num_threads))
    return out["row_lse"], out["col_lse"]


def max_before(X, num_threads=None):
    """For each row i of X (in its order), max_{j < i} <x_i, x_j> (-inf for the first row)."""
    from .. import _core

    X = _f32(X)
    return _core.reduce_block(X, X, 1.0, row_max=True, before=True, threads=threads(num_threads))["row_max"]
