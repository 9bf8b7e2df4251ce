"""Peer parity: on one class, ClipCov's greedy is a graph-cut greedy (apricot, submodlib).

With easiness = label = center = 0 and coverage = redundancy = 1, on one class of n pairs,

    F(S) = (1/n) [ sum_{i in S} sum_{j in V} w_ij  -  sum_{unordered {i,j} in S, i != j} w_ij ]
    n*Delta(i|S) = sum_{j != i} w_ij + w_ii - sum_{j in S} w_ij

with w_ij = s+_ij + s+_ji (so w_ii = 2 s+_ii) and the coverage sum including j = i.

Give both peers the dense symmetric kernel K with K_ij = w_ij off the diagonal and K_ii = 2 w_ii
(= 4 s+_ii), which is non-negative for threshold >= 0.

apricot (GraphCutSelection, metric="precomputed", optimizer="naive"): gains are
alpha * rowsum(K)_i - K_ii - 2 sum_{j in S} K_ij   (current_values starts at diag(K), += 2 K[j]).
With alpha = 2: 2 sum_{j != i} w_ij + 4 w_ii - 2 w_ii - 2 sum_S w_ij = 2 n Delta(i|S).
(alpha must be 2: coverage and redundancy enter F with equal weight, apricot's pair sum counts each
pair twice.) Ties go to the lowest index, like ours.

submodlib (GraphCutFunction, mode="dense", ggsijs=K, NaiveGreedy): gains are
sum_{v} K_vi - 2 lambda sum_{j in S} K_ij - lambda K_ii.
With lambda = 1/2: sum_{j != i} w_ij + 2 w_ii - sum_S w_ij - w_ii = n Delta(i|S).
(lambda must be 1/2 for the same reason.) submodlib stores K and gains in float32 and breaks ties in
hash-set order, so the data must be tie-free with margins well above float32 rounding: the test
checks that precondition on the data it uses.

Both peers then make the same picks as ClipCov's budget="global" greedy (one class, so global and
proportional agree). See docs/peers.md.
"""
import numpy as np
import pytest

from clipcov_fast import reference

try:
    from clipcov_fast import _core  # noqa: F401

    HAVE_CORE = True
except ImportError:
    HAVE_CORE = False

GRAPH_CUT = {"easiness": 0.0, "label": 0.0, "center": 0.0, "coverage": 1.0, "redundancy": 1.0}
N, D, K = 300, 24, 60
SEED = 1  # its smallest relative gap between the best two gains is about 9e-5 (see the precondition)

GAIN_RTOL = {"reference": 1e-9, "clipcov_fast": 1e-5}  # the engine may sum in float32; picks must agree
ENGINES = [
    "reference",
    pytest.param("clipcov_fast", marks=pytest.mark.skipif(
        not HAVE_CORE, reason="clipcov_fast._core (the compiled engine) is not built in this checkout")),
]


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(SEED)
    A = rng.standard_normal((N, D))
    B = A + 0.8 * rng.standard_normal((N, D))  # correlated pairs, like image/caption embeddings
    return A, B


def pair_weights(A, B, threshold):
    """w_ij = s+_ij + s+_ji on normalized rows, computed here independently of the package."""
    An = A / np.linalg.norm(A, axis=1, keepdims=True)
    Bn = B / np.linalg.norm(B, axis=1, keepdims=True)
    s = An @ Bn.T
    sp = np.where(s > threshold, s, 0.0)
    return sp + sp.T


def peer_kernel(W):
    K = W.copy()
    np.fill_diagonal(K, 2.0 * np.diag(W))
    return K


def ours(engine, A, B, threshold):
    if engine == "reference":
        idx, gains, _, _ = reference.select(A, B, K, weights=GRAPH_CUT, threshold=threshold, budget="global")
        return idx, gains
    import clipcov_fast

    sel = clipcov_fast.select(A, B, K, weights=GRAPH_CUT, threshold=threshold, budget="global")
    return sel.indices, sel.gains


def check_tie_free(W, order, min_rel_gap=4e-5):
    """Replay the greedy on n*Delta and require a clear winner at every step (float32 peers)."""
    gain = W.sum(axis=1)  # n*Delta(i | {}) = sum_j w_ij, diagonal included
    open_ = np.ones(len(W), dtype=bool)
    for j in order:
        top2 = np.sort(gain[open_])[-2:]
        assert j == np.flatnonzero(open_)[np.argmax(gain[open_])], "replayed greedy disagrees"
        assert (top2[1] - top2[0]) > min_rel_gap * abs(top2[1]), "test data has a near-tie"
        open_[j] = False
        gain = gain - W[:, j]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("threshold", [0.0, 0.2])
def test_apricot_graph_cut_matches(pairs, engine, threshold):
    apricot = pytest.importorskip("apricot")
    A, B = pairs
    W = pair_weights(A, B, threshold)
    idx, gains = ours(engine, A, B, threshold)
    check_tie_free(W, idx)
    peer = apricot.GraphCutSelection(K, metric="precomputed", alpha=2, optimizer="naive").fit(peer_kernel(W))
    np.testing.assert_array_equal(peer.ranking, idx)
    np.testing.assert_allclose(peer.gains, 2 * N * gains, rtol=GAIN_RTOL[engine])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("threshold", [0.0, 0.2])
def test_submodlib_graph_cut_matches(pairs, engine, threshold):
    submodlib = pytest.importorskip("submodlib")
    A, B = pairs
    W = pair_weights(A, B, threshold)
    idx, gains = ours(engine, A, B, threshold)
    check_tie_free(W, idx)
    f = submodlib.GraphCutFunction(n=N, mode="dense", ggsijs=peer_kernel(W), lambdaVal=0.5)
    picks = f.maximize(budget=K, optimizer="NaiveGreedy", show_progress=False)
    np.testing.assert_array_equal([i for i, _ in picks], idx)
    np.testing.assert_allclose([g for _, g in picks], N * gains, rtol=max(1e-5, GAIN_RTOL[engine]))


def test_reference_value_is_graph_cut(pairs):
    """The mapping itself: F(S) from the definition equals the graph cut of K (lambda = 1/2) over n."""
    A, B = pairs
    W = pair_weights(A, B, 0.2)
    Kmat = peer_kernel(W)
    S = np.random.default_rng(3).choice(N, size=25, replace=False)
    graph_cut = Kmat[:, S].sum() - 0.5 * Kmat[np.ix_(S, S)].sum()
    ours_value = reference.set_value(S, A, B, len(S), weights=GRAPH_CUT, threshold=0.2)
    assert ours_value == pytest.approx(graph_cut / N, rel=1e-12)
