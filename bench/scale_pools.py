"""Synthetic pools in the layouts users hold, for bench/scale_measure.py.

    python bench/scale_pools.py clip-retrieval POOL_DIR [--parts 10]
        POOL_DIR/clip-retrieval/{img_emb,text_emb,metadata}/..._{N} from POOL_DIR's img.npy/txt.npy
    python bench/scale_pools.py datacomp OUT_DIR N [--classes 10000] [--parts 10] [--d 512]
        a DataComp-shaped pool written shard by shard (fp16 npz + parquet with uid/text), and
        OUT_DIR/labels.npy; nothing of n x d is ever held in memory
"""
import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clipcov_fast import synthetic


def _uids(rng, m):
    hi, lo = rng.integers(0, 2**63, size=(2, m), dtype=np.int64)
    return [f"{a:016x}{b:016x}" for a, b in zip(hi.tolist(), lo.tolist())]


def clip_retrieval(pool_dir, parts):
    pool_dir = Path(pool_dir)
    out = pool_dir / "clip-retrieval"
    A = np.load(pool_dir / "img.npy", mmap_mode="r")
    B = np.load(pool_dir / "txt.npy", mmap_mode="r")
    for sub in ("img_emb", "text_emb", "metadata"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for p, rows in enumerate(np.array_split(np.arange(len(A)), parts)):
        s, e = int(rows[0]), int(rows[-1]) + 1
        np.save(out / "img_emb" / f"img_emb_{p}.npy", np.asarray(A[s:e], np.float16))
        np.save(out / "text_emb" / f"text_emb_{p}.npy", np.asarray(B[s:e], np.float16))
        pq.write_table(pa.table({"image_path": [f"images/{i}.jpg" for i in range(s, e)],
                                 "caption": [f"caption {i}" for i in range(s, e)],
                                 "uid": _uids(rng, e - s)}), out / "metadata" / f"metadata_{p}.parquet")
    return out


def datacomp(out, n, classes, parts, d, seed=0):
    out = Path(out)
    (out / "datacomp").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y = synthetic.zipf_labels(n, classes, 0.5, rng)
    centres = (2.0 * rng.normal(size=(classes, d))).astype(np.float32)
    popular_y = rng.integers(0, classes, 12)
    popular = (centres[popular_y] + rng.normal(size=(12, d)), centres[popular_y] + rng.normal(size=(12, d)))
    for p, rows in enumerate(np.array_split(np.arange(n), parts)):
        s, e = int(rows[0]), int(rows[-1]) + 1
        img = np.empty((e - s, d), np.float16)
        txt = np.empty((e - s, d), np.float16)
        for c0 in range(s, e, 1 << 16):
            c1 = min(e, c0 + (1 << 16))
            a, b, _ = synthetic._chunk(np.random.default_rng([seed, c0]), centres, y[c0:c1], d, 0.2, 0.05, popular)
            img[c0 - s:c1 - s], txt[c0 - s:c1 - s] = a, b
        name = out / "datacomp" / f"{p:08d}"
        np.savez(f"{name}.npz", b32_img=img, b32_txt=txt)
        del img, txt
        pq.write_table(pa.table({"uid": _uids(rng, e - s), "text": [f"caption {i}" for i in range(s, e)]}),
                       f"{name}.parquet")
        print(f"wrote {name}.npz ({e - s} rows)", flush=True)
    np.save(out / "labels.npy", y)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("layout", choices=("clip-retrieval", "datacomp"))
    p.add_argument("path")
    p.add_argument("n", type=int, nargs="?")
    p.add_argument("--parts", type=int, default=10)
    p.add_argument("--classes", type=int, default=10_000)
    p.add_argument("--d", type=int, default=512)
    a = p.parse_args()
    if a.layout == "clip-retrieval":
        print(clip_retrieval(a.path, a.parts))
    else:
        print(datacomp(a.path, a.n, a.classes, a.parts, a.d))
