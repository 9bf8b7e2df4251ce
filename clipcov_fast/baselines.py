"""Baseline selectors that ship beside ClipCov (random, clip_score, semdedup)."""
