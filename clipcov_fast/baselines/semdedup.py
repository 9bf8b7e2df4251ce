"""SemDeDup (Abbas et al., 2023): drop semantic near-duplicates of image embeddings, keep k."""
import numpy as np

from ..inputs import CHUNK_ROWS, resolve_k
from . import blocks, kmeans
from .common import checked, int_arg, rows

MAX_CLUSTERS = 1024  # default n_clusters is about sqrt(n), capped here
BISECT_STEPS = 60


def redundancy(X, members, centroid, keep="hard", num_threads=None):
    """Members in keep order, and each one's largest cosine to any member ranked before it.

    Keep order: cosine to the centroid ascending for keep="hard" (the member of a duplicate group
    farthest from the centroid comes first and is the one kept), descending for keep="easy" (the most
    central one); ties to the smaller index. The first member gets -inf. The largest cosines come from
    the tiled primitive (blocks.max_before): the n_c x n_c block is never held.
    """
    Xc = X[members]
    to_centroid = (Xc * centroid).sum(axis=1)  # same arithmetic per row: identical rows tie exactly
    order = np.lexsort((members, to_centroid if keep == "hard" else -to_centroid))
    worst = blocks.max_before(Xc[order], num_threads).astype(np.float64)
    return members[order], np.minimum(worst, 1.0)  # a cosine is at most 1; float32 can round above it


def semdedup(emb_img, k, n_clusters=None, seed=0, normalize=True, keep="hard", num_threads=None):
    """SemDeDup: k of the pool with the fewest near-duplicates before them.

    1. Spherical k-means (faiss, kmeans.py) on the (normalized) image embeddings, n_clusters clusters
       (default round(sqrt(n)) capped at 1024), seeded; each row joins its nearest centroid.
    2. Inside each cluster, members are ranked by cosine to the centroid (ties to the smaller index):
       ascending with keep="hard" (the default of the official release, facebookresearch/SemDeDup,
       `which_to_keep="hard"`: of a duplicate group it keeps the member farthest from the centroid),
       descending with keep="easy" (keeps the most central member). Each member gets r_i = its largest
       cosine to a member ranked before it (-inf for the first). With threshold eps, member i is a
       near-duplicate and dropped when r_i > 1 - eps, so each group of mutual duplicates keeps its
       first-ranked member (a member is dropped even when the earlier one it duplicates was dropped too).
    3. eps is found by bisection on [0, 2]: the largest eps (to 2**-60) that still keeps at least k
       examples, i.e. the strictest deduplication that leaves about k.
    4. Trim to exactly k: the survivors with the largest r_i (most redundant) are dropped first, ties
       dropping the larger index; the result is therefore the k examples with the smallest r_i.

    normalize=False uses the rows as given (they should already be unit vectors for "cosine" to hold).
    Returns int64 indices in keep order: r_i ascending, ties to the smaller index (cluster
    representatives, r_i = -inf, come first by index).
    """
    A = checked(emb_img, "emb_img", normalize)
    n = len(A)
    k = resolve_k(k, n)
    if n_clusters is None:
        n_clusters = min(MAX_CLUSTERS, max(1, int(round(np.sqrt(n)))))
    n_clusters = int_arg(n_clusters, "n_clusters", 1)
    if keep not in ("hard", "easy"):
        raise ValueError(f"keep must be 'hard' (farthest from the centroid, the release's default) or 'easy' "
                         f"(nearest), got {keep!r}")
    if n and n_clusters > n:
        raise ValueError(f"n_clusters must be at most n = {n}, got {n_clusters}")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    X = np.empty(A.shape, dtype=np.float32)
    for start in range(0, n, CHUNK_ROWS):
        X[start:start + CHUNK_ROWS] = rows(A, start, start + CHUNK_ROWS, normalize, np.float32)
    C = kmeans.spherical_kmeans(X[kmeans.training_rows(n, n_clusters, seed)], n_clusters, seed)
    labels = kmeans.nearest(X, C, num_threads)
    worst = np.empty(n)
    for c in np.unique(labels):
        members, r = redundancy(X, np.flatnonzero(labels == c), C[c], keep, num_threads)
        worst[members] = r
    eps = _bisect_eps(np.sort(worst), k)
    kept = np.flatnonzero(worst <= 1.0 - eps)
    kept = kept[np.lexsort((kept, worst[kept]))]  # r ascending, then index ascending
    return kept[:k].astype(np.int64)  # trim the most redundant survivors


def _bisect_eps(sorted_worst, k):
    """Largest eps in [0, 2] with at least k members having r_i <= 1 - eps (bisection)."""
    def kept(eps):
        return int(np.searchsorted(sorted_worst, 1.0 - eps, side="right"))

    lo, hi = 0.0, 2.0  # kept(0) = n >= k, since every r_i <= 1
    for _ in range(BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        if kept(mid) >= k:
            lo = mid
        else:
            hi = mid
    return lo
