"""Pools on disk for the scale tests: DataComp and clip-retrieval layouts written from arrays."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def uids_for(n, seed=0):
    rng = np.random.default_rng(seed)
    return [f"{int(a):016x}{int(b):016x}" for a, b in rng.integers(0, 2**63, size=(n, 2), dtype=np.int64)]


def split(n, parts):
    return np.array_split(np.arange(n), parts)


def write_datacomp(folder, A, B, parts=3, arch="b32", dtype=np.float16, uids=None):
    folder.mkdir(parents=True, exist_ok=True)
    uids = uids or uids_for(len(A))
    for p, rows in enumerate(split(len(A), parts)):
        name = folder / f"{p:08d}"
        pq.write_table(pa.table({"uid": [uids[i] for i in rows], "text": [f"caption {i}" for i in rows],
                                 "url": [f"http://x/{i}.jpg" for i in rows]}), f"{name}.parquet")
        np.savez(f"{name}.npz", **{f"{arch}_img": A[rows].astype(dtype), f"{arch}_txt": B[rows].astype(dtype)})
    return uids


def write_clip_retrieval(folder, A, B, parts=3, key="uid", dtype=np.float16):
    for sub in ("img_emb", "text_emb", "metadata"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    uids = uids_for(len(A), seed=1)
    for p, rows in enumerate(split(len(A), parts)):
        np.save(folder / "img_emb" / f"img_emb_{p}.npy", A[rows].astype(dtype))
        np.save(folder / "text_emb" / f"text_emb_{p}.npy", B[rows].astype(dtype))
        cols = {"image_path": [f"/data/{i}.jpg" for i in rows], "caption": [f"caption {i}" for i in rows]}
        if key:
            cols[key] = [uids[i] for i in rows]
        pq.write_table(pa.table(cols), folder / "metadata" / f"metadata_{p}.parquet")
    return uids
