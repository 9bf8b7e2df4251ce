"""The classic baselines: random, CLIP score (top k, or DataComp's fraction or threshold), their
class-stratified versions (random_stratified, clip_score_balanced: ClipCov's proportional quotas, another
rule inside each class), and released_greedy (the released notebook's approximate ClipCov greedy)."""
import numpy as np

from ..inputs import CHUNK_ROWS, check_labels, quotas, resolve_k
from .common import checked_pair, float_arg, int_arg, ranked, rows


def random(n, k, seed=0):
    """k indices drawn uniformly without replacement from range(n) (numpy Generator, seeded)."""
    n = int_arg(n, "n", 0)
    k = resolve_k(k, n)
    rng = np.random.default_rng(seed)
    return rng.choice(n, size=k, replace=False).astype(np.int64)


def clip_score(emb_img, emb_txt, k=None, normalize=True, *, fraction=None, threshold=None):
    """CLIP score e_i = <a_i, b_i> (float64): the top k, or DataComp's rules (mlfoundations/datacomp,
    baselines/apply_filter.py): every row with e_i >= threshold, where a fraction f becomes the threshold
    the way DataComp's get_threshold makes it, the (int(n f) + 1)-th largest score (so at least
    int(n f) + 1 rows, ties included). Exactly one of k, fraction, threshold. In pick order: score
    descending, ties to the smaller index."""
    A, B = checked_pair(emb_img, emb_txt, normalize)
    e = _clip_scores(A, B, normalize)
    given = [x is not None for x in (k, fraction, threshold)]
    if sum(given) != 1:
        raise ValueError("give exactly one of k, fraction and threshold")
    if k is not None:
        return ranked(e)[:resolve_k(k, len(e))]
    if fraction is not None:
        threshold = threshold_for_fraction(e, fraction)
    threshold = float_arg(threshold, "threshold", -np.inf)
    return ranked(e, np.flatnonzero(e >= threshold))


def threshold_for_fraction(scores, fraction):
    """DataComp's get_threshold: the (int(n fraction) + 1)-th largest score (the smallest with fraction 1)."""
    fraction = float_arg(fraction, "fraction", 0.0, 1.0, low_open=True)
    s = -np.sort(-np.asarray(scores, dtype=np.float64))
    return float(s[min(int(len(s) * fraction), len(s) - 1)]) if len(s) else np.inf


def clip_scores(emb_img, emb_txt, normalize=True):
    """e_i = <a_i, b_i> of every row, in float64, row chunk by row chunk."""
    return _clip_scores(*checked_pair(emb_img, emb_txt, normalize), normalize)


def _clip_scores(A, B, normalize):
    e = np.empty(len(A))
    for start in range(0, len(A), CHUNK_ROWS):
        stop = min(len(A), start + CHUNK_ROWS)
        e[start:stop] = np.einsum("ij,ij->i", rows(A, start, stop, normalize), rows(B, start, stop, normalize))
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
    order = ranked(scores)
    rank = np.empty(n, np.int64)  # rank of each member inside its class, in score order
    for c in range(len(classes)):
        members = order[inv[order] == c]
        rank[members] = np.arange(len(members))
    keep = order[rank[order] < q[inv[order]]]
    return keep.astype(np.int64)


def clip_score_balanced(emb_img, emb_txt, k, labels, normalize=True):
    """Class-balanced CLIP score: ClipCov's proportional quotas over `labels`, and inside each class the
    pairs with the largest CLIP score e_i = <a_i, b_i> (top_per_class)."""
    return top_per_class(clip_scores(emb_img, emb_txt, normalize), labels, k)


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
    A, B = checked_pair(emb_img, emb_txt, normalize)
    n = len(A)
    k = resolve_k(k, n)
    y = check_labels(labels, n)
    refresh = int_arg(refresh, "refresh", 1)
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


