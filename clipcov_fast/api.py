"""Public API: select() and terms(), with input checking and backend dispatch."""
import logging
import numbers
import os
import time

import numpy as np
from tqdm.auto import tqdm

from . import inputs
from .inputs import BUDGETS, CHUNK_ROWS, DEVICES
from .selection import Selection

log = logging.getLogger("clipcov_fast")


def _num_threads(num_threads):
    if num_threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    return int(num_threads)


def _backend(device):
    """'cpu' or 'cuda'. 'auto' takes the GPU only once the CUDA backend has a recorded passing run."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    from . import gpu

    usable, why = gpu.available()
    if device == "cuda":
        if not usable:
            raise ValueError(f"device='cuda' is not usable: {why}")
        gpu.warn_if_unverified()
        return "cuda"
    return "cuda" if usable and gpu.GPU_VERIFIED else "cpu"


def _load_engine(A, B, y, normalize, num_threads):
    """Class-sorted, normalized float32 copy of the inputs inside the C++ engine (read in chunks)."""
    from . import _core

    classes, dense, counts = np.unique(y, return_inverse=True, return_counts=True)
    order = np.argsort(dense, kind="stable")
    class_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    eng = _core.Engine(order.astype(np.int64), class_ptr, A.shape[1], bool(normalize), num_threads)
    n = len(A)
    for start in tqdm(range(0, n, CHUNK_ROWS), desc="clipcov: load", unit="chunk",
                      disable=None if n > 8 * CHUNK_ROWS else True, leave=False):
        stop = min(n, start + CHUNK_ROWS)
        a, b = A[start:stop], B[start:stop]
        row, what = eng.load(start, a, b)
        if what:
            which, problem = inputs.LOAD_PROBLEMS[what]
            raise ValueError(f"emb_{'img' if which == 'image' else 'txt'} has {problem} in row {row}")
        inputs.release_pages(a)
        inputs.release_pages(b)
    return eng, counts


def _common(emb_img, emb_txt, objective, labels, class_emb, threshold, weights, normalize, num_threads):
    w = inputs.resolve_weights(objective, weights, threshold)
    threads = _num_threads(num_threads)
    A, B, y, label_sim = inputs.checked(emb_img, emb_txt, labels, class_emb, normalize)
    return w, threads, A, B, y, label_sim


def select(emb_img, emb_txt, k, *, objective="clipcov", labels=None, class_emb=None, threshold=0.0,
           weights=None, budget="proportional", normalize=True, device="auto", num_threads=None, extra_utility=None):
    """Choose k image-caption pairs by exact greedy maximization of the ClipCov objective.

    emb_img, emb_txt: (n, d) image and caption embeddings of the same pairs (float16/32/64 arrays,
    memory maps, torch tensors). k: an int, or a float in (0, 1) for a fraction of n.
    labels: (n,) integer proxy classes. class_emb: (K, d) class-prompt text embeddings. labels alone:
    those classes; class_emb alone: each pair's zero-shot class (argmax over the prompts), and the label
    term <caption, its class's prompt>; both (the paper's recipe): the classes of labels (values < K)
    and the label term from class_emb; neither: one class and no label term.
    budget: "proportional" class quotas or one "global" greedy.
    weights: coverage, easiness, label, center, redundancy (xcov: easiness, label, center).
    extra_utility: (n,) finite values added to every pair's utility, a modular term of the caller's (an
    alignment score such as negCLIPLoss, a similarity to target data); CPU only.
    """
    t0 = time.perf_counter()
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    if extra_utility is not None and device == "cuda":
        raise ValueError("extra_utility is taken by the CPU engine only: use device='cpu'")
    if _backend(device if extra_utility is None else "cpu") == "cuda":
        from . import gpu

        return gpu.select(emb_img, emb_txt, k, objective=objective, labels=labels, class_emb=class_emb,
                          threshold=threshold, weights=weights, budget=budget, normalize=normalize)
    w, threads, A, B, y, label_sim = _common(emb_img, emb_txt, objective, labels, class_emb, threshold,
                                             weights, normalize, num_threads)
    n = len(A)
    k = inputs.resolve_k(k, n)
    timings = {"inputs": time.perf_counter() - t0}
    if n == 0:
        return Selection(np.zeros(0, np.int64), np.zeros(0), 0.0, y, 0, 0, objective, budget, timings)
    eng, counts = _load_engine(A, B, y, normalize, threads)
    timings["load"] = time.perf_counter() - t0 - timings["inputs"]
    t1 = time.perf_counter()
    extra = w["label"] * label_sim
    if extra_utility is not None:
        extra = extra + inputs.check_extra_utility(extra_utility, n)
    eng.prepare(A, B, objective, k, float(threshold), w["coverage"], w["easiness"], w["center"],
                w["redundancy"], extra)
    timings["terms"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    idx, gains = eng.greedy(inputs.quotas(counts, k, budget), k, budget == "global")
    timings["greedy"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    log.info("select %s: n=%d k=%d classes=%d in %.2fs (%s)", objective, n, k, len(counts),
             timings["total"], ", ".join(f"{key} {v:.2f}s" for key, v in timings.items()))
    return Selection(idx, gains, float(np.sum(gains)), y, k, n, objective, budget, timings)


def terms(emb_img, emb_txt, *, labels=None, class_emb=None, threshold=0.0, weights=None,
          normalize=True, num_threads=None):
    """Per-example ClipCov terms: {coverage, easiness, label, center, utility, labels} (float64)."""
    w, threads, A, B, y, label_sim = _common(emb_img, emb_txt, "clipcov", labels, class_emb, threshold,
                                             weights, normalize, num_threads)
    n = len(A)
    if n == 0:
        empty = np.zeros(0)
        return {"coverage": empty, "easiness": empty, "label": empty, "center": empty,
                "utility": empty, "labels": y}
    eng, _ = _load_engine(A, B, y, normalize, threads)
    eng.prepare(A, B, "clipcov", 0, float(threshold), w["coverage"], w["easiness"], w["center"],
                w["redundancy"], w["label"] * label_sim)
    out = {key: np.asarray(v) for key, v in eng.terms().items()}
    out["label"] = label_sim
    out["labels"] = y
    return out
