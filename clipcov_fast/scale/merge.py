"""merge: the global pick order from the per-class sequences, by (gain desc, index asc), as the engine's
class merge does. Proportional budget: every class's sequence is complete (its quota). Global budget:
classes were computed to a guessed target; when the merge would take a class past its target, that class
is extended (recomputed to a larger target, the same prefix) and the merge redone, so the result is the
global greedy exactly without computing k picks per class."""
import heapq
import logging
from pathlib import Path

import numpy as np

from .work import read_picks

log = logging.getLogger("clipcov_fast.scale")


def load_sequences(work_dir, num_classes):
    """{class: (indices, gains, target)} from the picks files, the longest computed target per class."""
    seqs = {}
    for path in sorted((Path(work_dir) / "picks").glob("*.npz")):
        z = read_picks(path)
        if z is None:  # broken: removed, so the job (or the extension it was) runs again
            log.warning("merge: %s does not read as a picks file; removing it", path)
            path.unlink(missing_ok=True)
            continue
        classes, targets, ptr, idx, gains = (z[key] for key in ("classes", "targets", "ptr", "indices", "gains"))
        for t, c in enumerate(classes):
            c = int(c)
            if c not in seqs or targets[t] > seqs[c][2]:
                seqs[c] = (idx[ptr[t]:ptr[t + 1]], gains[ptr[t]:ptr[t + 1]], int(targets[t]))
    return seqs


def _monotone(idx, gains):
    """The sequence already ranks by (gain desc, index asc) from pick to pick."""
    if len(idx) < 2:
        return True
    g0, g1, i0, i1 = gains[:-1], gains[1:], idx[:-1], idx[1:]
    return bool(np.all((g0 > g1) | ((g0 == g1) & (i0 < i1))))


def merge(seqs, quotas, counts, k):
    """(indices, gains, need): the first k picks of the merge, or need = classes to extend (then the
    picks are not valid). A class whose sequence ends before min(quota, count) is incomplete."""
    K = len(quotas)
    limit = [min(int(quotas[c]), int(counts[c])) for c in range(K)]
    have = {c: s for c, s in seqs.items() if limit[c] > 0}
    missing = [c for c in range(K) if limit[c] > 0 and c not in have]
    if missing:
        raise ValueError(f"merge: no picks for class(es) {missing[:10]}; run the work step first")
    # each class: its picks up to the quota; it is complete when it has them all
    lists = {c: (i[:limit[c]], g[:limit[c]], len(i) >= limit[c] or len(i) < t) for c, (i, g, t) in have.items()}
    if all(_monotone(i, g) for i, g, _ in lists.values()):
        return _merge_sorted(lists, k)
    return _merge_heap(lists, k)


def _merge_sorted(lists, k):
    cls = sorted(lists)
    idx = np.concatenate([lists[c][0] for c in cls]) if cls else np.zeros(0, np.int64)
    gains = np.concatenate([lists[c][1] for c in cls]) if cls else np.zeros(0)
    owner = np.repeat(np.arange(len(cls)), [len(lists[c][0]) for c in cls])
    order = np.lexsort((idx, -gains))
    # an incomplete class blocks the merge after its last computed pick
    pos = np.empty(len(order), np.int64)
    pos[order] = np.arange(len(order))
    need = []
    for t, c in enumerate(cls):
        i, _, complete = lists[c]
        if not complete:
            last = pos[owner == t].max() if len(i) else -1
            if last + 1 < min(k, len(order)) or len(order) < k:
                need.append(c)
    if need:
        return None, None, need
    take = order[:k]
    return idx[take], gains[take], []


def _merge_heap(lists, k):
    heads, at, out_i, out_g, need = [], {}, [], [], []
    for c, (i, g, _) in lists.items():
        if len(i):
            heads.append((-g[0], int(i[0]), c))
            at[c] = 1
        elif not lists[c][2]:
            need.append(c)
    heapq.heapify(heads)
    while heads and len(out_i) < k:
        ng, row, c = heapq.heappop(heads)
        out_i.append(row)
        out_g.append(-ng)
        i, g, complete = lists[c]
        if at[c] < len(i):
            heapq.heappush(heads, (-g[at[c]], int(i[at[c]]), c))
            at[c] += 1
        elif not complete:  # keep merging without it, to find every class this round must extend
            need.append(c)
    if need:
        return None, None, need
    return np.asarray(out_i, np.int64), np.asarray(out_g, np.float64), []


def extension_jobs(seqs, need, counts, quotas):
    """Jobs that recompute each needed class to a larger target (double, at least 64 more)."""
    jobs = []
    for c in need:
        have = seqs[c][2]
        target = int(min(counts[c], quotas[c], max(2 * have, have + 64)))
        jobs.append((f"class{c}_t{target}", [int(c)], [target]))
    return jobs


def run(work_dir, plan, run_jobs):
    """Merge, extending classes through run_jobs(jobs) until the first k picks are known."""
    counts, quotas, k = plan["counts"], plan["quotas"], plan["k"]
    rounds = 0
    while True:
        seqs = load_sequences(work_dir, len(counts))
        idx, gains, need = merge(seqs, quotas, counts, k)
        if not need:
            log.info("merge: %d picks after %d extension round(s)", len(idx), rounds)
            return idx, gains
        rounds += 1
        log.info("merge: extending %d class(es) (round %d)", len(need), rounds)
        run_jobs(extension_jobs(seqs, need, counts, quotas))
