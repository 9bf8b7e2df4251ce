"""ClipCov recipes: the paper's and the variants `clipcov study` compares, and the chosen one
(`clipcov_recipe`), read from the study's JSON.

A recipe is a plain dict (it goes into study.json as it is):
    objective     "clipcov" or "xcov"
    weights       select()'s weights on top of the objective's defaults ({} = the paper's)
    redundancy    "class": the engine's w_red / n_c (the paper's); "quota": w_red / q_c, per class
    classes       "proxy": the proxy's zero-shot labels over the class prompts; "kmeans": K clusters of
                  the pool's proxy image embeddings (no prompts, so no label term)
    clusters      K when classes is "kmeans"
  and the field's ideas inside ClipCov (optional keys; absent = the paper's):
    alignment     "clip_score" (the paper's easiness term <a_i, b_i>) or "negclip": negCLIPLoss (one batch of
                  the whole pool at the proxy's temperature) in its place, with the same weight
    normsim       w: a modular term w * NormSim-inf(a_i) to the fashion-val target (0: none)
    prefilter     f: ClipCov on the pool's top fraction f by negCLIPLoss (0: the whole pool)
  objective "negclip_balanced" is no ClipCov: negCLIPLoss's top pairs inside ClipCov's proportional quotas.
"""
import json
from pathlib import Path

import numpy as np

from .. import api, inputs
from ..baselines import classic, negclip
from ..baselines.common import ranked
from ..reference import DEFAULT_WEIGHTS

PAPER = {"objective": "clipcov", "weights": {}, "redundancy": "class", "classes": "proxy", "clusters": None}
FIELD_KEYS = {"alignment": "clip_score", "normsim": 0.0, "prefilter": 0.0}  # a recipe without them: these
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
    out.update({"negclip_alignment": {**PAPER, "alignment": "negclip"},
                "normsim_term": {**PAPER, "normsim": DEFAULT_WEIGHTS["clipcov"]["easiness"]},
                "negclip_prefilter": {**PAPER, "prefilter": negclip.PREFILTER},
                "negclip_balanced": {**PAPER, "objective": "negclip_balanced"}})
    return out


def _uses_negclip(r):
    return r["objective"] == "negclip_balanced" or r["alignment"] == "negclip" or bool(r["prefilter"])


def needs_field(recipe):
    """Whether a recipe needs the field's inputs (the proxy's temperature, the fashion-val target)."""
    r = {**FIELD_KEYS, **recipe}
    return _uses_negclip(r) or bool(r["normsim"])


def changes(recipe):
    """What a recipe changes from the paper's, in words ("nothing" for the paper's own)."""
    out = []
    r = {**FIELD_KEYS, **recipe}
    if r["objective"] == "negclip_balanced":
        return "negCLIPLoss's top pairs inside ClipCov's proportional class quotas (no ClipCov objective)"
    if r["alignment"] == "negclip":
        out.append("negCLIPLoss in place of CLIP score as the alignment (easiness) term")
    if r["normsim"]:
        out.append(f"plus {r['normsim']:g} x NormSim-inf to the fashion-val images as a modular term")
    if r["prefilter"]:
        out.append(f"ClipCov on the top {r['prefilter']:.0%} of the pool by negCLIPLoss")
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


def select(recipe, img, txt, k, *, labels, class_emb, num_threads=None, cluster_seed=0, field=None):
    """The indices a recipe picks: k pairs of the pool whose proxy embeddings are img, txt; `labels` and
    `class_emb` are the proxy's zero-shot classes and their prompt embeddings; `field`: experiment.field's
    inputs (target, temperature), for the recipes that take the field's scores."""
    r = {**FIELD_KEYS, **recipe}
    if needs_field(r) and field is None:
        raise ValueError(f"recipe {recipe} needs the field's inputs (the proxy's temperature and target)")
    neg = (negclip.negclip_loss_scores(img, txt, batch_size=len(img), repeats=1, temperature=field["temperature"],
                                       num_threads=num_threads) if _uses_negclip(r) else None)
    if r["objective"] == "negclip_balanced":
        return classic.top_per_class(neg, inputs.check_labels(labels, len(img)), inputs.resolve_k(k, len(img)))
    if r["prefilter"]:  # ClipCov on the negCLIPLoss top fraction (at least k pairs), indices mapped back
        k = inputs.resolve_k(k, len(img))
        keep = np.sort(ranked(neg)[:max(int(np.ceil(r["prefilter"] * len(img))), k)])
        inner = {**r, "prefilter": 0.0}
        picked = select(inner, np.asarray(img)[keep], np.asarray(txt)[keep], k, labels=np.asarray(labels)[keep],
                        class_emb=class_emb, num_threads=num_threads, cluster_seed=cluster_seed, field=field)
        return keep[picked]
    weights = dict(recipe["weights"])
    extra = None
    if r["alignment"] == "negclip":  # negCLIPLoss takes the easiness term's place and weight
        w_easy = weights.get("easiness", DEFAULT_WEIGHTS[r["objective"]]["easiness"])
        weights["easiness"] = 0.0
        extra = w_easy * neg
    if r["normsim"]:
        sim = r["normsim"] * negclip.normsim_scores(img, target=field["target"], p=float("inf"),
                                                     num_threads=num_threads)
        extra = sim if extra is None else extra + sim
    if r["classes"] == "kmeans":
        unit = np.asarray(img, dtype=np.float64)
        labels = kmeans(unit / np.linalg.norm(unit, axis=1, keepdims=True), r["clusters"], seed=cluster_seed)
        class_emb = None  # clusters have no prompts
    if r["redundancy"] == "quota":
        if extra is not None:
            raise ValueError("a quota-redundancy recipe takes no field term")
        return select_quota_redundancy(img, txt, k, labels, class_emb, weights, num_threads)
    return api.select(img, txt, k, objective=r["objective"], labels=labels, class_emb=class_emb,
                      weights=weights or None, budget="proportional", num_threads=num_threads,
                      device="cpu", extra_utility=extra).indices


def load(path):
    """The chosen recipe of a study's JSON: {"name", "recipe", "changes", ...}; a clear error without it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clipcov_recipe needs the study's result {path}: run `clipcov study --config "
                                f"quick --out {path.parent}` first, or point the config's `study` field at one")
    data = json.loads(path.read_text())
    chosen = data.get("chosen") if isinstance(data, dict) else None
    if not isinstance(chosen, dict) or set(PAPER) - set(chosen.get("recipe", {})):  # FIELD_KEYS may be absent
        raise ValueError(f"{path} holds no chosen recipe (a `chosen` object with name, recipe, changes)")
    return chosen
