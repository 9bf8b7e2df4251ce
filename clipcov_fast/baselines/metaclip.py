"""MetaCLIP's balancing of captions over metadata entries (Xu et al., 2023; facebookresearch/MetaCLIP,
metaclip/metaclip1: substr_matching.py, balancing.py).

A caption matches an entry when " entry " is a substring of the caption spaced MetaCLIP's way (` ,.;:?!`
wrapped in spaces, tabs and newlines made spaces, a space at each end); matching is case-sensitive, by one
Aho-Corasick automaton over all entries (pyahocorasick). Each entry's count is the number of captions
matching it; its keep probability is min(1, t / count). A caption is kept when any of its matched entries
keeps it: one uniform draw per (caption, entry), a hash of (seed, row, entry), so the draws do not depend on
how the pool is chunked. Captions matching no entry are dropped.
"""
from pathlib import Path

import numpy as np

from .common import float_arg, set_to_k

T = 20_000  # MetaCLIP's t for its 400M set; a smaller pool wants a smaller t
_PUNCT = (",", ".", ";", ":", "?", "!", "`")


def read_entries(path):
    """Metadata entries of a text file, one a line (blank lines skipped), in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--entries: no such file: {path}")
    entries = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not entries:
        raise ValueError(f"--entries: {path} holds no entries (one a line)")
    return entries


def spaced(text):
    out = f" {text} "
    for p in _PUNCT:
        out = out.replace(p, f" {p} ")
    for c in ("\t", "\n", "\r"):
        out = out.replace(c, " ")
    return out


class Matcher:
    """The entries each caption matches (sorted entry ids), by one automaton."""

    def __init__(self, entries):
        import ahocorasick

        entries = list(entries)
        if not entries:
            raise ValueError("entries must not be empty")
        self.n_entries = len(entries)
        self._auto = ahocorasick.Automaton()
        for i, entry in enumerate(entries):
            key = f" {entry} "
            ids = self._auto.get(key, ())
            self._auto.add_word(key, tuple(ids) + (i,))  # the same entry twice: both ids match
        self._auto.make_automaton()

    def matches(self, caption):
        if caption is None or not isinstance(caption, str):
            return []
        found = set()
        for _, ids in self._auto.iter(spaced(caption)):
            found.update(ids)
        return sorted(found)

    def match_all(self, captions):
        """(rows, entries): one pair per (caption, matched entry); rows counted from 0 in `captions`."""
        rows, ents = [], []
        for i, caption in enumerate(captions):
            m = self.matches(caption)
            rows.extend([i] * len(m))
            ents.extend(m)
        return np.asarray(rows, np.int64), np.asarray(ents, np.int64)


def entry_counts(entries_of_pairs, n_entries):
    return np.bincount(entries_of_pairs, minlength=n_entries).astype(np.int64)


def uniforms(seed, rows, entries):
    """A uniform in [0, 1) per (row, entry): splitmix64 of the three, vectorized."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed & (2**64 - 1)) * np.uint64(0x9E3779B97F4A7C15)
             ^ rows.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03)
             ^ entries.astype(np.uint64) * np.uint64(0x8CB92BA72F3D8DD7))
        x = np.asarray(x, np.uint64)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def kept_rows(rows, entries, counts, t, seed, offset=0):
    """Global rows (offset + row) kept by the sampling, ascending, from their (row, entry) matches."""
    prob = np.minimum(1.0, t / np.maximum(counts, 1))
    g = rows + offset
    hit = uniforms(seed, g, entries) < prob[entries]
    return np.unique(g[hit])


def t_for_k(captions, entries, k, *, seed=0):
    """The smallest integer t whose balanced set holds at least k captions (the matched ones if fewer match):
    with the draws fixed by the seed, the kept set only grows with t, so bisection finds it."""
    matcher = Matcher(entries)
    rows, ents = matcher.match_all(captions)
    counts = entry_counts(ents, matcher.n_entries)
    lo, hi = 1, max(1, int(counts.max(initial=1)))  # t >= the largest count keeps every matched caption
    while lo < hi:
        mid = (lo + hi) // 2
        if len(kept_rows(rows, ents, counts, mid, seed)) >= k:
            hi = mid
        else:
            lo = mid + 1
    return lo


def metaclip_balance(captions, entries, *, t=T, seed=0, k=None, clip_scores=None):
    """MetaCLIP balancing: the kept rows, ascending; with k (and clip_scores), ranked by CLIP score and cut
    or topped up to exactly k."""
    t = float_arg(t, "t", 0.0, low_open=True)
    matcher = Matcher(entries)
    rows, ents = matcher.match_all(captions)
    kept = kept_rows(rows, ents, entry_counts(ents, matcher.n_entries), t, seed)
    if k is None:
        return kept
    if clip_scores is None:
        raise ValueError("metaclip_balance with k ranks by CLIP score: give clip_scores")
    return set_to_k(kept, clip_scores, k, "metaclip")
