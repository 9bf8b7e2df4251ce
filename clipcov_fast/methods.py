"""Every selector by one name: ClipCov and xcov through select(), the baselines beside them."""
import time

import numpy as np

from . import api, baselines, inputs
from .selection import Selection

METHODS = ("clipcov", "xcov", "random", "clip_score", "semdedup")


def run_method(method, img, txt, k, *, labels=None, class_emb=None, budget="proportional", threshold=0.0,
               weights=None, seed=0, num_threads=None, device="auto"):
    """A Selection by `method` (baselines get labels too, for the per-class summary; their gains are NaN)."""
    if method in ("clipcov", "xcov"):
        return api.select(img, txt, k, objective=method, labels=labels, class_emb=class_emb,
                          threshold=threshold, weights=weights, budget=budget, num_threads=num_threads,
                          device=device)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    t0 = time.perf_counter()
    n = len(img)
    k = inputs.resolve_k(k, n)
    if method == "random":
        idx = baselines.random(n, k, seed=seed)
    elif method == "clip_score":
        idx = baselines.clip_score(img, txt, k)
    else:
        idx = baselines.semdedup(img, k, seed=seed)
    y = np.zeros(n, np.int64) if labels is None else inputs.check_labels(labels, n)
    timings = {"total": time.perf_counter() - t0}
    idx = np.asarray(idx, dtype=np.int64)
    return Selection(idx, np.full(len(idx), np.nan), float("nan"), y, k, n, method, "-", timings)
