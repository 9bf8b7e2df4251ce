"""ClipCov recipes: the paper's and the variants `clipcov study` compares, and the chosen one
(`clipcov_recipe`), read from the study's JSON.

A recipe is a plain dict (it goes into study.json as it is):
    objective     "clipcov" or "xcov"
    weights       select()'s weights on top of the objective's defaults ({} = the paper's)
    redundancy    "class": the engine's w_red / n_c (the paper's); "quota": w_red / q_c, per class
    classes       "proxy": the proxy's zero-shot labels over the class prompts; "kmeans": K clusters of
                  the pool's proxy image embeddings (no prompts, so no label term)
    clusters      K when classes is "kmeans"
"""
import json
from pathlib import Path

import numpy as np

from .. import api, inputs
from ..reference import DEFAULT_WEIGHTS

PAPER = {"objective": "clipcov", "weights": {}, "redundancy": "class", "classes": "proxy", "clusters": None}
CLUSTERS = (5, 10, 20, 50, 100)
BASELINE = "clipcov"
# ClipCov's own modular weights, switched on in xcov, whose defaults are 0
CLIPCOV_TERMS = {k: DEFAULT_WEIGHTS["clipcov"][k] for k in ("easiness", "label", "center")}


def candidates(clusters=CLUSTERS):
    """{name: recipe} of the study, the paper's recipe first (the baseline every other is paired with)."""
    out = {BASELINE: dict(PAPER),
           "redundancy_10": {**PAPER, "weights": {"redundancy": 10.0}},
           "redundancy_100": {**PAPER, "weights": {"redundancy": 100.0}},
           "redundancy_quota": {**PAPER, "redundancy": "quota"},
           "xcov_terms": {**PAPER, "objective": "xcov", "weights": dict(CLIPCOV_TERMS)}}
    for k in clusters:
        out[f"kmeans_{k}"] = {**PAPER, "classes": "kmeans", "clusters": int(k)}
    return out


def changes(recipe):
    """What a recipe changes from the paper's, in words ("nothing" for the paper's own)."""
    out = []
    if recipe["objective"] == "xcov":
        out.append("xcov (cross-covariance matching) instead of ClipCov's objective, with ClipCov's modular "
                   "weights " + ", ".join(f"{k} {v:g}" for k, v in recipe["weights"].items()))
    elif recipe["weights"]:
        out.append(", ".join(f"{k} weight {v:g}" for k, v in recipe["weights"].items()) +
                   " (paper: " + ", ".join(f"{DEFAULT_WEIGHTS['clipcov'][k]:g}" for k in recipe["weights"]) + ")")
    if recipe["redundancy"] == "quota":
        out.append("redundancy divided by the class quota q_c instead of the class size n_c")
    if recipe["classes"] == "kmeans":
        out.append(f"proxy classes = {recipe['clusters']} k-means clusters of the pool's proxy image "
                   "embeddings instead of zero-shot labels over the class prompts (no label term)")
    return "; ".join(out) or "nothing (the paper's recipe)"


def kmeans(x, k, seed=0, iters=100, restarts=4):
    """Cluster ids (n,) of the rows of x by Lloyd's k-means (k-means++ starts, `restarts` of them, the
    lowest inertia kept), numbered by first occurrence so the same partition gives the same labels."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"kmeans: k must be between 1 and the {n} rows, got {k}")
    rng = np.random.default_rng(seed)
    sq = np.einsum("ij,ij->i", x, x)
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centers = [x[rng.integers(n)]]
        d2 = np.maximum(sq - 2 * x @ centers[0] + centers[0] @ centers[0], 0)
        for _ in range(1, k):  # k-means++: the next centre with probability proportional to d^2
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1 / n)
            c = x[rng.choice(n, p=p)]
            centers.append(c)
            d2 = np.minimum(d2, np.maximum(sq - 2 * x @ c + c @ c, 0))
        C = np.array(centers)
        y = None
        for _ in range(iters):
            dist = sq[:, None] - 2 * x @ C.T + np.einsum("ij,ij->i", C, C)[None]
            new = np.argmin(dist, axis=1)
            if y is not None and np.array_equal(new, y):
                break
            y = new
            for c in range(k):
                members = y == c
                if members.any():
                    C[c] = x[members].mean(axis=0)
                else:  # an empty cluster restarts at the point farthest from its centre
                    far = int(np.argmax(dist[np.arange(n), y]))
                    C[c], y[far] = x[far], c
        inertia = float(np.sum((x - C[y]) ** 2))
        if inertia < best_inertia:
            best, best_inertia = y, inertia
    _, first = np.unique(best, return_index=True)
    order = np.argsort(np.argsort(first))  # cluster id -> rank of its first row
    return order[best].astype(np.int64)


def select_quota_redundancy(img, txt, k, labels, class_emb=None, weights=None, num_threads=None):
    """ClipCov's proportional greedy with class c's redundancy term divided by its quota q_c instead of
    its size n_c. The engine divides by n_c and takes one weight for all classes; classes never interact
    under proportional quotas (a pick lowers only its own class's gains), so class c's picks are those
    of a select() whose redundancy weight is w_red * n_c / q_c: one select() per distinct factor.
    Returns the picked indices (by class, each class in its pick order)."""
    w = dict(weights or {})
    w_red = w.pop("redundancy", DEFAULT_WEIGHTS["clipcov"]["redundancy"])
    y = inputs.check_labels(labels, len(img))
    classes, counts = np.unique(y, return_counts=True)
    k = inputs.resolve_k(k, len(y))
    quota = inputs.quotas(counts, k, "proportional")
    picks = {}
    factors = {}
    for c, m, q in zip(classes, counts, quota):
        if q:
            factors.setdefault(m / q, []).append(c)
    for factor, members in factors.items():
        sel = api.select(img, txt, k, labels=y, class_emb=class_emb, weights={**w, "redundancy": w_red * factor},
                         budget="proportional", num_threads=num_threads, device="cpu")
        for c in members:
            picks[c] = sel.indices[y[sel.indices] == c]
    return np.concatenate([picks[c] for c in classes if c in picks] or [np.zeros(0, np.int64)])


def select(recipe, img, txt, k, *, labels, class_emb, num_threads=None, cluster_seed=0):
    """The indices a recipe picks: k pairs of the pool whose proxy embeddings are img, txt; `labels` and
    `class_emb` are the proxy's zero-shot classes and their prompt embeddings."""
    if recipe["classes"] == "kmeans":
        unit = np.asarray(img, dtype=np.float64)
        labels = kmeans(unit / np.linalg.norm(unit, axis=1, keepdims=True), recipe["clusters"], seed=cluster_seed)
        class_emb = None  # clusters have no prompts
    if recipe["redundancy"] == "quota":
        return select_quota_redundancy(img, txt, k, labels, class_emb, recipe["weights"], num_threads)
    return api.select(img, txt, k, objective=recipe["objective"], labels=labels, class_emb=class_emb,
                      weights=recipe["weights"] or None, budget="proportional", num_threads=num_threads,
                      device="cpu").indices


def load(path):
    """The chosen recipe of a study's JSON: {"name", "recipe", "changes", ...}; a clear error without it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clipcov_recipe needs the study's result {path}: run `clipcov study --config "
                                f"quick --out {path.parent}` first, or point the config's `study` field at one")
    data = json.loads(path.read_text())
    chosen = data.get("chosen") if isinstance(data, dict) else None
    if not isinstance(chosen, dict) or set(PAPER) - set(chosen.get("recipe", {})):
        raise ValueError(f"{path} holds no chosen recipe (a `chosen` object with name, recipe, changes)")
    return chosen
