"""negCLIPLoss and NormSim (Wang et al., NeurIPS 2024, arXiv 2405.19547; research code
ypwang61/negCLIPLoss_NormSim, baselines/vas2.py), and the paper's combination of the two.

negCLIPLoss: for each of `repeats` seeded random partitions of the pool into batches of batch_size (the
last one smaller; batch_size >= n is one batch of the whole pool), with s_ij = <a_i, b_j> on normalized
rows and t the teacher's temperature,
    score_i = s_ii - (t / 2) [log sum_{j in B} exp(s_ij / t) + log sum_{j in B} exp(s_ji / t)],
both sums over i's batch B including j = i; averaged over the repeats. The log-sum-exps of a batch are
the row and column reductions of its b x b block, which blocks.lse_rows_cols computes by tiles.
NormSim_p: score_i = || G a_i ||_p over the normalized target image embeddings G (rows): p = 2 through
the d x d matrix G^T G (float64), p = inf as the largest |<g, a_i>| (blocks.row_max).
"""
import numpy as np

from ..inputs import CHUNK_ROWS, resolve_k
from . import blocks
from .common import checked, checked_pair, checked_target, float_arg, int_arg, ranked, rows, rows_at

BATCH_SIZE = 32768
REPEATS = 10
TEMPERATURE = 0.01  # OpenAI CLIP's; a project-trained proxy's is 1 / its logit scale
PREFILTER = 0.3


def check_negclip_args(batch_size, repeats, temperature):
    return (int_arg(batch_size, "batch_size", 1), int_arg(repeats, "repeats", 1),
            float_arg(temperature, "temperature", 0.0, low_open=True))


def batches(n, batch_size, repeats, seed):
    """(repeat, rows of one batch) for every batch of every repeat: repeat r partitions a permutation of
    range(n) drawn from the seed sequence (seed, r), so any one repeat can be redrawn on its own."""
    for r in range(repeats):
        perm = np.random.default_rng([int(seed), r]).permutation(n)
        for start in range(0, n, batch_size):
            yield r, perm[start:start + batch_size]


def batch_scores(a, b, temperature, num_threads=None):
    """negCLIPLoss of one batch from its normalized image and caption rows (float64): s_ii minus t/2 of
    the row and column log-sum-exps of S / t."""
    row, col = blocks.lse_rows_cols(a, b, 1.0 / temperature, num_threads)
    return np.einsum("ij,ij->i", a, b) - 0.5 * temperature * (row + col)


def negclip_loss_scores(emb_img, emb_txt, *, batch_size=BATCH_SIZE, repeats=REPEATS, temperature=TEMPERATURE,
                        seed=0, normalize=True, num_threads=None):
    """Every row's negCLIPLoss (float64), averaged over the repeats."""
    A, B = checked_pair(emb_img, emb_txt, normalize)
    batch_size, repeats, temperature = check_negclip_args(batch_size, repeats, temperature)
    total = np.zeros(len(A))
    for _, idx in batches(len(A), batch_size, repeats, seed):
        total[idx] += batch_scores(rows_at(A, idx, normalize), rows_at(B, idx, normalize), temperature, num_threads)
    return total / repeats


def negclip_loss(emb_img, emb_txt, k, *, batch_size=BATCH_SIZE, repeats=REPEATS, temperature=TEMPERATURE, seed=0,
                 normalize=True, num_threads=None):
    """The k rows of largest negCLIPLoss, in that order (ties to the smaller index)."""
    s = negclip_loss_scores(emb_img, emb_txt, batch_size=batch_size, repeats=repeats, temperature=temperature,
                            seed=seed, normalize=normalize, num_threads=num_threads)
    return ranked(s)[:resolve_k(k, len(s))]


def check_p(p):
    if p == 2 or p == float("inf"):
        return float(p)
    raise ValueError(f"p must be 2 or float('inf') (inf), got {p!r}")


def target_covariance(G):
    """G^T G of the normalized target rows, float64 (NormSim-2's only use of the target)."""
    return G.T @ G


def normsim_chunk(a, p, cov=None, G32=None, num_threads=None):
    """NormSim_p of normalized rows a (float64): sqrt(a cov a^T) for p = 2, max |<g, a>| for p = inf."""
    if p == 2:
        return np.sqrt(np.maximum(np.einsum("ij,ij->i", a @ cov, a), 0.0))
    return blocks.row_max(a, G32, absolute=True, num_threads=num_threads)[0].astype(np.float64)


def normsim_scores(emb_img, *, target, p=2, normalize=True, num_threads=None):
    """Every row's NormSim_p = || G a_i ||_p (float64 for p = 2; float32 products for p = inf)."""
    A = checked(emb_img, "emb_img", normalize)
    p = check_p(p)
    return normsim_rows(A, p, *normsim_target(checked_target(target, A.shape[1]), p), normalize, num_threads)


def normsim_target(G, p):
    """What NormSim_p keeps of the normalized target: (G^T G, None) for p = 2, (None, G in float32) for inf."""
    return (target_covariance(G), None) if p == 2 else (None, G.astype(np.float32))


def normsim_rows(A, p, cov, G32, normalize=True, num_threads=None):
    """NormSim_p of every row of A, CHUNK_ROWS rows at a time (so a caller's chunks give the same numbers)."""
    out = np.empty(len(A))
    for start in range(0, len(A), CHUNK_ROWS):
        stop = min(len(A), start + CHUNK_ROWS)
        out[start:stop] = normsim_chunk(rows(A, start, stop, normalize), p, cov, G32, num_threads)
    return out


def normsim(emb_img, k, *, target, p=2, normalize=True, num_threads=None):
    """The k rows of largest NormSim_p, in that order (ties to the smaller index)."""
    s = normsim_scores(emb_img, target=target, p=p, normalize=normalize, num_threads=num_threads)
    return ranked(s)[:resolve_k(k, len(s))]


def negclip_normsim(emb_img, emb_txt, k, *, target, prefilter=PREFILTER, p=float("inf"), batch_size=BATCH_SIZE,
                    repeats=REPEATS, temperature=TEMPERATURE, seed=0, normalize=True, num_threads=None):
    """The paper's combination: the top `prefilter` fraction of the pool (int(n prefilter) rows) by
    negCLIPLoss, then the k of those with the largest NormSim_p (the paper's best: p = inf)."""
    prefilter = float_arg(prefilter, "prefilter", 0.0, 1.0, low_open=True)
    neg = negclip_loss_scores(emb_img, emb_txt, batch_size=batch_size, repeats=repeats, temperature=temperature,
                              seed=seed, normalize=normalize, num_threads=num_threads)
    sim = normsim_scores(emb_img, target=target, p=p, normalize=normalize, num_threads=num_threads)
    return combine(neg, sim, k, prefilter)


def combine(neg, sim, k, prefilter):
    """Top int(n prefilter) by negCLIPLoss, then the top k of those by NormSim."""
    n = len(neg)
    k = resolve_k(k, n)
    pre = ranked(neg)[:int(n * prefilter)]
    if k > len(pre):
        raise ValueError(f"k = {k} is more than the {len(pre)} rows the negCLIPLoss prefilter keeps "
                         f"(prefilter = {prefilter} of n = {n}); raise prefilter or lower k")
    return ranked(sim, pre)[:k]
