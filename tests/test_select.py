"""The engine against the float64 reference (same selection, OBJECTIVE.md)."""
import numpy as np
import pytest

import clipcov_fast as cc
from clipcov_fast import reference as ref
from conftest import assert_same_selection, make_pool

CASES = {
    "one class": dict(classes=1),
    "zipf classes": dict(classes=12),
    "zipf classes, threshold 0.2": dict(classes=12, threshold=0.2),
    "zipf classes, weights": dict(classes=12, weights={"coverage": 0.5, "easiness": 1.0, "center": 3.0,
                                                       "redundancy": 40.0}),
    "no redundancy": dict(classes=5, weights={"redundancy": 0.0}),
}


@pytest.mark.parametrize("budget", ["proportional", "global"])
@pytest.mark.parametrize("case, objective", [(c, "clipcov") for c in CASES] +
                         [(c, "xcov") for c in CASES if "threshold" not in CASES[c]])  # no tau in xcov
def test_matches_reference(case, budget, objective):
    opts = dict(CASES[case])
    classes = opts.pop("classes")
    if objective == "xcov":
        opts["weights"] = {key: v for key, v in (opts.get("weights") or {}).items()
                           if key in ("easiness", "label", "center")} or None
    A, B, y = make_pool(900, 24, classes=classes, seed=len(case))
    labels = y if classes > 1 else None
    k = 170
    sel = cc.select(A, B, k, objective=objective, labels=labels, budget=budget, **opts)
    want = ref.select(A, B, k, objective=objective, labels=labels, budget=budget, **opts)
    assert_same_selection(sel, want)
    if labels is not None:
        np.testing.assert_array_equal(sel.labels, y)


@pytest.mark.parametrize("threads", [1, 2])
def test_global_budget_resumes_a_class_far_past_its_share(threads):
    # captions noisy outside class 3: the global greedy takes several times class 3's share from it, so
    # the engine pauses that class (freeing its buffers) and resumes it in later rounds
    A, B, y = make_pool(1200, 8, classes=6, seed=5)
    other = y != 3
    B[other] = A[other] + 3 * np.random.default_rng(0).normal(size=(int(other.sum()), 8))
    sel = cc.select(A, B, 300, labels=y, budget="global", num_threads=threads)
    want = ref.select(A, B, 300, labels=y, budget="global")
    assert_same_selection(sel, want)
    assert np.bincount(y[sel.indices], minlength=6)[3] > 2 * 300 * np.mean(y == 3)


@pytest.mark.parametrize("objective", ["clipcov", "xcov"])
def test_class_emb_labels_and_label_term(objective):
    A, B, _ = make_pool(700, 16, classes=6, seed=3)
    T = np.random.default_rng(4).normal(size=(9, 16))
    w = {"label": 2.0} if objective == "clipcov" else {"label": 1.5, "easiness": 0.5}
    sel = cc.select(A, B, 90, objective=objective, class_emb=T, weights=w)
    want = ref.select(A, B, 90, objective=objective, class_emb=T, weights=w)
    np.testing.assert_array_equal(sel.labels, want[3])
    assert_same_selection(sel, want)


def test_large_class_uses_tiles_and_threads():
    # One class bigger than the tile width and the "big class" cut, with another small one.
    A, B, y = make_pool(2600, 40, classes=2, zipf=3.0, seed=5)
    assert np.bincount(y).max() > 1100
    for tau in (0.0, 0.15):
        sel = cc.select(A, B, 260, labels=y, threshold=tau, num_threads=2)
        assert_same_selection(sel, ref.select(A, B, 260, labels=y, threshold=tau))


def test_threshold_recheck_near_tau():
    # Many similarities exactly representable near tau: float32 alone would decide some wrongly.
    rng = np.random.default_rng(6)
    n, d = 400, 8
    A = rng.normal(size=(n, d))
    B = A + 0.3 * rng.normal(size=(n, d))
    tau = float(np.median(ref.terms(A, B)["easiness"]))  # lots of <a_i, b_j> land around it
    sel = cc.select(A, B, 60, threshold=tau)
    assert_same_selection(sel, ref.select(A, B, 60, threshold=tau))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_low_precision_inputs_are_upcast(dtype):
    A, B, y = make_pool(600, 32, classes=4, seed=7, dtype=dtype)
    sel = cc.select(A, B, 80, labels=y)
    # The reference sees the same float16/32 values, upcast to float64.
    assert_same_selection(sel, ref.select(A.astype(np.float64), B.astype(np.float64), 80, labels=y))


def test_unnormalized():
    A, B, y = make_pool(500, 16, classes=3, seed=8)
    for objective in ("clipcov", "xcov"):
        sel = cc.select(A, B, 70, labels=y, normalize=False, objective=objective)
        assert_same_selection(sel, ref.select(A, B, 70, labels=y, normalize=False, objective=objective))


def test_terms_match_reference():
    A, B, y = make_pool(500, 16, classes=4, seed=9)
    T = np.random.default_rng(1).normal(size=(4, 16))
    got = cc.terms(A, B, labels=y, class_emb=T, threshold=0.1)
    want = ref.terms(A, B, labels=y, class_emb=T, threshold=0.1)
    for key in ("coverage", "easiness", "label", "center", "utility"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_fraction_k_and_proportional_quotas():
    A, B, y = make_pool(1000, 16, classes=7, seed=10)
    sel = cc.select(A, B, 0.1, labels=y)
    assert sel.k == 100 and len(sel.indices) == 100
    counts = np.bincount(y, minlength=7)
    got = np.bincount(y[sel.indices], minlength=7)
    assert np.all(np.abs(got - counts * 0.1) < 1)  # floor or floor + 1 of the class's share
    assert got.sum() == 100
    np.testing.assert_array_equal(got, [q for c, q in sorted(ref.quotas(y, 100).items())])
