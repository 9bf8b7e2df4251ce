"""Run one selector once in this process and print a JSON line: seconds and peak memory.

    python bench/measure.py METHOD POOL_DIR K [--classes]

METHOD: clipcov | xcov | reference | apricot | submodlib. POOL_DIR holds img.npy, txt.npy,
labels.npy (clipcov_fast.synthetic.write_pool). Inputs are opened as memory maps. Peak memory is
the process high-water mark (VmHWM, file-backed pages of the memory maps included) and its growth
over the baseline taken after the inputs were opened.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np


def _status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def dense_kernel(A, B):
    """The one-class ClipCov problem as the peers' dense graph-cut kernel (docs/peers.md):
    K_ij = w_ij off the diagonal, K_ii = 2 w_ii, with w = s+ + s+^T, s = A B^T on unit rows."""
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    s = A @ B.T
    np.maximum(s, 0, out=s)
    K = s + s.T
    K[np.diag_indices_from(K)] *= 2
    return K


STAGES = {}


def selector(method):
    """Import (and warm up) a method before the clock starts; return fn(A, B, k, labels) -> picks."""
    if method in ("clipcov", "xcov"):
        import clipcov_fast as cc

        def run_engine(A, B, k, labels):
            sel = cc.select(A, B, k, objective=method, labels=labels)
            STAGES.update(sel.timings)  # where the time went: load, terms, greedy
            return sel.indices

        return run_engine
    if method == "reference":
        from clipcov_fast import reference

        return lambda A, B, k, labels: reference.select(np.asarray(A, np.float64), np.asarray(B, np.float64), k,
                                                        labels=labels)[0]
    if method == "apricot":
        from apricot import GraphCutSelection

        def run_apricot(A, B, k, labels):
            K = dense_kernel(np.asarray(A, np.float32), np.asarray(B, np.float32))
            return GraphCutSelection(k, metric="precomputed", alpha=2, optimizer="naive").fit(K).ranking

        run_apricot(np.eye(8, 4) + 1, np.eye(8, 4) + 1, 2, None)  # numba compiles on first use: not timed
        return run_apricot
    if method == "submodlib":
        from submodlib import GraphCutFunction

        def run_submodlib(A, B, k, labels):
            K = dense_kernel(np.asarray(A, np.float32), np.asarray(B, np.float32))
            f = GraphCutFunction(n=len(K), mode="dense", ggsijs=K, lambdaVal=0.5)
            return [i for i, _ in f.maximize(budget=k, optimizer="NaiveGreedy", show_progress=False)]

        return run_submodlib
    raise SystemExit(f"unknown method {method}")


def run(method, pool, k):
    A = np.load(pool / "img.npy", mmap_mode="r")
    B = np.load(pool / "txt.npy", mmap_mode="r")
    labels = np.load(pool / "labels.npy")
    labels = labels if len(np.unique(labels)) > 1 else None
    fn = selector(method)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _status("VmRSS")
    t0 = time.perf_counter()
    picks = fn(A, B, k, labels)
    seconds = time.perf_counter() - t0
    return {"method": method, "n": len(A), "d": A.shape[1], "k": int(k), "seconds": seconds,
            "peak_bytes": _status("VmHWM"), "peak_growth_bytes": _status("VmHWM") - base,
            "input_fp32_bytes": 2 * A.size * 4, "stages_s": dict(STAGES),
            "picks": [int(i) for i in np.asarray(picks)[:20]]}


if __name__ == "__main__":
    method, pool, k = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(run(method, pool, k)))
