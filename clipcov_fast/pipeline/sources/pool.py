"""Embedding pools: shards of aligned image and caption arrays with a key (and maybe a caption) per row.

One interface for every layout (DataComp, clip-retrieval, a pair of .npy files): `shards` lists the
shards in order, `read(i)` returns shard i's (img, txt) arrays (any float dtype), `keys(i)` and
`captions(i)` its keys and captions. The global row index is the position in shard order. `check()`
reads every header and key column and raises, naming the file, before anything is written.
"""
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Shard:
    name: str          # what errors name (a file)
    rows: int
    d: int
    dtype: np.dtype    # what both arrays are read as: the wider of their dtypes, native byte order


def shard_dtype(img_dtype, txt_dtype, name):
    """The dtype a shard's rows are held in: fp32 captions beside fp16 images stay fp32 (a cast to fp16
    would turn large values into Inf), and a big-endian file is read into this machine's byte order."""
    for dt in (img_dtype, txt_dtype):
        if np.dtype(dt).kind != "f":
            raise ValueError(f"{name}: embeddings must be floats, got dtype {np.dtype(dt)}")
    return np.result_type(img_dtype, txt_dtype).newbyteorder("=")


class Pool:
    """Base of the pool readers. Subclasses fill `shards` in __init__ and implement read/keys/captions."""

    kind = "pool"
    key_name = "row"
    has_captions = False

    def __init__(self):
        self.shards = []

    # --- sizes
    @property
    def n(self):
        return int(sum(s.rows for s in self.shards))

    @property
    def d(self):
        return self.shards[0].d if self.shards else 0

    @property
    def dtype(self):
        return np.result_type(*[s.dtype for s in self.shards]) if self.shards else np.dtype(np.float32)

    def offsets(self):
        """Global index of each shard's first row, plus n at the end."""
        return np.concatenate([[0], np.cumsum([s.rows for s in self.shards])]).astype(np.int64)

    def __len__(self):
        return self.n

    # --- contents
    def read(self, i):
        raise NotImplementedError

    def keys(self, i):
        start = self.offsets()[i]
        return np.arange(start, start + self.shards[i].rows)

    def captions(self, i):
        return None

    def mapped(self, i):
        """(image file, caption file) of shard i when both are .npy files a worker can memory-map and
        read rows of by index; else None (the plan then copies the shard's rows into its buckets)."""
        return None

    def files(self):
        """Every file the pool reads, in shard order (outputs must not replace them; a work directory
        fingerprints them)."""
        return []

    def spec(self):
        """open_pool's arguments that open this pool again (in a worker), with resolved paths."""
        raise ValueError(f"a {self.kind} pool of in-memory arrays cannot be opened again by a worker")

    def describe(self):
        """What the pool is, for a work directory's arguments: its kind, its shards' shapes and its files'
        resolved paths (the same relative path typed in another folder is another pool)."""
        return {"kind": self.kind, "shards": [[s.rows, s.d, str(s.dtype)] for s in self.shards],
                "files": [str(Path(p).resolve()) for p in self.files()]}

    # --- checks
    def check(self):
        """Shard widths agree; subclasses add their own key checks. Returns self."""
        if not self.shards:
            raise ValueError(f"{self.kind}: no shards found")
        for s in self.shards:
            if s.d != self.shards[0].d:
                raise ValueError(f"{s.name}: embeddings have width {s.d}, but {self.shards[0].name} has "
                                 f"{self.shards[0].d}")
            if s.dtype.kind != "f":
                raise ValueError(f"{s.name}: embeddings must be floats, got dtype {s.dtype}")
        return self

    def arrays(self):
        """The whole pool as two in-memory arrays (the in-process engine)."""
        parts = [self.read(i) for i in range(len(self.shards))]
        if len(parts) == 1:
            return parts[0]
        return (np.concatenate([a for a, _ in parts]).astype(self.dtype, copy=False),
                np.concatenate([b for _, b in parts]).astype(self.dtype, copy=False))


def _read_header(f):
    """(shape, dtype) of the .npy stream f (public numpy API; header versions 1, 2 and 3)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return shape, dtype


def npy_header(path):
    """(shape, dtype) of a .npy file, checking that the file holds all the data its header promises."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            shape, dtype = _read_header(f)
            offset = f.tell()
    except Exception as e:  # noqa: BLE001 - any unreadable header
        raise ValueError(f"{path}: not a readable .npy file ({e})") from e
    need = offset + int(np.prod(shape)) * dtype.itemsize
    if path.stat().st_size < need:
        raise ValueError(f"{path}: truncated: its header promises {need} bytes, the file has {path.stat().st_size}")
    return shape, dtype


def npz_headers(path, keys):
    """{key: (shape, dtype)} of members of an .npz, without reading the arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            out = {}
            for key in keys:
                if f"{key}.npy" not in names:
                    have = sorted(n[:-4] for n in names if n.endswith(".npy"))
                    raise KeyError(key, have)
                with z.open(f"{key}.npy") as f:
                    shape, dtype = _read_header(f)
                out[key] = (shape, dtype)
            return out
    except KeyError as e:
        raise ValueError(f"{path}: has no array {e.args[0]!r} (it has {e.args[1]})") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz file (missing or truncated?): {e}") from e


def check_widths(name, shape_img, shape_txt):
    if len(shape_img) != 2 or shape_img != shape_txt:
        raise ValueError(f"{name}: image and caption embeddings must be (n, d) arrays of one shape, got "
                         f"{shape_img} and {shape_txt}")


_UID = re.compile(r"[0-9a-fA-F]{32}")  # int(u, 16) would also take '0x', '_', '+', spaces, other scripts' digits


def check_uids(uids, name):
    """uids (str array) are 32 hex characters each, [0-9a-fA-F] and nothing else."""
    uids = np.asarray(uids, dtype=object)
    bad = [i for i, u in enumerate(uids) if not isinstance(u, str) or not _UID.fullmatch(u)]
    if bad:
        raise ValueError(f"{name}: uid {uids[bad[0]]!r} in row {bad[0]} is not 32 hex characters")


_NIBBLE = np.full(256, 255, np.uint8)  # ASCII hex digit -> its value; anything else -> 255
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _NIBBLE[ord(chr(_c).upper())] = _i


def uid_pairs(uids, name="uids"):
    """32-hex uids -> numpy 'u8,u8' records (high, low 64 bits), as DataComp's subset files hold them;
    vectorized (a DataComp-small pool has 12.8M). A uid that is not 32 hex characters is named."""
    u = np.asarray(uids).astype(str)
    out = np.zeros(len(u), dtype=np.dtype("u8,u8"))
    if len(u) == 0:
        return out
    nib = None
    if u.dtype == np.dtype("U32") and np.all(np.char.str_len(u) == 32):
        try:
            nib = _NIBBLE[np.frombuffer(u.astype("S32").tobytes(), np.uint8).reshape(len(u), 32)]
        except UnicodeEncodeError:  # not ASCII
            pass
    if nib is None or (nib == 255).any():
        check_uids(u, name)  # names the first bad uid
        raise AssertionError(f"{name}: uid check missed a uid the nibble table refuses")
    for field, cols in (("f0", range(16)), ("f1", range(16, 32))):
        v = np.zeros(len(u), np.uint64)
        for j in cols:
            v = (v << np.uint64(4)) | nib[:, j].astype(np.uint64)
        out[field] = v
    return out


def check_unique_uids(pairs_by_shard, names):
    """No uid repeats across the pool, from each shard's uid_pairs (16 bytes a uid: a DataComp-small
    pool's 12.8M uids as Python strings in a dict took about 3 GB); the error names both files."""
    hi = np.concatenate([p["f0"] for p in pairs_by_shard])
    lo = np.concatenate([p["f1"] for p in pairs_by_shard])
    order = np.lexsort((np.arange(len(hi)), lo, hi))  # by uid, then by position
    h, l = hi[order], lo[order]
    same = (h[1:] == h[:-1]) & (l[1:] == l[:-1])  # order[t + 1] repeats the uid of order[t]
    if not same.any():
        return
    second = int(order[1:][same].min())  # the first repeat in pool order
    t = int(np.flatnonzero(order == second)[0])
    while t > 0 and same[t - 1]:  # back to the first of its group: the uid's earliest row
        t -= 1
    first = int(order[t])
    off = np.concatenate([[0], np.cumsum([len(p) for p in pairs_by_shard])])
    s_first, s_second = (int(np.searchsorted(off, i, side="right")) - 1 for i in (first, second))
    uid = f"{int(hi[second]):016x}{int(lo[second]):016x}"
    raise ValueError(f"{names[s_second]}: duplicate uid {uid!r} in row {second - off[s_second]} (also in "
                     f"{names[s_first]})")


def check_unique(keys_by_shard, names, what):
    """No key repeats across the pool; the error names both files."""
    seen = {}
    for keys, name in zip(keys_by_shard, names):
        for i, key in enumerate(keys):
            if key in seen:
                raise ValueError(f"{name}: duplicate {what} {key!r} in row {i} (also in {seen[key]})")
            seen[key] = name


def _parquet(path):
    """(pyarrow.parquet, path) once the extra is installed and the file exists."""
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("reading parquet needs pyarrow: pip install 'clipcov-fast[scale]'",
                                  name="pyarrow") from e
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return pq, path


def read_parquet_columns(path, columns):
    """{column: numpy array} of a parquet file (pyarrow), naming the file in errors."""
    pq, path = _parquet(path)
    try:
        table = pq.read_table(path, columns=[c for c in columns if c in pq.read_schema(path).names])
    except Exception as e:  # noqa: BLE001 - any unreadable parquet
        raise ValueError(f"{path}: not a readable parquet file (missing or truncated?): {e}") from e
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}


def parquet_info(path):
    """(rows, column names) from a parquet footer."""
    pq, path = _parquet(path)
    try:
        meta = pq.read_metadata(path)
        return meta.num_rows, list(meta.schema.names)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable parquet file (missing or truncated?): {e}") from e


class ArrayPool(Pool):
    """A pair of (n, d) .npy files (or in-memory arrays): one shard, keyed by row number."""

    kind = "arrays"

    def __init__(self, img, txt, name="--img/--txt"):
        super().__init__()
        self._paths = None
        if isinstance(img, (str, Path)):
            self._paths = (str(img), str(txt))
            shape_i, dt_i = npy_header(img)
            shape_t, dt_t = npy_header(txt)
            check_widths(f"{img} and {txt}", shape_i, shape_t)
            name = str(img)
            self._img = self._txt = None
        else:
            self._img, self._txt = img, txt
            shape_i, shape_t = np.shape(img), np.shape(txt)
            dt_i, dt_t = np.asarray(img[:0]).dtype, np.asarray(txt[:0]).dtype
            check_widths(name, shape_i, shape_t)
        self.shards = [Shard(name, int(shape_i[0]), int(shape_i[1]), shard_dtype(dt_i, dt_t, name))]

    def read(self, i):
        if self._paths:
            return np.load(self._paths[0], mmap_mode="r"), np.load(self._paths[1], mmap_mode="r")
        return self._img, self._txt

    def mapped(self, i):
        return None if self._paths is None else tuple(str(Path(p).resolve()) for p in self._paths)

    def files(self):
        return list(self._paths or ())

    def spec(self):
        if not self._paths:
            return super().spec()
        return {"img": str(Path(self._paths[0]).resolve()), "txt": str(Path(self._paths[1]).resolve())}

