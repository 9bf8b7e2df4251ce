"""DataComp pools: a folder of metadata `*.parquet` files, each with a same-named `*.npz` beside it whose
rows align with the parquet's (keys b32_img/b32_txt, 512-d, or l14_img/l14_txt, 768-d; float16 or
float32). The parquet has `uid` (32 hex characters) and `text` columns. Shards sort by file name."""
from pathlib import Path

import numpy as np

from .pool import Pool, Shard, check_unique_uids, check_widths, npz_headers, parquet_info, \
    read_parquet_columns, shard_dtype, uid_pairs

ARCHS = ("b32", "l14")


class DataCompPool(Pool):
    kind = "datacomp"
    key_name = "uid"
    has_captions = True

    def __init__(self, folder, arch="b32"):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"--arch must be one of {ARCHS}, got {arch!r}")
        self.folder, self.arch = Path(folder), arch
        if not self.folder.is_dir():
            raise FileNotFoundError(f"--datacomp: no such folder: {self.folder}")
        self.parquets = sorted(self.folder.glob("*.parquet"))
        if not self.parquets:
            raise FileNotFoundError(f"--datacomp: no *.parquet files in {self.folder}")
        self.keys_npz = (f"{arch}_img", f"{arch}_txt")
        for pq in self.parquets:
            npz = pq.with_suffix(".npz")
            heads = npz_headers(npz, self.keys_npz)
            (shape_i, dt_i), (shape_t, dt_t) = heads[self.keys_npz[0]], heads[self.keys_npz[1]]
            check_widths(str(npz), shape_i, shape_t)
            rows, columns = parquet_info(pq)
            if "uid" not in columns:
                raise ValueError(f"{pq}: has no 'uid' column (columns: {columns})")
            if rows != shape_i[0]:
                raise ValueError(f"{npz}: has {shape_i[0]} rows, but {pq} has {rows}")
            self.shards.append(Shard(str(npz), int(rows), int(shape_i[1]), shard_dtype(dt_i, dt_t, npz)))

    def read(self, i):
        try:
            with np.load(self.shards[i].name) as z:
                return z[self.keys_npz[0]], z[self.keys_npz[1]]
        except Exception as e:  # noqa: BLE001 - a shard that changed or broke since the check
            raise ValueError(f"{self.shards[i].name}: cannot read {self.keys_npz}: {e}") from e

    def keys(self, i):
        return read_parquet_columns(self.parquets[i], ["uid"])["uid"].astype(str)

    def captions(self, i):
        cols = read_parquet_columns(self.parquets[i], ["text"])
        return cols["text"] if "text" in cols else None

    def spec(self):
        return {"datacomp": str(self.folder.resolve()), "arch": self.arch}

    def files(self):
        return [str(f) for pq in self.parquets for f in (pq, pq.with_suffix(".npz"))]

    def check(self):
        super().check()
        pairs = []
        for i, pq in enumerate(self.parquets):
            pairs.append(uid_pairs(self.keys(i), str(pq)))  # checked; 16 bytes a uid, not a Python string
        check_unique_uids(pairs, [str(p) for p in self.parquets])
        return self

    def describe(self):
        out = super().describe()
        out["arch"] = self.arch
        return out
