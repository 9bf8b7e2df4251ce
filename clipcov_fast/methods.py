"""Every selector by one name: ClipCov and xcov through select(), the baselines beside them, each with what it
needs (a target, captions, an entries file) and the parameters it takes."""
import time
from dataclasses import dataclass

import numpy as np

from . import api, baselines, inputs
from .baselines import common, metaclip, negclip
from .selection import Selection


@dataclass(frozen=True)
class Method:
    name: str
    needs: tuple = ()        # of "target", "captions", "entries"
    params: tuple = ()       # keyword parameters it reads (run_method's **params)
    k_optional: bool = False  # a rule that defines a set: without k, the whole set
    summary: str = ""


NEGCLIP = ("batch_size", "repeats", "temperature")
REGISTRY = {m.name: m for m in (
    Method("clipcov", summary="ClipCov: the exact greedy of the paper's objective"),
    Method("xcov", summary="the cross-covariance objective alone"),
    Method("random", summary="uniform without replacement"),
    Method("clip_score", params=("fraction", "score_threshold"), k_optional=True,
           summary="top k by CLIP score, or DataComp's fraction / threshold"),
    Method("semdedup", params=("n_clusters",), summary="SemDeDup: fewest near-duplicates"),
    Method("random_stratified", summary="random inside ClipCov's class quotas"),
    Method("clip_score_balanced", summary="CLIP score inside ClipCov's class quotas"),
    Method("clipcov_released", summary="the authors' released approximate greedy"),
    Method("negclip_loss", params=NEGCLIP, summary="negCLIPLoss (Wang et al. 2024)"),
    Method("normsim", needs=("target",), params=("p",), summary="NormSim_p to a target (Wang et al. 2024)"),
    Method("negclip_normsim", needs=("target",), params=NEGCLIP + ("p", "prefilter"),
           summary="negCLIPLoss top prefilter, then NormSim (the paper's best)"),
    Method("image_based", needs=("target",), params=("centroids", "n_clusters"), k_optional=True,
           summary="DataComp's image-based clustering filter"),
    Method("image_based_clip_score", needs=("target",), params=("centroids", "n_clusters", "fraction",
                                                                 "score_threshold"), k_optional=True,
           summary="DataComp's image-based filter intersected with CLIP score"),
    Method("metaclip", needs=("captions", "entries"), params=("max_matches",), k_optional=True,
           summary="MetaCLIP's balancing of captions over metadata entries"),
)}
METHODS = tuple(REGISTRY)


def check_needs(method, **given):
    """Raise, naming the flag, when `method` lacks an input it needs (given: need name -> value or None)."""
    spec = REGISTRY.get(method)
    if spec is None:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    flags = {"target": "--target FILE.npy (image embeddings of the target data, the pool's width)",
             "captions": "captions: a source with a text column (--emb of a table or shards, --datacomp, "
                         "--clip-retrieval with metadata/)",
             "entries": "--entries FILE.txt (metadata entries, one a line)"}
    for need in spec.needs:
        if given.get(need) is None:
            raise ValueError(f"--method {method} needs {flags[need]}")


def run_method(method, img, txt, k, *, labels=None, class_emb=None, budget="proportional", threshold=0.0,
               weights=None, seed=0, num_threads=None, device="auto", captions=None, **params):
    """A Selection by `method` (baselines get labels too, for the per-class summary; their gains are NaN and
    a score-ranked baseline's scores are in Selection.scores).

    random_stratified and clip_score_balanced take ClipCov's proportional quotas over `labels` (or the
    zero-shot classes of class_emb); clipcov_released is the released notebook's approximate greedy
    (baselines.released_greedy) started from ClipCov's utilities (api.terms, same weights). params: the
    method's parameters (REGISTRY[method].params; target, entries and the field's options)."""
    if method in ("clipcov", "xcov"):
        return api.select(img, txt, k, objective=method, labels=labels, class_emb=class_emb,
                          threshold=threshold, weights=weights, budget=budget, num_threads=num_threads,
                          device=device)
    check_needs(method, target=params.get("target"), captions=captions, entries=params.get("entries"))
    t0 = time.perf_counter()
    n = len(img)
    if k is None and not REGISTRY[method].k_optional:
        raise ValueError(f"--method {method} needs --k")
    k = None if k is None else inputs.resolve_k(k, n)
    y = np.zeros(n, np.int64) if labels is None else inputs.check_labels(labels, n)
    if method in ("random_stratified", "clip_score_balanced", "clipcov_released"):  # ClipCov's classes
        t = api.terms(img, txt, labels=labels, class_emb=class_emb, threshold=threshold, weights=weights,
                      num_threads=num_threads)
        y = t["labels"]
        idx, scores = _stratified(method, img, txt, k, y, t, threshold, seed), None
    else:
        idx, scores = _ranked_or_rule(method, img, txt, k, seed, num_threads, captions, params)
    idx = np.asarray(idx, dtype=np.int64)
    timings = {"total": time.perf_counter() - t0}
    return Selection(idx, np.full(len(idx), np.nan), float("nan"), y, len(idx), n, method, "-", timings,
                     scores=None if scores is None else np.asarray(scores, np.float64))


def _stratified(method, img, txt, k, y, terms, threshold, seed):
    if method == "random_stratified":
        return baselines.random_stratified(y, k, seed=seed)
    if method == "clip_score_balanced":
        return baselines.clip_score_balanced(img, txt, k, y)
    return baselines.released_greedy(img, txt, k, y, terms["utility"], terms["label"], threshold=threshold)


def _ranked_or_rule(method, img, txt, k, seed, num_threads, captions, p):
    """(indices, the scores they are ranked by, or None)."""
    b = baselines
    neg = {key: p[key] for key in NEGCLIP if p.get(key) is not None}
    if method == "random":
        return b.random(len(img), k, seed=seed), None
    if method == "semdedup":
        return b.semdedup(img, k, n_clusters=p.get("n_clusters"), seed=seed, num_threads=num_threads), None
    if method == "negclip_loss":
        s = b.negclip_loss_scores(img, txt, seed=seed, num_threads=num_threads, **neg)
        return common.ranked(s)[:k], s
    if method == "normsim":
        s = b.normsim_scores(img, target=p["target"], p=_p(p), num_threads=num_threads)
        return common.ranked(s)[:k], s
    if method == "negclip_normsim":
        s = b.normsim_scores(img, target=p["target"], p=_p(p, float("inf")), num_threads=num_threads)
        neg_s = b.negclip_loss_scores(img, txt, seed=seed, num_threads=num_threads, **neg)
        return negclip.combine(neg_s, s, k, _prefilter(p)), s
    e = b.clip_scores(img, txt)  # the rules below rank (and cut or top up) by CLIP score
    if method == "clip_score":
        if p.get("fraction") is None and p.get("score_threshold") is None:
            if k is None:
                raise ValueError("--method clip_score needs --k, --fraction or --score-threshold")
            return common.ranked(e)[:k], e
        kept = b.clip_score(img, txt, fraction=p.get("fraction"), threshold=p.get("score_threshold"))
    elif method == "image_based":
        kept = b.image_based(img, target=p["target"], centroids=p.get("centroids"), n_clusters=p.get("n_clusters"),
                             seed=seed, num_threads=num_threads)
    elif method == "image_based_clip_score":
        kept = b.image_based_clip_score(img, txt, target=p["target"], fraction=p.get("fraction") or 0.3,
                                        threshold=p.get("score_threshold"), centroids=p.get("centroids"),
                                        n_clusters=p.get("n_clusters"), seed=seed, num_threads=num_threads)
    elif method == "metaclip":
        kept = b.metaclip_balance(captions, p["entries"], t=p.get("max_matches") or metaclip.T, seed=seed)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return common.set_to_k(kept, e, k, method), e


def _p(params, default=2):
    return default if params.get("p") is None else params["p"]


def _prefilter(params):
    value = params.get("prefilter")
    return negclip.PREFILTER if value is None else common.float_arg(value, "prefilter", 0.0, 1.0, low_open=True)
