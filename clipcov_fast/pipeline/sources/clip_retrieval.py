"""clip-retrieval `inference` output: img_emb/img_emb_{N}.npy, text_emb/text_emb_{N}.npy and
metadata/metadata_{N}.parquet (float16, L2-normalized); row i of the three files of partition N is one
sample; partitions sort by N as a number. Metadata has image_path and caption, plus json fields such as
uid or key when present; the key of a row is its uid, else its key, else its image_path."""
import re
from pathlib import Path

import numpy as np

from .pool import Pool, Shard, check_unique, check_widths, npy_header, parquet_info, read_parquet_columns, \
    shard_dtype

KEY_COLUMNS = ("uid", "key", "image_path")


class ClipRetrievalPool(Pool):
    kind = "clip-retrieval"
    has_captions = True

    def __init__(self, folder):
        super().__init__()
        self.folder = Path(folder)
        if not (self.folder / "img_emb").is_dir():
            raise FileNotFoundError(f"--clip-retrieval: no img_emb/ folder in {self.folder}")
        self.has_metadata = (self.folder / "metadata").is_dir()
        self.has_captions = self.has_metadata  # captions live in metadata/
        self.parts = self._partitions()
        self.key_name = None
        for part in self.parts:
            img, txt, meta = self._files(part)
            shape_i, dt_i = npy_header(img)
            shape_t, dt_t = npy_header(txt)
            check_widths(f"{img} and {txt}", shape_i, shape_t)
            if self.has_metadata:
                rows, columns = parquet_info(meta)
                if rows != shape_i[0]:
                    raise ValueError(f"{meta}: has {rows} rows, but {img} has {shape_i[0]}")
                key = next((c for c in KEY_COLUMNS if c in columns), None)
                if self.key_name is None:
                    self.key_name = key
                elif key != self.key_name:
                    raise ValueError(f"{meta}: keys rows by {key!r}, earlier partitions by {self.key_name!r}")
            self.shards.append(Shard(str(img), int(shape_i[0]), int(shape_i[1]), shard_dtype(dt_i, dt_t, img)))
        self.key_name = self.key_name or "row"

    def _partitions(self):
        """Partition numbers (as written, sorted as numbers) found in any of the folders; each must have all
        its files: a partition missing from one folder would silently drop its rows. (Numbers may skip:
        clip-retrieval writes no files for an empty partition.)"""
        kinds = [("img_emb", "img_emb_", ".npy"), ("text_emb", "text_emb_", ".npy")]
        if self.has_metadata:
            kinds.append(("metadata", "metadata_", ".parquet"))
        found = {}  # number -> {folder: the number as written}
        for folder, prefix, suffix in kinds:
            for p in (self.folder / folder).glob(f"{prefix}*{suffix}"):
                m = re.fullmatch(rf"{prefix}([0-9]+){re.escape(suffix)}", p.name)
                if m:
                    found.setdefault(int(m.group(1)), {})[folder] = m.group(1)
        if not any("img_emb" in f for f in found.values()):
            raise FileNotFoundError(f"--clip-retrieval: no img_emb_N.npy files in {self.folder / 'img_emb'}")
        for number in sorted(found):
            have = found[number]
            for folder, prefix, suffix in kinds:
                if folder not in have:
                    written = next(iter(have.values()))
                    other = next(f for f, _, _ in kinds if f in have)
                    raise FileNotFoundError(f"--clip-retrieval: partition {written} has {other}/ but no "
                                            f"{self.folder / folder / (prefix + written + suffix)}")
        return [found[number]["img_emb"] for number in sorted(found)]

    def _files(self, part):
        f = self.folder
        return (f / "img_emb" / f"img_emb_{part}.npy", f / "text_emb" / f"text_emb_{part}.npy",
                f / "metadata" / f"metadata_{part}.parquet")

    def read(self, i):
        img, txt, _ = self._files(self.parts[i])
        return np.load(img, mmap_mode="r"), np.load(txt, mmap_mode="r")

    def mapped(self, i):
        img, txt, _ = self._files(self.parts[i])
        return str(img.resolve()), str(txt.resolve())

    def spec(self):
        return {"clip_retrieval": str(self.folder.resolve())}

    def files(self):
        return [str(f) for part in self.parts for f in self._files(part)[:3 if self.has_metadata else 2]]

    def keys(self, i):
        if self.key_name == "row":
            return super().keys(i)
        return read_parquet_columns(self._files(self.parts[i])[2], [self.key_name])[self.key_name]

    def captions(self, i):
        if not self.has_metadata:
            return None
        cols = read_parquet_columns(self._files(self.parts[i])[2], ["caption"])
        return cols.get("caption")

    def check(self):
        super().check()
        if self.key_name in ("uid", "key"):
            check_unique([self.keys(i) for i in range(len(self.parts))],
                         [str(self._files(p)[2]) for p in self.parts], self.key_name)
        return self
