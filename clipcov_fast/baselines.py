"""Baseline selectors that ship beside ClipCov: random, clip_score, semdedup, their class-stratified
versions (random_stratified, clip_score_balanced: ClipCov's proportional quotas, another rule inside
each class), and released_greedy (the released notebook's approximate ClipCov greedy, a comparator).

Same input conventions as select(): (n, d) float arrays (numpy, memory maps, torch CPU tensors), k an
int in [0, n] or a float fraction in (0, 1), rows L2-normalized when normalize=True. Every function
returns an int64 array of exactly k distinct row indices. Large inputs are read in row chunks and no
n x n matrix is ever formed.
"""
import numbers

import numpy as np

from .inputs import CHUNK_ROWS, as_matrix, check_finite_rows, check_labels, quotas, resolve_k

KMEANS_ITERS = 20  # fixed, so the result depends only on (data, n_clusters, seed)
MAX_CLUSTERS = 1024  # default n_clusters is about sqrt(n), capped here
BLOCK_ENTRIES = 1 << 22  # largest similarity block held at once (4M float32 = 16 MiB)
BISECT_STEPS = 60


def _int_arg(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _checked(X, name, normalize):
    """Validated (n, d) float array; raises on NaN/Inf (and zero rows when normalizing)."""
    X = as_matrix(X, name)
    for start in range(0, len(X), CHUNK_ROWS):
        check_finite_rows(np.asarray(X[start:start + CHUNK_ROWS]), name, start, normalize)
    return X


def _rows(X, start, stop, normalize, dtype=np.float64):
    x = np.asarray(X[start:stop], dtype=np.float64)
    if normalize:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype, copy=False)


def random(n, k, seed=0):
    """k indices drawn uniformly without replacement from range(n) (numpy Generator, seeded)."""
    n = _int_arg(n, "n", 0)
    k = resolve_k(k, n)
    rng = np.random.default_rng(seed)
    return rng.choice(n, size=k, replace=False).astype(np.int64)


def _checked_pair(emb_img, emb_txt, normalize):
    A, B = _checked(emb_img, "emb_img", normalize), _checked(emb_txt, "emb_txt", normalize)
    if A.shape != B.shape:
        raise ValueError(f"emb_img and emb_txt must have the same shape, got {A.shape} and {B.shape}")
    return A, B


def clip_score(emb_img, emb_txt, k, normalize=True):
    """Top k by CLIP score e_i = <a_i, b_i>, in pick order (descending score, ties to the smaller index).

    Scores are computed in float64, row chunk by row chunk.
    """
    A, B = _checked_pair(emb_img, emb_txt, normalize)
    n = len(A)
    k = resolve_k(k, n)
    e = _clip_scores(A, B, normalize)
    order = np.lexsort((np.arange(n), -e))  # score descending, then index ascending
    return order[:k].astype(np.int64)


def _clip_scores(A, B, normalize):
    e = np.empty(len(A))
    for start in range(0, len(A), CHUNK_ROWS):
        stop = min(len(A), start + CHUNK_ROWS)
        e[start:stop] = np.einsum("ij,ij->i", _rows(A, start, stop, normalize), _rows(B, start, stop, normalize))
    return e


def top_per_class(scores, labels, k):
    """k indices: class c gets ClipCov's proportional quota (floor(k n_c / n), the rest by largest
    remainder) and fills it with its members of largest score (ties to the smaller index). In pick
    order: score descending, then index ascending."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    k = resolve_k(k, n)
    y = check_labels(labels, n)
    classes, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    q = quotas(counts, k, "proportional")
    order = np.lexsort((np.arange(n), -scores))
    rank = np.empty(n, np.int64)  # rank of each member inside its class, in score order
    for c in range(len(classes)):
        members = order[inv[order] == c]
        rank[members] = np.arange(len(members))
    keep = order[rank[order] < q[inv[order]]]
    return keep.astype(np.int64)


def clip_score_balanced(emb_img, emb_txt, k, labels, normalize=True):
    """Class-balanced CLIP score: ClipCov's proportional quotas over `labels`, and inside each class the
    pairs with the largest CLIP score e_i = <a_i, b_i> (top_per_class)."""
    A, B = _checked_pair(emb_img, emb_txt, normalize)
    return top_per_class(_clip_scores(A, B, normalize), labels, k)


def random_stratified(labels, k, seed=0):
    """Stratified random: ClipCov's proportional quotas over `labels`, uniform without replacement
    inside each class (seeded)."""
    y = np.asarray(labels)
    return top_per_class(np.random.default_rng(seed).random(len(y)), y, k)


def released_greedy(emb_img, emb_txt, k, labels, scores, label_sim=None, refresh=200, threshold=0.0,
                    normalize=True):
    """The released notebook's approximate ClipCov greedy, from its description (shared DESIGN.md, "The
    released notebook's greedy"); a comparator, not the objective's exact greedy.

    One global ranking by the current score (initially `scores`, ClipCov's utility u_i), popped best
    first (ties to the smaller index), no class quotas. Per class c it counts the picks; when the count
    reaches refresh - 1, 2 refresh - 1, ... (199, 399, ... by default), every unpicked member i of c
    loses, each amount divided by n_c:
      - sum over the picks j of c since the last refresh of w_ij = s+_ij + s+_ji (s+_ij = <a_i, b_j>
        when above `threshold`, else 0: the objective's pair weight);
      - the sum of the initial scores of all picks of c so far (cumulative, so subtracted again at every
        refresh: a class penalty that grows with the class's picks);
      - half the sum of label_sim (ls_j, the caption-to-class-prompt similarity) of the picks of c since
        the last refresh.
    Between refreshes scores are stale. Returns exactly k int64 indices in pick order.
    """
    A, B = _checked_pair(emb_img, emb_txt, normalize)
    n = len(A)
    k = resolve_k(k, n)
    y = check_labels(labels, n)
    refresh = _int_arg(refresh, "refresh", 1)
    u0 = np.asarray(scores, dtype=np.float64)
    ls = np.zeros(n) if label_sim is None else np.asarray(label_sim, dtype=np.float64)
    for name, v in (("scores", u0), ("label_sim", ls)):
        if v.shape != (n,) or not np.all(np.isfinite(v)):
            raise ValueError(f"{name} must be {n} finite numbers (one per row), got shape {v.shape}")
    classes, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    score = u0.copy()
    picked = np.zeros(n, bool)
    picks = [[] for _ in classes]  # every pick of each class, in order
    since = np.zeros(len(classes), np.int64)  # picks of each class at its last refresh
    out = []
    for _ in range(k):
        i = int(np.argmax(np.where(picked, -np.inf, score)))  # first maximum: the smaller index
        picked[i] = True
        out.append(i)
        c = inv[i]
        picks[c].append(i)
        if len(picks[c]) % refresh != (refresh - 1) % refresh:
            continue
        recent = np.array(picks[c][since[c]:])
        since[c] = len(picks[c])
        members = np.flatnonzero((inv == c) & ~picked)
        if not len(members):
            continue
        a, b = _rows64(A, members, normalize), _rows64(B, members, normalize)
        ar, br = _rows64(A, recent, normalize), _rows64(B, recent, normalize)
        s1, s2 = a @ br.T, ar @ b.T  # s_{i j} and s_{j i} for members i, recent picks j
        w = np.where(s1 > threshold, s1, 0).sum(1) + np.where(s2 > threshold, s2, 0).sum(0)
        score[members] -= (w + u0[picks[c]].sum() + 0.5 * ls[recent].sum()) / counts[c]
    return np.array(out, dtype=np.int64)


def _rows64(X, idx, normalize):
    x = np.asarray(X[idx], dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True) if normalize else x


def _kmeans(X, n_clusters, seed):
    """Spherical k-means (cosine) on unit rows X (float32): labels and unit centroids.

    Seeded init from distinct data rows; a fixed number of Lloyd iterations; an empty cluster keeps
    its previous centroid.
    """
    n = len(X)
    rng = np.random.default_rng(seed)
    C = X[np.sort(rng.choice(n, size=n_clusters, replace=False))]
    C = np.unique(C, axis=0)  # identical seeds would tie in every argmax and split duplicates
    labels = np.empty(n, dtype=np.int64)
    step = max(1, BLOCK_ENTRIES // max(1, len(C)))
    for it in range(KMEANS_ITERS + 1):
        sums = np.zeros(C.shape, dtype=np.float64)
        for start in range(0, n, step):
            x = X[start:start + step]
            lab = np.argmax(x @ C.T, axis=1)
            labels[start:start + step] = lab
            onehot = np.zeros((len(x), len(C)), dtype=np.float32)
            onehot[np.arange(len(x)), lab] = 1.0
            sums += onehot.T @ x  # cluster sums through BLAS (np.add.at is far slower)
        if it == KMEANS_ITERS:
            break  # the last pass only assigns labels to the final centroids
        norms = np.linalg.norm(sums, axis=1)
        full = norms > 0
        C[full] = (sums[full] / norms[full, None]).astype(np.float32)
    return labels, C


def _redundancy(X, members, centroid, keep="hard"):
    """Members in keep order, and each one's largest cosine to any member ranked before it.

    Keep order: cosine to the centroid ascending for keep="hard" (the member of a duplicate group
    farthest from the centroid comes first and is the one kept), descending for keep="easy" (the most
    central one); ties to the smaller index. The first member gets -inf. The n_c x n_c block is never
    held whole: rows are processed in chunks against the columns before them.
    """
    Xc = X[members]
    to_centroid = (Xc * centroid).sum(axis=1)  # same arithmetic per row: identical rows tie exactly
    order = np.lexsort((members, to_centroid if keep == "hard" else -to_centroid))
    Xc, members = Xc[order], members[order]
    m = len(members)
    worst = np.full(m, -np.inf)
    step = max(1, BLOCK_ENTRIES // max(1, m))
    for start in range(1, m, step):
        stop = min(m, start + step)
        block = Xc[start:stop] @ Xc[:stop].T
        later = np.arange(stop)[None, :] >= np.arange(start, stop)[:, None]
        block[later] = -np.inf  # only members ranked before the row count
        worst[start:stop] = block.max(axis=1)
    return members, np.minimum(worst, 1.0)  # a cosine is at most 1; float32 can round above it


def semdedup(emb_img, k, n_clusters=None, seed=0, normalize=True, keep="hard"):
    """SemDeDup (Abbas et al., 2023): drop semantic near-duplicates of image embeddings, keep k.

    1. Spherical k-means on the (normalized) image embeddings, n_clusters clusters (default
       round(sqrt(n)) capped at 1024), seeded, KMEANS_ITERS iterations, float32 arithmetic.
    2. Inside each cluster, members are ranked by cosine to the centroid (ties to the smaller index):
       ascending with keep="hard" (the default of the official release, facebookresearch/SemDeDup,
       `which_to_keep="hard"`: of a duplicate group it keeps the member farthest from the centroid),
       descending with keep="easy" (keeps the most central member). Each member gets r_i = its largest
       cosine to a member ranked before it (-inf for the first). With threshold eps, member i is a
       near-duplicate and dropped when r_i > 1 - eps, so each group of mutual duplicates keeps its
       first-ranked member (a member is dropped even when the earlier one it duplicates was dropped too).
       Similarities are computed per cluster in row chunks, never as an n x n matrix.
    3. eps is found by bisection on [0, 2]: the largest eps (to 2**-60) that still keeps at least k
       examples, i.e. the strictest deduplication that leaves about k.
    4. Trim to exactly k: the survivors with the largest r_i (most redundant) are dropped first, ties
       dropping the larger index. The bisection never leaves fewer than k (eps = 0 keeps everyone),
       so no top-up is needed; the result is therefore the k examples with the smallest r_i.

    normalize=False uses the rows as given (they should already be unit vectors for "cosine" to hold).
    Returns int64 indices in keep order: r_i ascending, ties to the smaller index (cluster
    representatives, r_i = -inf, come first by index).
    """
    A = _checked(emb_img, "emb_img", normalize)
    n = len(A)
    k = resolve_k(k, n)
    if n_clusters is None:
        n_clusters = min(MAX_CLUSTERS, max(1, int(round(np.sqrt(n)))))
    n_clusters = _int_arg(n_clusters, "n_clusters", 1)
    if keep not in ("hard", "easy"):
        raise ValueError(f"keep must be 'hard' (farthest from the centroid, the release's default) or 'easy' "
                         f"(nearest), got {keep!r}")
    if n and n_clusters > n:
        raise ValueError(f"n_clusters must be at most n = {n}, got {n_clusters}")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    X = np.empty(A.shape, dtype=np.float32)
    for start in range(0, n, CHUNK_ROWS):
        X[start:start + CHUNK_ROWS] = _rows(A, start, start + CHUNK_ROWS, normalize, np.float32)
    labels, C = _kmeans(X, n_clusters, seed)
    worst = np.empty(n)
    for c in np.unique(labels):
        members, r = _redundancy(X, np.flatnonzero(labels == c), C[c], keep)
        worst[members] = r
    eps = _bisect_eps(np.sort(worst), k)
    keep = np.flatnonzero(worst <= 1.0 - eps)
    keep = keep[np.lexsort((keep, worst[keep]))]  # r ascending, then index ascending
    return keep[:k].astype(np.int64)  # trim the most redundant survivors


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
