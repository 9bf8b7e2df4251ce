"""Properties of any selection: size, uniqueness, determinism, permutation invariance, inputs."""
import numpy as np
import pytest

import clipcov_fast as cc
from conftest import make_pool


@pytest.mark.parametrize("objective", ["clipcov", "xcov"])
@pytest.mark.parametrize("budget", ["proportional", "global"])
def test_size_uniqueness_determinism(objective, budget):
    A, B, y = make_pool(800, 16, classes=9, seed=11)
    runs = [cc.select(A, B, 123, labels=y, objective=objective, budget=budget, num_threads=t) for t in (1, 2, 2)]
    for sel in runs:
        assert len(sel.indices) == 123 and len(np.unique(sel.indices)) == 123
        assert sel.indices.dtype == np.int64 and sel.gains.dtype == np.float64
        assert sel.objective == pytest.approx(sel.gains.sum())
        np.testing.assert_array_equal(sel.indices, runs[0].indices)


def test_k_edges():
    A, B, y = make_pool(50, 8, classes=3, seed=12)
    assert len(cc.select(A, B, 0, labels=y).indices) == 0
    full = cc.select(A, B, 50, labels=y)
    assert sorted(full.indices) == list(range(50))
    empty = cc.select(np.zeros((0, 8)), np.zeros((0, 8)), 0)
    assert empty.n == 0 and len(empty.indices) == 0


@pytest.mark.parametrize("objective", ["clipcov", "xcov"])
def test_permutation_invariance(objective):
    A, B, y = make_pool(600, 16, classes=5, seed=13)
    perm = np.random.default_rng(0).permutation(600)
    a = cc.select(A, B, 90, labels=y, objective=objective)
    b = cc.select(A[perm], B[perm], 90, labels=y[perm], objective=objective)
    np.testing.assert_array_equal(perm[b.indices], a.indices)  # tie-free data: same order
    np.testing.assert_allclose(b.gains, a.gains, rtol=1e-6, atol=1e-6)  # float32 tiles sum in another order


def test_layouts_and_memmap(tmp_path):
    A, B, y = make_pool(500, 16, classes=4, seed=14)
    want = cc.select(A, B, 60, labels=y)
    # Fortran order, a strided view, and a float16 memory map give the same answer as their values.
    np.testing.assert_array_equal(cc.select(np.asfortranarray(A), B, 60, labels=y).indices, want.indices)
    wide = np.zeros((500, 32))
    wide[:, ::2] = A
    np.testing.assert_array_equal(cc.select(wide[:, ::2], B, 60, labels=y).indices, want.indices)
    np.save(tmp_path / "a.npy", A.astype(np.float16))
    np.save(tmp_path / "b.npy", B.astype(np.float16))
    a16 = np.load(tmp_path / "a.npy", mmap_mode="r")
    b16 = np.load(tmp_path / "b.npy", mmap_mode="r")
    got = cc.select(a16, b16, 60, labels=y)
    np.testing.assert_array_equal(got.indices, cc.select(np.array(a16), np.array(b16), 60, labels=y).indices)


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    A, B, y = make_pool(300, 16, classes=3, seed=15)
    want = cc.select(A.astype(np.float32), B.astype(np.float32), 40, labels=y)
    got = cc.select(torch.from_numpy(A).float(), torch.from_numpy(B).float(), 40, labels=torch.from_numpy(y))
    np.testing.assert_array_equal(got.indices, want.indices)
    bf = cc.select(torch.from_numpy(A).bfloat16(), torch.from_numpy(B).bfloat16(), 40, labels=y)
    assert len(bf.indices) == 40


def test_selection_repr_and_counts():
    A, B, y = make_pool(200, 8, classes=3, seed=16)
    sel = cc.select(A, B, 20, labels=y)
    assert "k=20" in repr(sel) and "n=200" in repr(sel)
    counts = sel.class_counts()
    assert sum(s for _, s in counts.values()) == 20
    assert sum(p for p, _ in counts.values()) == 200
