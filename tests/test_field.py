"""The field's selectors (negCLIPLoss, NormSim, DataComp's filters, MetaCLIP balancing) and their shared C++
primitive, each against a float64 brute force on small inputs or a hand-counted case."""
import numpy as np
import pytest

from clipcov_fast import _core, baselines
from clipcov_fast.baselines import blocks, common, metaclip, negclip

rng = np.random.default_rng(20)


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def lse(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def pool(n=300, d=12, seed=0):
    r = np.random.default_rng(seed)
    A = r.normal(size=(n, d))
    return A, A + 0.8 * r.normal(size=(n, d))


# --- the primitive -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("m, p, d", [(1, 1, 3), (255, 257, 7), (600, 1030, 33)])
@pytest.mark.parametrize("scale", [1.0, 100.0, 500.0])
def test_block_log_sum_exps_match_float64(m, p, d, scale):
    A, B = unit(rng.normal(size=(m, d))), unit(rng.normal(size=(p, d)))
    if m > 10:
        B[3] = -A[0]  # a column whose entries sit far below its tile's maximum
    S = scale * (A @ B.T)
    row, col = blocks.lse_rows_cols(A, B, scale)
    # float32 products: an entry of S is off by about 1e-7 x scale, and so is each log-sum-exp
    np.testing.assert_allclose(row, lse(S, 1), rtol=0, atol=3e-7 * scale)
    np.testing.assert_allclose(col, lse(S, 0), rtol=0, atol=3e-7 * scale)


@pytest.mark.parametrize("absolute", [False, True])
def test_block_row_max_and_first_argmax(absolute):
    A, B = unit(rng.normal(size=(700, 9))), unit(rng.normal(size=(530, 9)))
    B[100] = B[7]  # a tie: the first column wins
    S = np.abs(A @ B.T) if absolute else A @ B.T
    mx, arg = blocks.row_max(A, B, absolute=absolute)
    np.testing.assert_allclose(mx, S.max(1), atol=1e-6)
    assert (arg == S.argmax(1)).mean() > 0.99 and not np.any(arg == 100)


def test_block_max_over_earlier_rows():
    X = unit(rng.normal(size=(1100, 6)))
    S = X @ X.T
    S[np.triu_indices(len(X))] = -np.inf
    got = blocks.max_before(X)
    assert got[0] == -np.inf
    np.testing.assert_allclose(got[1:], S.max(1)[1:], atol=1e-6)


def test_block_results_do_not_depend_on_threads():
    A, B = unit(rng.normal(size=(3000, 16))), unit(rng.normal(size=(2600, 16)))
    one = blocks.lse_rows_cols(A, B, 50.0, num_threads=1)
    two = blocks.lse_rows_cols(A, B, 50.0, num_threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_block_refuses_what_it_does_not_compute():
    A = np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="one width"):
        _core.reduce_block(A, np.ones((3, 3), np.float32), row_max=True)
    with pytest.raises(ValueError, match="before takes one set of rows"):
        _core.reduce_block(A, np.ones((4, 2), np.float32), row_max=True, before=True)
    with pytest.raises(ValueError, match="row_lse"):
        _core.reduce_block(A, A, col_lse=True)


# --- negCLIPLoss --------------------------------------------------------------------------------------------

def brute_negclip(A, B, parts, t):
    """The definition, batch by batch, in float64: s_ii - t/2 (lse_j s_ij/t + lse_j s_ji/t) over i's batch."""
    a, b = unit(A), unit(B)
    out = np.zeros(len(A))
    for idx in parts:
        S = a[idx] @ b[idx].T
        out[idx] = np.diag(S) - t / 2 * (lse(S / t, 1) + lse(S / t, 0))
    return out


@pytest.mark.parametrize("t", [0.01, 0.07])
def test_negclip_one_batch_is_the_whole_pool(t):
    A, B = pool()
    want = brute_negclip(A, B, [np.arange(len(A))], t)
    for repeats in (1, 3):
        got = baselines.negclip_loss_scores(A, B, batch_size=len(A), repeats=repeats, temperature=t)
        np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(baselines.negclip_loss_scores(A, B, batch_size=10 * len(A), temperature=t), want,
                               atol=1e-6)


def test_negclip_of_a_hand_built_partition():
    A, B = pool(n=10, d=4)
    parts = [np.array([0, 3, 4, 9]), np.array([1, 2, 8]), np.array([5, 6, 7])]
    got = np.zeros(10)
    for idx in parts:
        got[idx] = negclip.batch_scores(unit(A[idx]), unit(B[idx]), 0.05)
    np.testing.assert_allclose(got, brute_negclip(A, B, parts, 0.05), atol=1e-7)
    # a pair's score depends on its batch: the whole pool gives other numbers
    assert np.abs(got - brute_negclip(A, B, [np.arange(10)], 0.05)).max() > 1e-3


def test_negclip_repeats_average_seeded_partitions():
    """Repeat r partitions numpy's permutation of range(n) drawn from default_rng([seed, r]) into batches of
    batch_size in order; the score is the mean over repeats."""
    A, B = pool(n=250)
    want = np.mean([brute_negclip(A, B, np.array_split(np.random.default_rng([7, r]).permutation(250),
                                                        [64, 128, 192]), 0.01) for r in range(3)], axis=0)
    got = baselines.negclip_loss_scores(A, B, batch_size=64, repeats=3, seed=7)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert baselines.negclip_loss(A, B, 25, batch_size=64, repeats=3, seed=7).tolist() == \
        common.ranked(got)[:25].tolist()


# --- NormSim and the combination -----------------------------------------------------------------------------

@pytest.mark.parametrize("p", [2, float("inf")])
def test_normsim_matches_its_definition(p):
    A, _ = pool()
    G = rng.normal(size=(40, A.shape[1]))
    want = np.linalg.norm(unit(G) @ unit(A).T, ord=p, axis=0)
    got = baselines.normsim_scores(A, target=G, p=p)
    np.testing.assert_allclose(got, want, atol=1e-12 if p == 2 else 1e-6)
    picks = baselines.normsim(A, 30, target=G, p=p)
    assert np.allclose(np.sort(want[picks]), np.sort(want)[-30:], atol=1e-6)


def test_negclip_normsim_is_the_prefilter_then_normsim():
    A, B = pool(n=400)
    G = rng.normal(size=(25, A.shape[1]))
    neg = brute_negclip(A, B, [np.arange(400)], 0.01)
    sim = np.abs(unit(G) @ unit(A).T).max(0)
    pre = np.argsort(-neg, kind="stable")[:120]  # 30% of 400
    want = pre[np.argsort(-sim[pre], kind="stable")][:50]
    got = baselines.negclip_normsim(A, B, 50, target=G, batch_size=400, repeats=1)
    assert got.tolist() == want.tolist()
    with pytest.raises(ValueError, match="more than the 120 rows the negCLIPLoss prefilter keeps"):
        baselines.negclip_normsim(A, B, 121, target=G, batch_size=400, repeats=1)


# --- DataComp's rules -----------------------------------------------------------------------------------------

def datacomp_threshold(scores, fraction):
    """baselines/apply_filter.py get_threshold, as written there."""
    n = int(len(scores) * fraction)
    return -np.sort(-scores)[n]


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.999])
def test_clip_score_fraction_is_datacomps_threshold(fraction):
    A, B = pool(n=500)
    e = np.einsum("ij,ij->i", unit(A), unit(B))
    thr = datacomp_threshold(e, fraction)
    got = baselines.clip_score(A, B, fraction=fraction)
    assert sorted(got.tolist()) == np.flatnonzero(e >= thr).tolist()
    assert len(got) == int(500 * fraction) + 1  # DataComp's rule keeps one more than n f (no ties here)
    assert got.tolist() == baselines.clip_score(A, B, len(got)).tolist()  # ranked like the top k
    assert sorted(baselines.clip_score(A, B, threshold=0.5).tolist()) == np.flatnonzero(e >= 0.5).tolist()
    with pytest.raises(ValueError, match="exactly one of k, fraction and threshold"):
        baselines.clip_score(A, B, 5, fraction=0.1)


def brute_image_based(A, G, C):
    a, g, c = unit(A), unit(G), unit(C)
    wanted = set(np.argmax(g @ c.T, axis=1).tolist())
    return np.array([i for i, lab in enumerate(np.argmax(a @ c.T, axis=1)) if lab in wanted])


def test_image_based_with_given_centroids():
    A, B = pool(n=600)
    C = rng.normal(size=(30, A.shape[1]))
    G = A[:5] + 0.01 * rng.normal(size=(5, A.shape[1]))  # near five pool rows
    want = brute_image_based(A, G, C)
    got = baselines.image_based(A, target=G, centroids=C)
    assert got.tolist() == want.tolist() and {0, 1, 2, 3, 4} <= set(got.tolist())
    e = np.einsum("ij,ij->i", unit(A), unit(B))
    cut = baselines.image_based(A, target=G, centroids=C, k=10, emb_txt=B)
    assert cut.tolist() == want[np.argsort(-e[want], kind="stable")][:10].tolist()
    k = len(want) + 7
    up = baselines.image_based(A, target=G, centroids=C, k=k, emb_txt=B)
    rest = np.setdiff1d(np.arange(600), want)
    assert up.tolist() == want[np.argsort(-e[want], kind="stable")].tolist() + \
        rest[np.argsort(-e[rest], kind="stable")][:7].tolist()


def test_image_based_intersected_with_clip_score():
    A, B = pool(n=600)
    C = rng.normal(size=(20, A.shape[1]))
    G = A[:40]
    e = np.einsum("ij,ij->i", unit(A), unit(B))
    both = np.intersect1d(brute_image_based(A, G, C), np.flatnonzero(e >= datacomp_threshold(e, 0.3)))
    got = baselines.image_based_clip_score(A, B, target=G, centroids=C, fraction=0.3)
    assert sorted(got.tolist()) == both.tolist()
    assert got.tolist() == both[np.argsort(-e[both], kind="stable")].tolist()


def test_image_based_trains_its_own_centroids_reproducibly():
    A, _ = pool(n=900)
    G = A[:3]
    one = baselines.image_based(A, target=G, n_clusters=12, seed=3)
    assert one.tolist() == baselines.image_based(A, target=G, n_clusters=12, seed=3).tolist()
    assert {0, 1, 2} <= set(one.tolist()) and len(one) < 900


# --- MetaCLIP -------------------------------------------------------------------------------------------------

CAPTIONS = ["a cat on a mat.", "my cat", "cat, sleeping", "a dog", "cats and dogs", "Cat", None, "a bird"]


def test_metaclip_matching_is_metaclips_spaced_substrings():
    m = metaclip.Matcher(["cat", "dog", "a dog"])
    assert [m.matches(c) for c in CAPTIONS] == [[0], [0], [0], [1, 2], [], [], [], []]
    rows, ents = m.match_all(CAPTIONS)
    assert metaclip.entry_counts(ents, 3).tolist() == [3, 1, 1]  # hand-counted


def test_metaclip_with_t_above_every_count_keeps_every_matched_caption():
    assert baselines.metaclip_balance(CAPTIONS, ["cat", "dog"], t=3).tolist() == [0, 1, 2, 3]


def test_metaclip_sampling_on_a_hand_counted_case():
    """cat: count 3, t = 1: each of its captions kept with p = 1/3, by its own draw; dog: count 1, kept."""
    got = baselines.metaclip_balance(CAPTIONS, ["cat", "dog"], t=1, seed=5)
    u = metaclip.uniforms(5, np.array([0, 1, 2]), np.array([0, 0, 0]))
    assert got.tolist() == sorted([i for i, x in zip([0, 1, 2], u) if x < 1 / 3] + [3])
    # over many captions the kept share of an entry is about t / count
    many = ["a cat"] * 20000
    kept = baselines.metaclip_balance(many, ["cat"], t=2000, seed=1)
    assert abs(len(kept) - 2000) < 4 * np.sqrt(2000)


def test_metaclip_draws_do_not_depend_on_chunking():
    m = metaclip.Matcher(["cat"])
    caps = ["cat"] * 100
    rows, ents = m.match_all(caps)
    counts = metaclip.entry_counts(ents, 1)
    whole = metaclip.kept_rows(rows, ents, counts, 30, seed=2)
    r1, e1 = m.match_all(caps[:37])
    r2, e2 = m.match_all(caps[37:])
    parts = np.concatenate([metaclip.kept_rows(r1, e1, counts, 30, 2), metaclip.kept_rows(r2, e2, counts, 30, 2, 37)])
    assert parts.tolist() == whole.tolist()


def test_metaclip_entries_file(tmp_path):
    (tmp_path / "e.txt").write_text("cat\n\n dog \n")
    assert baselines.read_entries(tmp_path / "e.txt") == ["cat", "dog"]
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="--entries: .*empty.txt holds no entries"):
        baselines.read_entries(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="--entries: no such file"):
        baselines.read_entries(tmp_path / "nope.txt")


# --- bad input ---------------------------------------------------------------------------------------------------

A0, B0 = pool(n=40, d=6)


@pytest.mark.parametrize("call, match", [
    (lambda: baselines.normsim(A0, 5, target=np.ones((3, 5))), "target must have d = 6 columns"),
    (lambda: baselines.normsim(A0, 5, target=np.ones((0, 6))), "target must have at least one row"),
    (lambda: baselines.normsim(A0, 5, target=None), "target is required"),
    (lambda: baselines.normsim(A0, 5, target=np.ones((3, 6)), p=3), "p must be 2 or float"),
    (lambda: baselines.normsim(A0, 5, target=np.r_[np.ones((2, 6)), np.full((1, 6), np.nan)]),
     "target has a NaN or Inf in row 2"),
    (lambda: baselines.normsim(A0, 5, target=np.zeros((2, 6))), "target has an all-zero row 0"),
    (lambda: baselines.negclip_loss(A0, B0, 5, batch_size=0), "batch_size must be an int >= 1"),
    (lambda: baselines.negclip_loss(A0, B0, 5, repeats=0), "repeats must be an int >= 1"),
    (lambda: baselines.negclip_loss(A0, B0, 5, temperature=0.0), "temperature must be a number > 0"),
    (lambda: baselines.negclip_normsim(A0, B0, 5, target=A0, prefilter=0.0), r"prefilter must be a number in \(0"),
    (lambda: baselines.negclip_normsim(A0, B0, 5, target=A0, prefilter=1.5), r"prefilter must be a number in \(0"),
    (lambda: baselines.image_based(A0, target=A0, n_clusters=41), "n_clusters must be at most n = 40"),
    (lambda: baselines.image_based(A0, target=A0, centroids=np.ones((3, 5))), "centroids must be"),
    (lambda: baselines.image_based(A0, target=A0, n_clusters=4, k=3), "give emb_txt"),
    (lambda: baselines.clip_score(A0, B0, fraction=0.0), r"fraction must be a number in \(0"),
    (lambda: baselines.metaclip_balance(["x"], [], t=1), "entries must not be empty"),
    (lambda: baselines.metaclip_balance(["x"], ["x"], t=0), "t must be a number > 0"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
