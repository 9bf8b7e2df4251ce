"""The coverage screen (csrc/cpu/screen.cpp): classes of 1,024+ rows get their coverage from class sums minus the
entries at or below tau, which a certified low-rank bound finds. Held to the float64 reference (coverage and
picks), on data where the screen decides everything, some, or nothing, and against its own forced-exact path."""
import os

import numpy as np
import pytest

import clipcov_fast as cc
from clipcov_fast import api, inputs, reference
from conftest import assert_same_selection

M, D = 1500, 256  # d far above the screen's rank (32), so that its residual bound matters; 256: the screen's least width


def clusters(fractions, d=D, seed=0, spread=0.35, n=M):
    """One class of n rows around orthogonal directions, a share `fractions[c]` of the rows each (pairs of
    rows from different directions have similarities near 0, below a positive tau)."""
    rng = np.random.default_rng(seed)
    sizes = np.round(np.asarray(fractions) * n).astype(int)
    sizes[0] += n - sizes.sum()
    dirs = np.linalg.qr(rng.standard_normal((d, len(sizes))))[0].T
    which = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    A = dirs[which] + spread * rng.standard_normal((n, d)) / np.sqrt(d)
    B = A + spread * rng.standard_normal((n, d)) / np.sqrt(d)
    return A, B


def engine_stats(A, B, tau, normalize=True):
    A, B = inputs.as_matrix(A, "emb_img"), inputs.as_matrix(B, "emb_txt")
    eng, _ = api._load_engine(A, B, np.zeros(len(A), np.int64), normalize, 2)
    eng.prepare(A, B, "clipcov", 0, float(tau), 1.0, 2.0, 1.0, 1.0, np.zeros(len(A)))
    return eng.screen_stats()


def with_env(monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)


CASES = {  # name: (fractions of the rows by direction, tau)
    "all above": ([1.0], 0.0),
    "3% below, scattered": ([0.985, 0.015], 0.1),
    "10% below": ([0.947, 0.053], 0.1),
    "50% below": ([0.5, 0.5], 0.1),
    "90% below": ([0.1] * 10, 0.1),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("tau_extra", [0.0, 0.2])
def test_coverage_and_picks_match_the_float64_reference(case, tau_extra, monkeypatch):
    fractions, tau = CASES[case]
    tau += tau_extra  # thresholds 0.1 and 0.3 (0 and 0.2 for the first case)
    A, B = clusters(fractions, seed=len(case))
    want = reference.terms(A, B, threshold=tau)["coverage"]
    got = cc.terms(A, B, threshold=tau)["coverage"]
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    with_env(monkeypatch, CLIPCOV_SCREEN_DENSE="1")  # the screened path on every class, every tile exact
    forced = cc.terms(A, B, threshold=tau)["coverage"]
    np.testing.assert_allclose(forced, want, rtol=0, atol=2e-6)
    monkeypatch.delenv("CLIPCOV_SCREEN_DENSE")
    assert_same_selection(cc.select(A, B, 150, threshold=tau), reference.select(A, B, 150, threshold=tau))


def test_the_screen_decides_where_it_should():
    assert engine_stats(*clusters([1.0]), 0.0)["skipped_tiles"] > 0  # every tile decided whole
    assert engine_stats(*clusters([1.0], d=128), 0.0)["classes"] == 0  # narrower than 256: the dense path
    sparse = engine_stats(*clusters([0.985, 0.015], seed=3), 0.1)
    assert sparse["classes"] == 1 and (sparse["sparse_tiles"] > 0 or sparse["screened"] < sparse["entries"])
    rng = np.random.default_rng(1)
    noise = engine_stats(rng.standard_normal((M, D)), rng.standard_normal((M, D)), 0.0)
    assert noise["declined"] == 1 and noise["classes"] == 0  # half the entries negative: the dense path


@pytest.mark.parametrize("case", ["all above", "3% below, scattered", "50% below"])
def test_forcing_every_tile_exact_gives_the_same_bits(case, monkeypatch):
    """Where the screen is used, its open entries get one value whatever the tile's path; forcing the exact
    path on every tile (the debug setting) must give the same coverage to the last bit."""
    fractions, tau = CASES[case]
    A, B = clusters(fractions, seed=7)
    stats = engine_stats(A, B, tau)
    if stats["classes"] == 0:
        pytest.skip("the probe declined this class: the screened path is covered by the forced run above")
    normal = cc.terms(A, B, threshold=tau)["coverage"]
    with_env(monkeypatch, CLIPCOV_SCREEN_DENSE="1")
    np.testing.assert_array_equal(cc.terms(A, B, threshold=tau)["coverage"], normal)


def test_entries_exactly_at_tau():
    """Two parts on disjoint coordinates (95% and 5% of the rows): every cross pair's similarity is exactly
    0 = tau (s+ = 0), 9.5% of the entries."""
    rng = np.random.default_rng(2)
    A = np.zeros((M, D))
    B = np.zeros((M, D))
    half = np.arange(M) % 20 != 0
    h = D // 2
    A[half, :h] = rng.random((half.sum(), h)) + 0.5
    A[~half, h:] = rng.random(((~half).sum(), h)) + 0.5
    B[half, :h] = A[half, :h] + 0.1 * rng.random((half.sum(), h))
    B[~half, h:] = A[~half, h:] + 0.1 * rng.random(((~half).sum(), h))
    assert engine_stats(A, B, 0.0)["classes"] == 1  # the screened path
    want = reference.terms(A, B, threshold=0.0)["coverage"]
    np.testing.assert_allclose(cc.terms(A, B, threshold=0.0)["coverage"], want, rtol=0, atol=2e-6)
    assert_same_selection(cc.select(A, B, 100), reference.select(A, B, 100))


def test_where_the_residual_decides():
    """Rows = a shared direction plus isotropic noise of 0.8 its norm: the rank-32 part of every similarity is
    about the same and the residual (the noise's product) alone puts 5% of the entries below tau. A screen
    that forgot its residual bound would pass over them; the right one cannot clear these rows and keeps the
    dense path."""
    rng = np.random.default_rng(9)
    mu = rng.standard_normal(D)
    mu /= np.linalg.norm(mu)
    A = mu + 0.8 * rng.standard_normal((M, D)) / np.sqrt(D)
    B = mu + 0.8 * rng.standard_normal((M, D)) / np.sqrt(D)
    s = (A / np.linalg.norm(A, axis=1, keepdims=True)) @ (B / np.linalg.norm(B, axis=1, keepdims=True)).T
    tau = float(np.quantile(s, 0.05))
    want = reference.terms(A, B, threshold=tau)["coverage"]
    np.testing.assert_allclose(cc.terms(A, B, threshold=tau)["coverage"], want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("scale", [1e-30, 1e25])
def test_scaled_rows_give_the_unscaled_answer(scale):
    A, B = clusters([0.985, 0.015], seed=5)
    base = cc.select(A, B, 150, threshold=0.1)
    got = cc.select(A * scale, B * scale, 150, threshold=0.1)
    np.testing.assert_array_equal(got.indices, base.indices)
    np.testing.assert_allclose(got.gains, base.gains, rtol=1e-6)


def test_fp16_inputs():
    A, B = clusters([0.985, 0.015], seed=6)
    A16, B16 = A.astype(np.float16), B.astype(np.float16)
    ref = reference.select(A16.astype(np.float64), B16.astype(np.float64), 150, threshold=0.1)
    assert_same_selection(cc.select(A16, B16, 150, threshold=0.1), ref)


def test_the_dense_path_when_switched_off(monkeypatch):
    A, B = clusters([1.0], seed=8)
    with_env(monkeypatch, CLIPCOV_SCREEN="0")
    assert engine_stats(A, B, 0.0)["classes"] == 0
    np.testing.assert_allclose(cc.terms(A, B)["coverage"], reference.terms(A, B)["coverage"], atol=2e-6)
