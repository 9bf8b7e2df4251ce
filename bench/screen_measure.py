"""One ClipCov selection with the coverage screen on or off (CLIPCOV_SCREEN in the environment), timed by stage,
with what the screen decided; prints a JSON line.

    CLIPCOV_SCREEN=0|1 python bench/screen_measure.py POOL K [PICKS.npy]

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
    idx, _ = eng.greedy(inputs.quotas(counts, k, "proportional"), k, False)
    t3 = time.perf_counter()
    if picks:
        np.save(picks, idx)
    stats = dict(eng.screen_stats())
    print(json.dumps({"pool": pool, "n": len(A), "k": k, "classes": len(counts),
                      "screen": os.environ.get("CLIPCOV_SCREEN", "1"), "load_s": round(t1 - t0, 3),
                      "terms_s": round(t2 - t1, 3), "greedy_s": round(t3 - t2, 3), "total_s": round(t3 - t0, 3),
                      "screen_stats": stats,
                      "in_class_entries": int(np.sum(counts.astype(np.float64) ** 2)),
                      # of all in-class entries (classes under 1,024 rows and declined ones count as undecided)
                      "decided_share": stats["decided"] / float(np.sum(counts.astype(np.float64) ** 2))}))


if __name__ == "__main__":
    main(*sys.argv[1:])
