import numpy as np
import pytest

from clipcov_fast.pipeline.pools import debian


def _installed(package):
    try:
        return bool(debian.package_files(package))
    except debian.MissingPackage:
        return False


needs_fashion = pytest.mark.skipif(not _installed("dataset-fashion-mnist"),
                                   reason="the Debian package dataset-fashion-mnist is not installed")


def make_pool(n, d, classes=1, zipf=0.5, seed=0, noise=1.0, dtype=np.float64):
    """Clustered image/caption embeddings with Zipf-like class sizes (tie-free in general)."""
    rng = np.random.default_rng(seed)
    sizes = 1.0 / np.arange(1, classes + 1) ** zipf
    y = rng.choice(classes, size=n, p=sizes / sizes.sum())
    centres = rng.normal(size=(classes, d)) * 1.5
    A = centres[y] + rng.normal(size=(n, d))
    B = A + noise * rng.normal(size=(n, d))
    return A.astype(dtype), B.astype(dtype), y.astype(np.int64)


def assert_same_selection(sel, ref, rtol=1e-6):
    """The contract's rule: same indices in the same order; where they part, it was a near-tie
    (float64 gains within rtol) and F(S) agrees within rtol."""
    idx, gains, value = ref[0], ref[1], ref[2]
    assert len(sel.indices) == len(idx)
    if not np.array_equal(sel.indices, idx):
        p = int(np.argmax(sel.indices != idx))
        assert abs(sel.gains[p] - gains[p]) <= rtol * max(1.0, abs(gains[p])), (
            f"selections part at pick {p} without a near-tie: {sel.gains[p]} vs {gains[p]}")
        assert abs(sel.objective - value) <= rtol * max(1.0, abs(value))
        pytest.fail(f"selections part at pick {p} (a near-tie; allowed by the contract, but these "
                    f"test inputs are meant to be tie-free)")
    # Gains: relative to the problem's scale (xcov gains fall from large values by cancellation).
    scale = max(1.0, float(np.abs(gains).max())) if len(gains) else 1.0
    np.testing.assert_allclose(sel.gains, gains, rtol=rtol, atol=rtol * scale)
    assert abs(sel.objective - value) <= rtol * max(1.0, abs(value))


@pytest.fixture
def pool():
    return make_pool
