"""Every selector by one name: ClipCov and xcov through select(), the baselines beside them."""
import time

import numpy as np

from . import api, baselines, inputs
from .selection import Selection

METHODS = ("clipcov", "xcov", "random", "clip_score", "semdedup", "random_stratified", "clip_score_balanced",
           "clipcov_released")


def run_method(method, img, txt, k, *, labels=None, class_emb=None, budget="proportional", threshold=0.0,
               weights=None, seed=0, num_threads=None, device="auto"):
    """A Selection by `method` (baselines get labels too, for the per-class summary; their gains are NaN).

    random_stratified and clip_score_balanced take ClipCov's proportional quotas over `labels` (or the
    zero-shot classes of class_emb); clipcov_released is the released notebook's approximate greedy
    (baselines.released_greedy) started from ClipCov's utilities (api.terms, same weights)."""
    if method in ("clipcov", "xcov"):
        return api.select(img, txt, k, objective=method, labels=labels, class_emb=class_emb,
                          threshold=threshold, weights=weights, budget=budget, num_threads=num_threads,
                          device=device)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    t0 = time.perf_counter()
    n = len(img)
    k = inputs.resolve_k(k, n)
    if method in ("random_stratified", "clip_score_balanced", "clipcov_released"):
        t = api.terms(img, txt, labels=labels, class_emb=class_emb, threshold=threshold, weights=weights,
                      num_threads=num_threads)
        labels = t["labels"]
        if method == "random_stratified":
            idx = baselines.random_stratified(labels, k, seed=seed)
        elif method == "clip_score_balanced":
            idx = baselines.clip_score_balanced(img, txt, k, labels)
        else:
            idx = baselines.released_greedy(img, txt, k, labels, t["utility"], t["label"], threshold=threshold)
    elif method == "random":
        idx = baselines.random(n, k, seed=seed)
    elif method == "clip_score":
        idx = baselines.clip_score(img, txt, k)
    else:
        idx = baselines.semdedup(img, k, seed=seed)
    y = np.zeros(n, np.int64) if labels is None else inputs.check_labels(labels, n)
    timings = {"total": time.perf_counter() - t0}
    idx = np.asarray(idx, dtype=np.int64)
    return Selection(idx, np.full(len(idx), np.nan), float("nan"), y, k, n, method, "-", timings)
