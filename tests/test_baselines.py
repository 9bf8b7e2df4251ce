"""Baselines (random, clip_score, semdedup) against independent expectations."""
import numpy as np
import pytest

from clipcov_fast import baselines
from clipcov_fast.baselines import kmeans


def assert_valid(idx, n, k):
    assert isinstance(idx, np.ndarray) and idx.dtype == np.int64
    assert idx.shape == (k,)
    assert len(np.unique(idx)) == k
    assert k == 0 or (idx.min() >= 0 and idx.max() < n)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------- random

@pytest.mark.parametrize("n,k", [(0, 0), (1, 1), (10, 0), (10, 3), (10, 10), (1000, 250)])
def test_random_valid(n, k):
    assert_valid(baselines.random(n, k, seed=5), n, k)


def test_random_seeded():
    a = baselines.random(1000, 100, seed=7)
    np.testing.assert_array_equal(a, baselines.random(1000, 100, seed=7))
    assert not np.array_equal(a, baselines.random(1000, 100, seed=8))
    assert sorted(baselines.random(10, 10, seed=1)) == list(range(10))


def test_random_fraction():
    assert_valid(baselines.random(1000, 0.25, seed=0), 1000, 250)


def test_random_uniform():
    """Each of 10 items is chosen with probability 3/10: chi-square over 2000 draws."""
    counts = np.zeros(10)
    for seed in range(2000):
        counts[baselines.random(10, 3, seed=seed)] += 1
    expected = 2000 * 3 / 10
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # chi-square, 9 dof, p = 0.001 (draws are not independent across items: conservative)


@pytest.mark.parametrize("n,k,err", [(10, 11, ValueError), (10, -1, ValueError), (-1, 0, ValueError),
                                     (10, 1.5, ValueError), (10, True, TypeError), (10, "3", TypeError),
                                     (2.5, 1, ValueError)])
def test_random_errors(n, k, err):
    with pytest.raises(err, match="k|n"):
        baselines.random(n, k)


# ---------------------------------------------------------------- clip_score

def test_clip_score_matches_independent_sort():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 8)) * rng.uniform(0.5, 3, (200, 1))
    B = A + rng.standard_normal((200, 8))
    An, Bn = unit(A), unit(B)
    score = [float(sum(An[i, c] * Bn[i, c] for c in range(8))) for i in range(200)]
    expected = sorted(range(200), key=lambda i: (-score[i], i))[:50]
    got = baselines.clip_score(A, B, 50)
    assert_valid(got, 200, 50)
    assert got.tolist() == expected
    # float32 inputs and a fraction for k give the same picks here (no near-ties)
    assert baselines.clip_score(A.astype(np.float32), B.astype(np.float32), 0.25).tolist() == expected


def test_clip_score_ties_and_no_normalize():
    # e = [1, 2, 2, 0, 2, -1] exactly; ties go to the smaller index
    A = np.array([[1.0, 0], [2, 0], [0, 1], [1, 1], [1, 0], [0, 1]])
    B = np.array([[1.0, 5], [1, 7], [3, 2], [0, 0], [2, -4], [9, -1]])
    assert baselines.clip_score(A, B, 6, normalize=False).tolist() == [1, 2, 4, 0, 3, 5]
    assert baselines.clip_score(A, B, 2, normalize=False).tolist() == [1, 2]
    assert baselines.clip_score(A, B, 0, normalize=False).tolist() == []


def test_clip_score_normalize_ignores_scale():
    # cosines: row 0 = 1, row 1 = 0, row 2 = cos(45 deg); raw products prefer row 1's long vectors
    A = np.array([[1.0, 0], [10, 0], [1, 0]])
    B = np.array([[0.1, 0], [0, 10], [1, 1]])
    assert baselines.clip_score(A, B, 3).tolist() == [0, 2, 1]
    assert baselines.clip_score(A, B, 3, normalize=False).tolist() == [2, 0, 1]


def test_clip_score_errors():
    A = np.ones((5, 3))
    with pytest.raises(ValueError, match="same shape"):
        baselines.clip_score(A, np.ones((5, 4)), 2)
    with pytest.raises(ValueError, match="k must be between 0 and n = 5"):
        baselines.clip_score(A, A, 6)
    bad = A.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="emb_txt has a NaN or Inf in row 3"):
        baselines.clip_score(A, bad, 2)
    zero = A.copy()
    zero[2] = 0
    with pytest.raises(ValueError, match="emb_img has an all-zero row 2"):
        baselines.clip_score(zero, A, 2)
    assert len(baselines.clip_score(zero, A, 2, normalize=False)) == 2
    with pytest.raises(ValueError, match="emb_img must be a 2-D array"):
        baselines.clip_score(np.ones(5), np.ones(5), 2)
    with pytest.raises(TypeError, match="emb_img must hold float"):
        baselines.clip_score(np.ones((5, 3), dtype=int), A, 2)


# ---------------------------------------------------------------- semdedup

def planted_groups(n_groups=40, max_size=5, d=16, seed=0, noise=0.0):
    """Well-separated base points, each repeated 1..max_size times (exact or near copies), shuffled."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_groups, d))
    sizes = rng.integers(1, max_size + 1, n_groups)
    group = np.repeat(np.arange(n_groups), sizes)
    X = base[group] + noise * rng.standard_normal((len(group), d))
    perm = rng.permutation(len(group))
    return X[perm], group[perm]


@pytest.mark.parametrize("n_clusters", [None, 1, 5])
def test_semdedup_keeps_one_per_exact_duplicate_group(n_clusters):
    X, group = planted_groups()
    k = group.max() + 1
    got = baselines.semdedup(X, k, n_clusters=n_clusters)
    assert_valid(got, len(X), k)
    assert sorted(group[got]) == list(range(k))  # exactly one per group
    # exact copies tie on centroid similarity, so the kept copy is the smallest index of its group
    first = {g: int(np.flatnonzero(group == g).min()) for g in range(k)}
    assert sorted(got.tolist()) == sorted(first.values())


def test_semdedup_near_duplicates_and_extra_budget():
    X, group = planted_groups(noise=1e-3, seed=1)
    k = group.max() + 1
    assert sorted(group[baselines.semdedup(X, k)]) == list(range(k))
    # a larger budget keeps every group and adds duplicates on top
    got = baselines.semdedup(X, k + 10)
    assert_valid(got, len(X), k + 10)
    assert set(group[got]) == set(range(k))
    # the first k picks are still the one-per-group set (keep order: least redundant first)
    assert sorted(group[got[:k]]) == list(range(k))


def brute_semdedup_one_cluster(X, k, keep="hard"):
    """One cluster: centroid = normalized mean; rank by cosine to it (hard: farthest first);
    r_i = max cosine to earlier."""
    Xn = unit(X)
    c = Xn.mean(axis=0)
    c /= np.linalg.norm(c)
    to_c = Xn @ c
    sign = 1 if keep == "hard" else -1
    order = sorted(range(len(X)), key=lambda i: (sign * to_c[i], i))
    r = {}
    for pos, i in enumerate(order):
        r[i] = max((float(Xn[i] @ Xn[j]) for j in order[:pos]), default=-np.inf)
    return sorted(range(len(X)), key=lambda i: (r[i], i))[:k]


@pytest.mark.parametrize("keep", ["hard", "easy"])
@pytest.mark.parametrize("k", [0, 1, 7, 30, 40])
def test_semdedup_brute_force_one_cluster(k, keep):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 6)) + 1.5  # one lobe, so some cosines are close to 1
    assert baselines.semdedup(X, k, n_clusters=1, keep=keep).tolist() == brute_semdedup_one_cluster(X, k, keep)


def test_semdedup_hard_keeps_the_duplicate_farthest_from_the_centroid():
    """Hand-computed: one cluster of unit vectors at 0, 10, 80, 81 degrees (centroid at 42.8 degrees).
    Rows 2 and 3 are the nearest pair (cosine of 1 degree, 0.99985); the next is rows 0 and 1 (0.985).
    Hard ranks farthest first: 0 (42.8 deg off), 3 (38.2), 2 (37.2), 1 (32.8), so row 2 gets r = 0.99985,
    the largest, and k = 3 drops it; easy ranks 1, 2, 3, 0: row 3 gets the largest r and is dropped."""
    deg = np.radians([0.0, 10.0, 80.0, 81.0])
    X = np.stack([np.cos(deg), np.sin(deg)], 1)
    assert sorted(baselines.semdedup(X, 3, n_clusters=1).tolist()) == [0, 1, 3]
    assert sorted(baselines.semdedup(X, 3, n_clusters=1, keep="easy").tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match="keep must be 'hard'"):
        baselines.semdedup(X, 3, keep="far")


def test_kmeans_centroids_are_unit_seeded_and_rows_join_their_best():
    rng = np.random.default_rng(4)
    X = unit(rng.standard_normal((300, 8))).astype(np.float32)
    C = kmeans.spherical_kmeans(X, 10, seed=0)
    labels = kmeans.nearest(X, C)
    np.testing.assert_allclose(np.linalg.norm(C, axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(labels, np.argmax(X.astype(np.float64) @ C.T.astype(np.float64), axis=1))
    np.testing.assert_array_equal(C, kmeans.spherical_kmeans(X, 10, seed=0))
    assert not np.array_equal(C, kmeans.spherical_kmeans(X, 10, seed=1))


def test_kmeans_trains_on_all_rows_or_a_seeded_sample():
    assert kmeans.training_rows(1000, 4, 0).tolist() == list(range(1000))
    sample = kmeans.training_rows(10_000, 4, 0)
    assert len(sample) == 4 * kmeans.SAMPLE_PER_CLUSTER and np.all(np.diff(sample) > 0)
    np.testing.assert_array_equal(sample, kmeans.training_rows(10_000, 4, 0))


@pytest.mark.parametrize("keep", ["hard", "easy"])
def test_semdedup_fewer_than_clusters_takes_heads_by_index(keep):
    """k below the cluster count: only cluster heads (r = -inf: the member farthest from its centroid
    for hard, nearest for easy) survive, smaller indices first."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((200, 6))
    Xn = unit(X).astype(np.float32)
    C = kmeans.spherical_kmeans(Xn, 12, seed=1)
    labels = kmeans.nearest(Xn, C)
    heads = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        sims = Xn[members].astype(np.float64) @ C[c].astype(np.float64)
        heads.append(int(members[np.argmin(sims) if keep == "hard" else np.argmax(sims)]))  # first: smaller index
    assert len(heads) >= 6
    assert baselines.semdedup(X, 5, n_clusters=12, seed=1, keep=keep).tolist() == sorted(heads)[:5]


def test_semdedup_is_the_same_on_any_thread_count():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((700, 12)) + 0.5
    full = baselines.semdedup(X, 200, n_clusters=3, seed=2, num_threads=1)
    np.testing.assert_array_equal(baselines.semdedup(X, 200, n_clusters=3, seed=2, num_threads=2), full)


def test_semdedup_deterministic_and_exact_k():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((400, 10)).astype(np.float32)
    for k in (0, 1, 133, 400, 0.5):
        n_k = int(400 * k) if isinstance(k, float) else k
        got = baselines.semdedup(X, k, seed=3)
        assert_valid(got, 400, n_k)
        np.testing.assert_array_equal(got, baselines.semdedup(X, k, seed=3))


def test_semdedup_errors():
    X = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(ValueError, match="k must be between 0 and n = 20"):
        baselines.semdedup(X, 21)
    with pytest.raises(ValueError, match="n_clusters must be at most n = 20"):
        baselines.semdedup(X, 5, n_clusters=21)
    with pytest.raises(ValueError, match="n_clusters must be an int >= 1"):
        baselines.semdedup(X, 5, n_clusters=0)
    bad = X.copy()
    bad[7, 0] = np.inf
    with pytest.raises(ValueError, match="emb_img has a NaN or Inf in row 7"):
        baselines.semdedup(bad, 5)
    bad[7] = 0
    with pytest.raises(ValueError, match="emb_img has an all-zero row 7"):
        baselines.semdedup(bad, 5)
    with pytest.raises(ValueError, match="emb_img must be a 2-D array"):
        baselines.semdedup(X[0], 1)
    assert_valid(baselines.semdedup(np.zeros((0, 4)), 0), 0, 0)


# ---------------------------------------------------------------- class-stratified baselines

def test_clip_score_balanced_hand_computed():
    """Captions at the given angles from every image: e_i = cos(angle). Classes [0, 0, 0, 0, 1, 1], k = 3:
    quotas 2 and 1 (3 x 4/6 and 3 x 2/6). Class 0 keeps its two best (rows 3 at 0 and 1 at 10 degrees),
    class 1 its best (row 4 at 60), although plain CLIP score would take row 0 (30) before it."""
    deg = np.radians([30.0, 10.0, 50.0, 0.0, 60.0, 70.0])
    A = np.tile([1.0, 0.0], (6, 1))
    B = np.stack([np.cos(deg), np.sin(deg)], 1)
    labels = [0, 0, 0, 0, 1, 1]
    assert baselines.clip_score_balanced(A, B, 3, labels).tolist() == [3, 1, 4]
    assert baselines.clip_score(A, B, 3).tolist() == [3, 1, 0]
    # k = 4: quotas 2 + 1, and the one left goes to the larger remainder (class 0: 16 mod 6 = 4 > 8 mod 6 = 2)
    assert baselines.clip_score_balanced(A, B, 4, labels).tolist() == [3, 1, 0, 4]


def test_random_stratified_quotas_and_uniform_inside_each_class():
    # k = 5 of class sizes 6, 3, 1: 5 x size / 10 = 3, 1.5, 0.5; the one pick left goes to a remainder of
    # .5, tied between classes 1 and 2: to the smaller class id. Quotas 3, 2, 0.
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    picks = np.zeros(10)
    for seed in range(3000):
        got = baselines.random_stratified(labels, 5, seed=seed)
        assert_valid(got, 10, 5)
        assert np.bincount(labels[got], minlength=3).tolist() == [3, 2, 0]
        picks[got] += 1
    # each member of a class is picked with probability quota / class size: 1/2, 2/3, 0
    expect = np.array([0.5] * 6 + [2 / 3] * 3 + [0.0])
    np.testing.assert_allclose(picks / 3000, expect, atol=0.04)
    np.testing.assert_array_equal(baselines.random_stratified(labels, 5, seed=1),
                                  baselines.random_stratified(labels, 5, seed=1))


# ---------------------------------------------------------------- the released notebook's greedy

def released_case():
    """Classes 0 = rows {0, 1, 2, 5} (n = 4) and 1 = rows {3, 4} (n = 2); images = captions, unit vectors
    e1 = (1, 0) or e2 = (0, 1), so <a_i, b_j> is 1 for equal vectors and 0 otherwise."""
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    X = np.array([e1, e1, e2, e1, e2, e2])
    labels = [0, 0, 0, 1, 1, 0]
    u = np.array([5.0, 4.9, 4.8, 4.7, -0.15, 2.5])
    ls = np.array([2.0, 0, 0, 0, 0, 0])
    return X, labels, u, ls


def test_released_greedy_hand_computed():
    """refresh = 2: a class refreshes at its 1st, 3rd, ... pick. By hand:
    pick 0 (5); class 0 refreshes (1 pick): row 1 loses (w = 1 + 1, cumulative u 5, half ls 1) / 4 = 2
      -> 2.9; row 2 loses (0 + 5 + 1) / 4 = 1.5 -> 3.3; row 5 likewise -> 1.0.
    pick 3 (4.7); class 1 refreshes: row 4 loses (0 + 4.7 + 0) / 2 = 2.35 -> -2.5.
    pick 2 (3.3; class 0 at 2 picks, no refresh); pick 1 (2.9); class 0 refreshes at 3 picks: recent
      picks 2 and 1, row 5 loses (w = 2 with row 2, 0 with row 1; cumulative u 5 + 4.8 + 4.9 = 14.7;
      ls 0) / 4 = 4.175 -> -3.175.
    pick 4 (-2.5 > -3.175). Had the class penalty counted only the recent picks (9.7), row 5 would stand
    at -1.925 and be picked instead: the cumulative re-subtraction decides the last pick."""
    X, labels, u, ls = released_case()
    got = baselines.released_greedy(X, X, 5, labels, u, ls, refresh=2, normalize=False)
    assert got.tolist() == [0, 3, 2, 1, 4]
    # no refresh within k (the default refresh = 200): the initial ranking, ties to the smaller index
    assert baselines.released_greedy(X, X, 6, labels, u, ls, normalize=False).tolist() == [0, 1, 2, 3, 5, 4]


def test_released_greedy_threshold_and_errors():
    X, labels, u, ls = released_case()
    # threshold 1: no similarity is above it (all are 0 or 1), so at class 0's first refresh row 1 loses
    # only (0 + 5 + 1) / 4 = 1.5 -> 3.4, above row 2's 3.3: after rows 0 and 3, row 1 comes before row 2.
    got = baselines.released_greedy(X, X, 4, labels, u, ls, refresh=2, threshold=1.0, normalize=False)
    assert got.tolist() == [0, 3, 1, 2]
    with pytest.raises(ValueError, match="scores must be 6 finite numbers"):
        baselines.released_greedy(X, X, 2, labels, u[:5])
    with pytest.raises(ValueError, match="refresh must be an int >= 1"):
        baselines.released_greedy(X, X, 2, labels, u, refresh=0)
