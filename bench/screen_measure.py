"""One ClipCov selection with the coverage screen on or off (CLIPCOV_SCREEN in the environment), timed by stage,
with what the screen decided; prints a JSON line.

    CLIPCOV_SCREEN=0|1 python bench/screen_measure.py POOL K [PICKS.npy]
    python bench/screen_measure.py table DIR      (the markdown table of bench/screen_bench.sh's results)

POOL: a folder of img.npy, txt.npy and labels.npy (clipcov_fast.synthetic.write_pool; labels optional: one class),
or random:N:D:SEED for one class of Gaussian rows (half the similarities negative). K: picks, or a fraction.
PICKS.npy: where the pick order is written, to compare the two settings' picks. The steps are those of
clipcov_fast.select (api.select), run one by one so that the terms stage and the screen's counts can be read.
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from clipcov_fast import api, inputs


def load(pool):
    if pool.startswith("random:"):
        n, d, seed = map(int, pool.split(":")[1:])
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((n, d), dtype=np.float32), rng.standard_normal((n, d), dtype=np.float32),
                np.zeros(n, np.int64))
    p = Path(pool)
    y = np.load(p / "labels.npy") if (p / "labels.npy").is_file() else None
    return np.load(p / "img.npy", mmap_mode="r"), np.load(p / "txt.npy", mmap_mode="r"), y


def main(pool, k, picks=None):
    A, B, y = load(pool)
    k = float(k) if "." in k else int(k)
    t0 = time.perf_counter()
    w, threads, A, B, y, label_sim = api._common(A, B, "clipcov", y, None, 0.0, None, True, 2)
    k = inputs.resolve_k(k, len(A))
    eng, counts = api._load_engine(A, B, y, True, threads)
    t1 = time.perf_counter()
    eng.prepare(A, B, "clipcov", k, 0.0, w["coverage"], w["easiness"], w["center"], w["redundancy"],
                w["label"] * label_sim)
    t2 = time.perf_counter()
    idx, gains = eng.greedy(inputs.quotas(counts, k, "proportional"), k, False)
    t3 = time.perf_counter()
    if picks:  # the pick order, and the gains (at PICKS-gains.npy)
        np.save(picks, idx)
        np.save(str(picks).removesuffix(".npy") + "-gains.npy", gains)
    stats = dict(eng.screen_stats())
    print(json.dumps({"pool": pool, "n": len(A), "k": k, "classes": len(counts),
                      "screen": os.environ.get("CLIPCOV_SCREEN", "1"), "load_s": round(t1 - t0, 3),
                      "terms_s": round(t2 - t1, 3), "greedy_s": round(t3 - t2, 3), "total_s": round(t3 - t0, 3),
                      "screen_stats": stats,
                      "in_class_entries": int(np.sum(counts.astype(np.float64) ** 2)),
                      # of all in-class entries (classes under 1,024 rows and declined ones count as undecided)
                      "decided_share": stats["decided"] / float(np.sum(counts.astype(np.float64) ** 2))}))


def table(folder):
    """Per case: the median seconds of each setting over its runs, the ratio, what the screen decided, and
    whether the two settings picked the same rows in the same order."""
    folder = Path(folder)
    lines = ["| case | n | classes | terms s, dense / screen | speed-up | whole select s, dense / screen | "
             "in-class entries decided by the screen | picks |", "|---|---:|---:|---|---:|---|---:|---|"]
    for path in sorted(folder.glob("*.jsonl")):
        runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        by = {s: [r for r in runs if r["screen"] == s] for s in ("0", "1")}
        med = {s: {key: float(np.median([r[key] for r in rs])) for key in ("terms_s", "total_s")} for s, rs in by.items()}
        a, b = (np.load(folder / f"{path.stem}-picks-{s}.npy") for s in ("0", "1"))
        ga, gb = (np.load(folder / f"{path.stem}-picks-{s}-gains.npy") for s in ("0", "1"))
        where = a != b
        gap = float(np.max(np.abs(ga[where] - gb[where]) / np.abs(ga[where]))) if where.any() else 0.0
        same = ("same order" if not where.any() else
                f"same set; {int(where.sum())} of {len(a)} places swapped, gains there within {gap:.0e} (relative)"
                if set(a) == set(b) else f"{len(set(a) ^ set(b)) // 2} of {len(a)} differ")
        r = by["1"][0]
        lines.append(f"| {path.stem} | {r['n']:,} | {r['classes']:,} | {med['0']['terms_s']:.2f} / {med['1']['terms_s']:.2f} "
                     f"| {med['0']['terms_s'] / med['1']['terms_s']:.2f}x | {med['0']['total_s']:.2f} / "
                     f"{med['1']['total_s']:.2f} | {r['decided_share']:.1%} | {same} |")
    apricot = folder / "oneclass-12k-apricot.json"
    if apricot.is_file():
        lines.append("")
        lines.append(f"apricot, one class n = 12,000, k = 1,200: {json.loads(apricot.read_text())['seconds']:.2f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    table(sys.argv[2]) if sys.argv[1] == "table" else main(*sys.argv[1:])
