"""The experiment's field rows (experiment/field.py): each selector with the experiment's settings against a
float64 brute force; MetaCLIP's t found for k; the second reference chosen on fashion-val, not on test."""
import numpy as np
import pytest

from clipcov_fast.baselines import metaclip
from clipcov_fast.experiment import field, report


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pool(n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    B = A + 0.8 * rng.standard_normal((n, d))
    G = rng.standard_normal((40, d)) + 2 * A[:1]  # a target leaning towards one direction
    return A.astype(np.float32), B.astype(np.float32), G.astype(np.float32)


def top(scores, k):
    return list(np.lexsort((np.arange(len(scores)), -scores))[:k])


@pytest.mark.parametrize("t", [0.01, 0.07])
def test_negclip_loss_is_one_batch_of_the_whole_pool_at_the_proxys_temperature(t):
    A, B, G = pool()
    a, b = unit(A.astype(np.float64)), unit(B.astype(np.float64))
    S = a @ b.T / t
    lse = lambda M: M.max(1) + np.log(np.exp(M - M.max(1, keepdims=True)).sum(1))  # noqa: E731
    want = np.diag(S) * t - 0.5 * t * (lse(S) + lse(S.T))
    sel = field.select("negclip_loss", A, B, 30, field={"target": G, "temperature": t}, caps=None, labels=None,
                       seed=3, num_threads=1)
    np.testing.assert_allclose(sel.scores, want, rtol=0, atol=1e-6)  # float32 similarities
    assert list(sel.indices) == top(sel.scores, 30)
    gap = np.sort(want)[::-1][29] - np.sort(want)[::-1][30]
    assert gap < 2e-6 or set(sel.indices) == set(top(want, 30))


@pytest.mark.parametrize("method, p", [("normsim2", 2), ("normsim_inf", np.inf)])
def test_normsim_rows_take_the_fashion_val_target(method, p):
    A, B, G = pool(seed=1)
    want = np.linalg.norm(unit(G.astype(np.float64)) @ unit(A.astype(np.float64)).T, ord=p, axis=0)
    sel = field.select(method, A, B, 25, field={"target": G, "temperature": 0.01}, caps=None, labels=None, seed=0,
                       num_threads=1)
    np.testing.assert_allclose(sel.scores, want, rtol=1e-6)
    assert list(sel.indices) == top(want, 25)


def test_negclip_then_normsim_keeps_the_negclip_top_30_percent():
    A, B, G = pool(n=200, seed=2)
    t = 0.05
    f = {"target": G, "temperature": t}
    neg = field.select("negclip_loss", A, B, 200, field=f, caps=None, labels=None, seed=0, num_threads=1).scores
    sel = field.select("negclip_normsim", A, B, 20, field=f, caps=None, labels=None, seed=0, num_threads=1)
    assert set(sel.indices) <= set(top(neg, 60)) and len(set(sel.indices)) == 20
    sim = np.abs(unit(G.astype(np.float64)) @ unit(A.astype(np.float64)).T).max(0)
    pre = np.array(top(neg, 60))
    assert set(sel.indices) == set(pre[top(sim[pre], 20)])


def test_image_based_and_metaclip_rows_give_k_distinct_pairs():
    A, B, G = pool(n=240, seed=4)
    rng = np.random.default_rng(0)
    words = list(field.ENTRIES)
    caps = [f"a photo of a {words[i % len(words)]}" if rng.random() < 0.8 else "cool item" for i in range(240)]
    f = {"target": G, "temperature": 0.01}
    for method in ("image_based_clip_score", "metaclip"):
        sel = field.select(method, A, B, 40, field=f, caps=caps, labels=None, seed=0, num_threads=1)
        assert len(sel.indices) == 40 and len(set(sel.indices)) == 40, method
    kept = field.select("metaclip", A, B, 40, field=f, caps=caps, labels=None, seed=0, num_threads=1).indices
    assert all(caps[i] != "cool item" for i in kept)  # captions matching no entry are never kept


def test_metaclip_t_for_k_is_the_smallest_t_that_keeps_k():
    rng = np.random.default_rng(5)
    entries = ["bag", "coat", "dress", "red dress"]
    caps = [" ".join(rng.choice(["a", "bag", "coat", "dress", "red", "big"], size=4)) for _ in range(300)]
    size = lambda t: len(metaclip.metaclip_balance(caps, entries, t=t, seed=2))  # noqa: E731
    matched = size(10 ** 6)
    for k in (1, 10, 57, 150, matched):
        t = metaclip.t_for_k(caps, entries, k, seed=2)
        assert size(t) >= k and (t == 1 or size(t - 1) < k), k
    assert size(metaclip.t_for_k(caps, entries, matched + 50, seed=2)) == matched  # fewer match: all of them


def students(rows):
    return [{"method": m, "budget": 0.1, "seed": s, "top1": te, "val_top1": va} for m, s, te, va in rows]


def test_the_best_field_selector_is_chosen_on_fashion_val_not_test():
    rows = []
    for s in range(4):  # normsim_inf best on test, negclip_loss best on val
        rows += [("clipcov", s, 0.70 + 0.01 * s, 0.60), ("negclip_loss", s, 0.60 + 0.01 * s, 0.66),
                 ("normsim_inf", s, 0.80 + 0.01 * s, 0.50), ("random", s, 0.50 + 0.02 * s, 0.40)]
    st = students(rows)
    assert report.best_field(st) == {0.1: "negclip_loss"}
    cmp = {c["method"]: c for c in report.field_comparisons(st, report.best_field(st))}
    assert set(cmp) == {"clipcov", "normsim_inf", "random"} and {c["reference"] for c in cmp.values()} == {"negclip_loss"}
    assert cmp["clipcov"]["mean"] == pytest.approx(0.10) and cmp["normsim_inf"]["mean"] == pytest.approx(0.20)
    d = np.array([0.50 + 0.02 * s - (0.60 + 0.01 * s) for s in range(4)])
    assert cmp["random"]["mean"] == pytest.approx(d.mean())
    assert report.best_field(students([("clipcov", 0, 0.7, 0.6)])) == {}  # no field row: no second reference


# --- the study's field recipes (experiment/recipes.py) and select()'s extra_utility

def classes_of(n, seed=0):
    return np.random.default_rng(seed).integers(0, 3, n)


def per_class_top(scores, y, k):
    """Brute force: proportional quotas (floor, then largest remainder, ties to the smaller class id) and
    each class's top scores."""
    classes, counts = np.unique(y, return_counts=True)
    exact = k * counts / len(y)
    q = np.floor(exact).astype(int)
    for c in np.lexsort((classes, -(exact - q)))[:k - q.sum()]:
        q[c] += 1
    out = set()
    for c, qc in zip(classes, q):
        members = np.flatnonzero(y == c)
        out |= set(members[np.lexsort((members, -scores[members]))][:qc].tolist())
    return out


def test_extra_utility_is_a_modular_term_of_the_greedy():
    import clipcov_fast as cc
    from clipcov_fast.reference import DEFAULT_WEIGHTS

    A, B, _ = pool(n=240, seed=6)
    y = classes_of(240)
    x = np.random.default_rng(1).standard_normal(240)
    zero = {key: 0.0 for key in DEFAULT_WEIGHTS["clipcov"]}
    assert set(cc.select(A, B, 30, labels=y, weights=zero, extra_utility=x).indices) == per_class_top(x, y, 30)
    base = cc.select(A, B, 30, labels=y)
    np.testing.assert_array_equal(cc.select(A, B, 30, labels=y, extra_utility=np.full(240, 3.0)).indices,
                                  base.indices)  # a constant changes no comparison
    e = np.einsum("ij,ij->i", unit(A.astype(np.float64)), unit(B.astype(np.float64)))
    moved = cc.select(A, B, 30, labels=y, weights={"easiness": 0.0},
                      extra_utility=DEFAULT_WEIGHTS["clipcov"]["easiness"] * e)  # the easiness term, moved outside
    np.testing.assert_array_equal(moved.indices, base.indices)
    np.testing.assert_allclose(moved.gains, base.gains, rtol=1e-6)
    with pytest.raises(ValueError, match="extra_utility must have one value per pair"):
        cc.select(A, B, 30, extra_utility=np.zeros(5))
    with pytest.raises(ValueError, match="non-finite value at row 7"):
        cc.select(A, B, 30, extra_utility=np.where(np.arange(240) == 7, np.nan, 0.0))


def test_field_recipes():
    from clipcov_fast.experiment import recipes

    A, B, G = pool(n=300, seed=7)
    y = classes_of(300, seed=2)
    f = {"target": G, "temperature": 0.05}
    cands = recipes.candidates(())
    neg = field.select("negclip_loss", A, B, 300, field=f, caps=None, labels=None, seed=0, num_threads=1).scores
    kw = {"labels": y, "class_emb": None, "num_threads": 1, "field": f}
    got = recipes.select(cands["negclip_balanced"], A, B, 30, **kw)
    assert set(got) == per_class_top(neg, y, 30)
    pre = recipes.select(cands["negclip_prefilter"], A, B, 30, **kw)
    top = np.sort(np.lexsort((np.arange(300), -neg))[:90])
    assert set(pre) <= set(top) and len(set(pre)) == 30
    import clipcov_fast as cc
    inner = cc.select(A[top], B[top], 30, labels=y[top]).indices
    np.testing.assert_array_equal(pre, top[inner])  # ClipCov on the prefiltered pool, mapped back
    sim = np.abs(unit(G.astype(np.float64)) @ unit(A.astype(np.float64)).T).max(0)
    heavy = recipes.select({**cands["normsim_term"], "normsim": 1e6}, A, B, 30, **kw)
    assert set(heavy) == per_class_top(sim, y, 30)  # a NormSim term that outweighs the rest
    only = {key: 0.0 for key in ("coverage", "label", "center", "redundancy")}  # the alignment term alone
    aligned = recipes.select({**cands["negclip_alignment"], "weights": only}, A, B, 30, **kw)
    assert set(aligned) == per_class_top(neg, y, 30)
    with pytest.raises(ValueError, match="needs the field's inputs"):
        recipes.select(cands["negclip_alignment"], A, B, 30, labels=y, class_emb=None)
    assert recipes.changes(cands["negclip_alignment"]).startswith("negCLIPLoss in place of CLIP score")


def test_a_study_written_before_the_field_recipes_still_loads():
    from clipcov_fast.experiment import configs, recipes

    chosen = recipes.load(configs.STUDY.parent / "study-quick.json")  # no alignment/normsim/prefilter keys
    assert set(recipes.PAPER) <= set(chosen["recipe"]) and not recipes.needs_field(chosen["recipe"])
