"""Paired comparisons of methods against one reference, by seed: paired-t intervals and Holm's correction.

Students of the same seed share their initialization, so the comparison is paired: for each seed s
present in both, d_s = score(method, s) - score(reference, s). A difference is *resolved* when its
Holm-adjusted two-sided p-value (over the methods compared at one budget) is below 1 - level.
"""
import numpy as np


def paired_t(d, level=0.95):
    """Mean of the paired differences d, its two-sided `level` t interval and p-value (H0: mean 0).
    Fewer than 2 differences: no interval (None, None) and p = 1. Zero spread: the interval is the mean
    and p is 0 (or 1 when the mean is 0)."""
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        return {"n": n, "mean": mean, "low": None, "high": None, "p": 1.0}
    se = float(d.std(ddof=1)) / np.sqrt(n)
    if se == 0:
        return {"n": n, "mean": mean, "low": mean, "high": mean, "p": 0.0 if mean else 1.0}
    from scipy import stats  # the [clip] extra's (experiment) dependency; the core CLI must start without it

    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half, "p": p}


def holm(p):
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest of m is multiplied by
    (m - i + 1), then made non-decreasing in that order and capped at 1."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def compare(students, reference="clipcov", metric="top1", level=0.95, whole=("full", "proxy_data")):
    """For every budget and method other than `reference`: its paired difference from the reference
    (method minus reference, by seed), with Holm's correction over the methods of that budget. Methods
    in `whole` (one student per seed, budget 1.0) are compared with the reference at every budget.
    Returns [{"budget", "method", "n", "mean", "low", "high", "p", "p_holm", "resolved"}]."""
    score = {(s["method"], s["budget"], s["seed"]): s[metric] for s in students}
    budgets = sorted({b for m, b, _ in score if m == reference})
    methods = sorted({m for m, _, _ in score if m != reference})
    out = []
    for b in budgets:
        rows = []
        for m in methods:
            mb = 1.0 if m in whole else b
            seeds = sorted(s for mm, bb, s in score if mm == m and bb == mb and (reference, b, s) in score)
            if seeds:
                d = [score[(m, mb, s)] - score[(reference, b, s)] for s in seeds]
                rows.append({"budget": b, "method": m, **paired_t(d, level)})
        for r, q in zip(rows, holm([r["p"] for r in rows])):
            r["p_holm"] = q
            r["resolved"] = bool(q < 1 - level)
        out += rows
    return out
