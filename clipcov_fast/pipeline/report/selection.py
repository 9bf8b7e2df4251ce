"""A selection as `clipcov select` wrote it (the subset file and its JSON summary), opened again together with
the pool it came from: its rows, proxy classes, CLIP scores, captions, images and the pool's own records."""
import io
import json
from pathlib import Path

import numpy as np

from ... import files, inputs
from ..subsets import embedding_files, load_array

CHUNK = inputs.CHUNK_ROWS


def _existing(path, where, what):
    """A path from a summary's parameters: as recorded, else beside the summary; or the error naming both."""
    p = Path(path)
    if p.exists():
        return p
    if not p.is_absolute() and (where / p).exists():
        return where / p
    raise FileNotFoundError(f"{what}: {path} (recorded in the summary) is not there, nor beside the summary in {where}")


class OpenedSelection:
    """indices (pick order), n, labels, method and k; clip_scores(); captions(rows), images(rows) (openers or
    None), links(rows) (urls or None), records() ({column: values} of the pool's own records), name."""

    def __init__(self, subset):
        self.path = Path(subset)
        self.summary = self._summary()
        params = self.summary.get("parameters", {})
        self.method = self.summary.get("method", "?")
        where = self._summary_path.parent
        self._emb = self._source = self._pool = self._rows = None
        if params.get("emb"):
            self._emb = _existing(params["emb"], where, "--emb")
            found = embedding_files(self._emb)
            self.img, self.txt = (load_array(found[k], "--emb") for k in ("img", "txt"))
            self._rows = np.asarray(load_array(self._emb / "rows.npy", "--emb"))
            data = (found["manifest"] or {}).get("data")
            if data:
                from ..sources import from_spec
                self._source = from_spec(data)
            labels_path = params.get("labels") or found["labels"]
            class_emb = params.get("class_emb") or found["class_emb"]
        elif params.get("datacomp") or params.get("clip_retrieval"):
            from ..sources import open_pool
            self._pool = open_pool(
                datacomp=_existing(params["datacomp"], where, "--datacomp") if params.get("datacomp") else None,
                clip_retrieval=(_existing(params["clip_retrieval"], where, "--clip-retrieval")
                                if params.get("clip_retrieval") else None),
                arch=params.get("arch") or "b32", check=False)
            self.img = self.txt = None
            labels_path, class_emb = params.get("labels"), params.get("class_emb")
        elif params.get("img") and params.get("txt"):
            self.img = load_array(_existing(params["img"], where, "--img"), "--img")
            self.txt = load_array(_existing(params["txt"], where, "--txt"), "--txt")
            labels_path, class_emb = params.get("labels"), params.get("class_emb")
        else:
            raise ValueError(f"{self._summary_path}: names no source (--emb, --img/--txt, --datacomp, "
                             "--clip-retrieval) in its parameters")
        self.n = self._pool.n if self._pool is not None else len(self.img)
        if self.summary.get("n") not in (None, self.n):
            raise ValueError(f"{self.path}: its summary says the pool has {self.summary['n']} rows, but the pool "
                             f"found has {self.n}: the subset comes from another pool")
        self.indices = self._indices()
        self.k = len(self.indices)
        class_emb = class_emb and _existing(class_emb, where, "--class-emb")
        self.class_emb = None if not class_emb else np.asarray(load_array(class_emb, "--class-emb"))
        self.labels = self._labels(labels_path and _existing(labels_path, where, "--labels"), self.class_emb)
        self.name = f"{self.method} ({self.path.name})"

    # --- the subset file and its summary
    @property
    def _summary_path(self):
        return files.companion(self.path, ".json")

    def _summary(self):
        path = self._summary_path
        if not path.is_file():
            raise FileNotFoundError(f"{self.path}: no summary {path.name} beside it (clipcov select writes one)")
        try:
            return json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a readable summary ({e})") from e

    def _indices(self):
        p = self.path
        if p.suffix == ".parquet":
            from ..sources.pool import read_parquet_columns
            cols = read_parquet_columns(p, ["index"])
            if "index" not in cols:
                raise ValueError(f"{p}: has no 'index' column (clipcov select writes one)")
            idx = np.asarray(cols["index"], np.int64)
        else:
            arr = np.asarray(load_array(p if p.suffix == ".npy" else files.companion(p, ".npy"), "SUBSET"))
            idx = self._from_uids(arr) if arr.dtype.names else arr.astype(np.int64)
        if idx.ndim != 1 or (len(idx) and (idx.min() < 0 or idx.max() >= self.n)):
            raise ValueError(f"{p}: holds rows outside the pool's {self.n}: the subset comes from another pool")
        if len(np.unique(idx)) != len(idx):
            raise ValueError(f"{p}: names a row twice; not a subset")
        return idx

    def _from_uids(self, uids):
        """A DataComp uid file (sorted u8,u8 records) as pool rows (ascending: the file keeps no pick order)."""
        from ..sources.pool import uid_pairs

        if self._pool is None or self._pool.key_name != "uid":
            raise ValueError(f"{self.path}: a uid file needs its DataComp pool (--datacomp in the summary)")
        pairs = np.concatenate([uid_pairs(self._pool.keys(i)) for i in range(len(self._pool.shards))])
        order = np.argsort(pairs, kind="stable")
        at = np.searchsorted(pairs[order], uids)
        ok = (at < len(pairs)) & (pairs[order][np.minimum(at, len(pairs) - 1)] == uids)
        if not ok.all():
            raise ValueError(f"{self.path}: {int((~ok).sum())} uids are not in the pool: another pool's subset")
        return np.sort(order[at])

    def _labels(self, labels_path, class_emb):
        if labels_path:
            return inputs.check_labels(np.asarray(load_array(labels_path, "--labels")), self.n)
        if class_emb is not None:
            T = inputs.check_class_emb(class_emb, self._d(), True)
            return np.concatenate([inputs.zero_shot_labels(inputs.as_matrix(a, "emb_img"), T, True)
                                   for a, _ in self.chunks()])
        return np.zeros(self.n, np.int64)

    def _d(self):
        return self._pool.d if self._pool is not None else self.img.shape[1]

    # --- rows
    def chunks(self):
        """(img, txt) of consecutive row chunks, in pool order (a pool is read shard by shard)."""
        if self._pool is None:
            for s in range(0, self.n, CHUNK):
                yield self.img[s:s + CHUNK], self.txt[s:s + CHUNK]
            return
        for i in range(len(self._pool.shards)):
            A, B = self._pool.read(i)
            for s in range(0, len(A), CHUNK):
                yield A[s:s + CHUNK], B[s:s + CHUNK]

    def clip_scores(self):
        """Every row's CLIP score, in one pass over the pool (a progress bar for a large one)."""
        from tqdm.auto import tqdm

        from ...baselines import clip_scores

        parts = [clip_scores(a, b) for a, b in tqdm(self.chunks(), total=-(-self.n // CHUNK), unit="chunk",
                                                    desc="clipcov report: scores", disable=None, leave=False)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def arrays(self):
        """The whole pool's arrays (for the selection's own terms), or None when it is a pool of shards."""
        return None if self._pool is not None else (self.img, self.txt)

    # --- what rows say
    def _shard_rows(self, rows):
        off = self._pool.offsets()
        shard = np.searchsorted(off, rows, side="right") - 1
        return [(int(i), [int(r - off[i]) for r in rows if off[i] <= r < off[i + 1]], ) for i in np.unique(shard)]

    def _pool_column(self, rows, getter):
        out = {}
        for i, local in self._shard_rows(np.asarray(rows, np.int64)):
            values = getter(i)
            for r in local:
                out[int(self._pool.offsets()[i] + r)] = None if values is None else values[r]
        return [out[int(r)] for r in rows]

    def captions(self, rows):
        if self._source is not None:
            caps = self._source.captions()
            return [caps[int(self._rows[r])] for r in rows]
        if self._pool is not None and self._pool.has_captions:
            return self._pool_column(rows, self._pool.captions)
        return [None] * len(rows)

    def images(self, rows):
        """A function that opens each row's image (PIL), or None where the pool has no image on disk."""
        from PIL import Image

        src = self._source
        if src is None:
            return [None] * len(rows)
        if src.kind == "table":
            return [lambda p=src.image_path(int(self._rows[r])): Image.open(p) for r in rows]
        if src.kind == "folder":
            return [lambda p=src.files[int(self._rows[r])]: Image.open(p) for r in rows]
        wanted = {int(self._rows[r]) for r in rows}  # webdataset: one pass over the shards for these rows
        got = {i: op for i, _, _, op in src.items() if i in wanted}
        return [got.get(int(self._rows[r])) for r in rows]

    def links(self, rows):
        if self._pool is None or self._pool.kind != "datacomp":
            return [None] * len(rows)
        from ..sources.pool import read_parquet_columns

        return self._pool_column(rows, lambda i: read_parquet_columns(self._pool.parquets[i], ["url"]).get("url"))

    def records(self):
        """{column: values per pool row} of the pool's own records (a built-in pool's 'noise'), or {}."""
        src = self._source
        if src is None or src.kind != "table" or "noise" not in src.header:
            return {}
        col = src.header.index("noise")
        return {"noise": np.asarray([src.rows[int(r)][col] for r in self._rows], dtype=object)}

    def describe(self):
        p = self.summary.get("parameters", {})
        source = next((f"{flag} {p[key]}" for key, flag in (("emb", "--emb"), ("datacomp", "--datacomp"),
                                                             ("clip_retrieval", "--clip-retrieval"), ("img", "--img"))
                       if p.get(key)), "?")
        return f"{self.method}, k = {self.k} of n = {self.n}, from {source}"


def thumbnail(opener, size=96):
    """A small JPEG of the image (bytes), or None when it does not open."""
    try:
        im = opener().convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=70)
        return buf.getvalue()
    except Exception:  # noqa: BLE001 - any unreadable image becomes a placeholder, listed on the page
        return None
