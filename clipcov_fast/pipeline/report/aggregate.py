"""What a selection report shows, from arrays alone: per-class counts, score histograms of kept and dropped
rows, the classes and examples to show, and the comparison of two selections. Everything here is O(n) in
numpy (a 10M-row pool's labels and scores fit in memory; no n x n work)."""
import numpy as np

TOP_CLASSES = 20  # a pool with more classes shows its largest and smallest TOP_CLASSES, and a histogram
PER_GROUP = 4     # examples per group (top kept, last kept, first dropped, random dropped)


def counts(labels, indices):
    """(classes, pool count, kept count) of every class present in the pool, classes ascending."""
    classes, inv, pool = np.unique(labels, return_inverse=True, return_counts=True)
    kept = np.bincount(inv.ravel()[indices], minlength=len(classes))
    return classes, pool, kept


def composition(labels, indices, top=TOP_CLASSES):
    """The classes the bar chart shows (largest first; with more than 2 top classes, the top and the bottom
    `top` by pool size) and every class's kept fraction (for its histogram)."""
    classes, pool, kept = counts(labels, indices)
    order = np.lexsort((classes, -pool))  # size descending, ties by class id
    shown = order if len(order) <= 2 * top else np.concatenate([order[:top], order[-top:]])
    return {"classes": classes[shown], "pool": pool[shown], "kept": kept[shown], "all_classes": len(classes),
            "truncated": len(order) > 2 * top, "kept_fraction": kept / pool}


def histograms(scores, kept_mask, bins=40):
    """Histograms of `scores` over kept and dropped rows on shared edges (finite scores only)."""
    scores = np.asarray(scores, np.float64)
    ok = np.isfinite(scores)
    lo, hi = (float(scores[ok].min()), float(scores[ok].max())) if ok.any() else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    kept = np.histogram(scores[ok & kept_mask], edges)[0]
    dropped = np.histogram(scores[ok & ~kept_mask], edges)[0]
    return {"edges": edges, "kept": kept, "dropped": dropped}


def choose_classes(labels, indices, seed=0):
    """[(role, class)]: the largest class, the most cut of the others (smallest kept fraction among classes of
    at least two rows, then the larger), and a random other one (seeded); fewer when the pool has fewer."""
    classes, pool, kept = counts(labels, indices)
    largest = np.lexsort((classes, -pool))[0]
    out = [("the largest class", int(classes[largest]))]
    frac = kept / pool
    others = np.flatnonzero((pool >= 2) & (np.arange(len(classes)) != largest))
    if len(others):
        out.append(("the most cut class", int(classes[others[np.lexsort((classes[others], -pool[others],
                                                                         frac[others]))[0]]])))
    rest = [int(c) for c in classes if int(c) not in {c2 for _, c2 in out}]
    if rest:
        out.append(("a random class", int(np.random.default_rng(seed).choice(rest))))
    return out


def examples(labels, indices, rank_scores, cls, per=PER_GROUP, seed=0):
    """{group: rows} of class `cls`: the first and the last kept in pick order, the dropped rows with the
    largest rank score (ties to the smaller index), and a seeded random sample of the dropped."""
    labels = np.asarray(labels)
    indices = np.asarray(indices, np.int64)
    in_class = indices[labels[indices] == cls]  # kept, pick order
    kept = np.zeros(len(labels), bool)
    kept[indices] = True
    dropped = np.flatnonzero((labels == cls) & ~kept)
    s = np.asarray(rank_scores, np.float64)[dropped]
    best = dropped[np.lexsort((dropped, -s))][:per]
    rng = np.random.default_rng([seed, int(cls)])
    return {"top kept": in_class[:per].tolist(),
            "last kept": in_class[max(per, len(in_class) - per):].tolist(),
            "first dropped": best.tolist(),
            "random dropped": sorted(rng.choice(dropped, size=min(per, len(dropped)), replace=False).tolist())}


def compare(labels, a, b, per=2 * PER_GROUP):
    """Two selections of one pool: overlap, per-class kept counts of each, and the first rows (in each one's
    pick order) that one keeps and the other drops."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    in_a, in_b = np.isin(a, b), np.isin(b, a)
    classes, pool, kept_a = counts(labels, a)
    _, _, kept_b = counts(labels, b)
    return {"both": int(in_a.sum()), "only_a": int((~in_a).sum()), "only_b": int((~in_b).sum()),
            "classes": classes, "pool": pool, "kept_a": kept_a, "kept_b": kept_b,
            "a_not_b": a[~in_a][:per].tolist(), "b_not_a": b[~in_b][:per].tolist()}


def records(values, indices):
    """{record: (share of the pool, share of the subset)} of a per-row record column (e.g. 'noise')."""
    values = np.asarray(values, dtype=object)
    kinds, inv = np.unique(values.astype(str), return_inverse=True)
    pool = np.bincount(inv, minlength=len(kinds)) / max(1, len(values))
    sub = np.bincount(inv[indices], minlength=len(kinds)) / max(1, len(indices))
    return {str(k): (float(p), float(s)) for k, p, s in zip(kinds, pool, sub)}
