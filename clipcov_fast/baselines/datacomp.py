"""DataComp's embedding-only filters (Gadre et al., 2023; mlfoundations/datacomp, baselines/): image-based
clustering, and its intersection with a CLIP-score fraction. (CLIP score by a fraction or a threshold is
classic.clip_score. The text-based and basic filters need fastText and WordNet data that no package here
ships, and DataComp's image-based baseline also filters captions by language with fastText: left out.)

image_based: spherical k-means centroids of the pool's image embeddings (given, or faiss on the pool,
kmeans.py); the target's rows (e.g. ImageNet-1k train images) each pick their nearest centroid; a pool
row is kept when its own nearest centroid is one of those. Nearest: the largest dot product.
"""
import numpy as np

from ..inputs import CHUNK_ROWS, as_matrix, check_finite_rows
from . import kmeans
from .classic import _clip_scores, threshold_for_fraction
from .common import checked, checked_pair, checked_target, float_arg, int_arg, rows, rows_at, set_to_k

ROWS_PER_CLUSTER = 128  # default n_clusters = n / 128, DataComp's ratio (100,000 centroids for 12.8M rows)
MAX_CLUSTERS = 100_000


def default_clusters(n):
    return max(1, min(MAX_CLUSTERS, n // ROWS_PER_CLUSTER))


def check_centroids(centroids, d):
    C = as_matrix(centroids, "centroids")
    if C.shape[1] != d or len(C) == 0:
        raise ValueError(f"centroids must be (K, d = {d}) with K >= 1, got shape {C.shape}")
    C = np.asarray(C, dtype=np.float64)
    check_finite_rows(C, "centroids", 0, True)
    return (C / np.linalg.norm(C, axis=1, keepdims=True)).astype(np.float32)


def pool_centroids(A, n_clusters, seed, normalize=True):
    """Spherical k-means centroids of the pool's (normalized) image rows, trained on kmeans.training_rows."""
    n = len(A)
    n_clusters = int_arg(n_clusters, "n_clusters", 1)
    if n_clusters > n:
        raise ValueError(f"n_clusters must be at most n = {n}, got {n_clusters}")
    return kmeans.spherical_kmeans(rows_at(A, kmeans.training_rows(n, n_clusters, seed), normalize, np.float32),
                                   n_clusters, seed)


def target_clusters(target, C, num_threads=None):
    """The centroids that are some target row's nearest (sorted)."""
    return np.unique(kmeans.nearest(target.astype(np.float32), C, num_threads))


def in_clusters(A, C, wanted, normalize=True, num_threads=None):
    """Boolean mask: the row's nearest centroid is in `wanted`, row chunk by row chunk."""
    keep = np.empty(len(A), bool)
    for start in range(0, len(A), CHUNK_ROWS):
        stop = min(len(A), start + CHUNK_ROWS)
        keep[start:stop] = np.isin(kmeans.nearest(rows(A, start, stop, normalize, np.float32), C, num_threads), wanted)
    return keep


def _setup(emb_img, target, centroids, n_clusters, seed, normalize):
    A = checked(emb_img, "emb_img", normalize)
    G = checked_target(target, A.shape[1])
    C = (check_centroids(centroids, A.shape[1]) if centroids is not None else
         pool_centroids(A, default_clusters(len(A)) if n_clusters is None else n_clusters, seed, normalize))
    return A, G, C


def image_based(emb_img, *, target, centroids=None, n_clusters=None, seed=0, k=None, emb_txt=None, normalize=True,
                num_threads=None):
    """DataComp's image-based filter: the rows whose nearest centroid is the nearest centroid of at least one
    target row; ascending, or with k (and emb_txt) ranked by CLIP score and cut or topped up to exactly k."""
    A, G, C = _setup(emb_img, target, centroids, n_clusters, seed, normalize)
    kept = np.flatnonzero(in_clusters(A, C, target_clusters(G, C, num_threads), normalize, num_threads))
    if k is None:
        return kept
    if emb_txt is None:
        raise ValueError("image_based with k ranks by CLIP score: give emb_txt")
    return set_to_k(kept, _clip_scores(*checked_pair(A, emb_txt, normalize), normalize), k, "image_based")


def image_based_clip_score(emb_img, emb_txt, *, target, fraction=0.3, threshold=None, centroids=None,
                           n_clusters=None, seed=0, k=None, normalize=True, num_threads=None):
    """DataComp's image-based filter intersected with CLIP score: kept when both keep it, the CLIP-score rule
    being a threshold or a fraction of the whole pool (classic.clip_score's). Ranked by CLIP score; with k,
    cut or topped up to exactly k."""
    A, B = checked_pair(emb_img, emb_txt, normalize)
    e = _clip_scores(A, B, normalize)
    thr = threshold_for_fraction(e, fraction) if threshold is None else float_arg(threshold, "threshold", -np.inf)
    _, G, C = _setup(A, target, centroids, n_clusters, seed, normalize)
    kept = np.flatnonzero(in_clusters(A, C, target_clusters(G, C, num_threads), normalize, num_threads) & (e >= thr))
    return set_to_k(kept, e, k, "image_based ∩ clip_score")
