"""Selectors that ship beside ClipCov, each exact to its published definition, with its score function
public beside it (float64 where the definition is a sum; float32 products where it is a max over a tiled
block) so that scores can be combined.

Same input conventions as select(): (n, d) float arrays (numpy, memory maps, torch CPU tensors), k an int
in [0, n] or a float fraction in (0, 1), rows L2-normalized when normalize=True. Ranked selections return
exactly k distinct int64 indices, score descending, ties to the smaller index; a rule that defines a set
(image_based, metaclip_balance, clip_score by fraction or threshold) returns the set, and with k the set
ranked by CLIP score, cut or topped up to exactly k. No n x n (or n x batch) block is ever held.

    classic.py   random, clip_score (top k; DataComp's fraction or threshold), random_stratified,
                 clip_score_balanced, released_greedy
    semdedup.py  SemDeDup
    negclip.py   negCLIPLoss, NormSim, and the paper's combination negclip_normsim
    datacomp.py  DataComp's image-based filter, alone and intersected with CLIP score
    metaclip.py  MetaCLIP's balancing of captions over metadata entries
    kmeans.py    spherical k-means (faiss) and nearest centroids
    blocks.py    the tiled reductions of A Bᵀ the heavy scores share (C++)
"""
from .classic import (clip_score, clip_score_balanced, clip_scores, random, random_stratified, released_greedy,
                      threshold_for_fraction, top_per_class)
from .datacomp import image_based, image_based_clip_score
from .metaclip import metaclip_balance, read_entries
from .negclip import negclip_loss, negclip_loss_scores, negclip_normsim, normsim, normsim_scores
from .semdedup import semdedup

__all__ = ["random", "clip_score", "clip_scores", "threshold_for_fraction", "top_per_class", "clip_score_balanced",
           "random_stratified", "released_greedy", "semdedup", "negclip_loss", "negclip_loss_scores", "normsim",
           "normsim_scores", "negclip_normsim", "image_based", "image_based_clip_score", "metaclip_balance",
           "read_entries"]
