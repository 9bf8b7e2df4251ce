"""Spherical k-means by faiss (the field's library: SemDeDup's and DataComp's image-based clustering use
it) and nearest centroids by the tiled primitive (blocks.row_max), so assignments are the same on every
engine. Seeded: the same rows, n_clusters and seed give the same centroids (checked for 1 and 2 threads)."""
import numpy as np

from . import blocks

KMEANS_ITERS = 20  # fixed, so the result depends only on (data, n_clusters, seed)
SAMPLE_PER_CLUSTER = 256  # training rows per centroid, as faiss's own default subsample


def training_rows(n, n_clusters, seed):
    """The rows k-means trains on: all of them, or a seeded sample of SAMPLE_PER_CLUSTER per centroid
    (ascending), so that a pool too big for memory trains on what a driver can hold."""
    cap = SAMPLE_PER_CLUSTER * n_clusters
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 1]).choice(n, size=cap, replace=False))


def spherical_kmeans(X, n_clusters, seed=0):
    """Unit centroids (n_clusters x d, float32) of the unit rows X by faiss's spherical k-means:
    KMEANS_ITERS Lloyd iterations from a seeded start, empty clusters split off large ones."""
    import faiss

    X = np.ascontiguousarray(X, dtype=np.float32)
    km = faiss.Kmeans(X.shape[1], int(n_clusters), niter=KMEANS_ITERS, seed=int(seed), spherical=True,
                      max_points_per_centroid=len(X) + 1, min_points_per_centroid=1, verbose=False)
    km.train(X)
    C = km.centroids.astype(np.float32)
    return C / np.linalg.norm(C, axis=1, keepdims=True)


def nearest(X, C, num_threads=None):
    """Each row's nearest centroid: the largest dot product, ties to the smaller centroid."""
    return blocks.row_max(X, C, num_threads=num_threads)[1]
