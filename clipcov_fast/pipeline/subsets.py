"""Embedding folders (written by clipcov embed) in, chosen subsets out: the indices, a JSON summary, and
the chosen pairs in the source's own format (table rows, shards, or a table for an image folder)."""
import json
from pathlib import Path

import numpy as np

from .. import files


def load_array(path, name):
    """A .npy file, memory-mapped; `name` (the argument it came from) is named in errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file: {path}")
    try:
        return np.load(path, mmap_mode="r")
    except Exception as e:  # noqa: BLE001 - report any unreadable file the same way
        raise ValueError(f"{name}: cannot read {path} as a .npy array: {e}") from e


def embedding_files(emb):
    """{img, txt, labels, class_emb: path or None, manifest: dict or None} of an embedding folder."""
    emb = Path(emb)
    if not (emb / "img.npy").is_file():
        raise FileNotFoundError(f"--emb: no img.npy in {emb} (write one with clipcov embed)")
    found = {name: emb / f"{name}.npy" for name in ("img", "txt", "labels", "class_emb")}
    out = {name: (str(p) if p.is_file() or name in ("img", "txt") else None) for name, p in found.items()}
    manifest = emb / "manifest.json"
    out["manifest"] = json.loads(manifest.read_text()) if manifest.is_file() else None
    return out


def emb_captions(emb):
    """The caption of every embedding row of folder `emb`, from the source its manifest names (None when the
    manifest names none)."""
    from .sources import from_spec

    manifest = embedding_files(emb)["manifest"]
    if not manifest or "data" not in manifest:
        return None
    captions = from_spec(manifest["data"]).captions()
    return [captions[int(r)] for r in np.asarray(load_array(Path(emb) / "rows.npy", "--emb"))]


def write_subset(emb, indices, out, manifest=None, absolute_paths=False):
    """The chosen pairs of embedding folder `emb` in its source's format (table image paths absolute
    with absolute_paths); returns the path written."""
    from .sources import from_spec

    if manifest is None:
        manifest = embedding_files(emb)["manifest"]
    if not manifest or "data" not in manifest:
        raise ValueError(f"--out: {emb} has no manifest.json naming its source data; use --out SUBSET.npy")
    rows = load_array(Path(emb) / "rows.npy", "--emb")
    return from_spec(manifest["data"]).write_subset(np.asarray(rows)[indices], out, absolute_paths=absolute_paths)


def summary(sel, params):
    """What a selection did, as JSON: sizes, objective, per-class counts, timings and the parameters."""
    counts = sel.class_counts()
    return {
        "method": sel.method, "budget": sel.budget, "n": sel.n, "k": sel.k,
        "objective": None if np.isnan(sel.objective) else sel.objective,
        "classes": len(counts),
        "per_class": {str(c): {"pool": p, "subset": s} for c, (p, s) in counts.items()},
        "timings_s": sel.timings, "parameters": params,
    }


def selection_paths(out, emb=None):
    """(subset in the source's format or None, indices .npy, summary .json) that save_selection writes for
    OUT: with an embedding folder and an OUT that is not .npy, OUT is the subset and the other two are its
    companions (files.companion); else OUT holds the indices."""
    out = Path(out)
    subset = out if emb is not None and out.suffix != ".npy" else None
    npy = files.companion(out, ".npy") if subset else out
    return subset, npy, files.companion(out, ".json")


def save_selection(sel, out, params, emb=None, absolute_paths=False):
    """Write the indices (pick order) and the summary of selection_paths(out, emb), atomically; with an
    embedding folder and an OUT that is not .npy, the chosen pairs go to OUT in the source's format first.
    Returns (indices path, summary path, summary)."""
    subset, npy, summary_path = selection_paths(out, emb)
    info = summary(sel, params)
    if subset is not None:
        info["subset"] = str(write_subset(emb, sel.indices, subset, absolute_paths=absolute_paths))
    files.save_npy(npy, sel.indices)
    files.save_json(summary_path, info)
    return npy, summary_path, info


def source_inputs(emb):
    """{what: path} of every file an embedding folder's selection reads: the folder's arrays, its manifest
    and the source data the manifest names (outputs must not replace any of them)."""
    found = embedding_files(emb)
    out = {f"--emb {name}.npy": found[name] for name in ("img", "txt", "labels", "class_emb")}
    out["--emb rows.npy"] = str(Path(emb) / "rows.npy")
    out["--emb manifest.json"] = str(Path(emb) / "manifest.json")
    data = (found["manifest"] or {}).get("data", {})
    if data.get("path"):
        out["the source data"] = data["path"]
    for shard in data.get("shards", []):  # webdataset: the shards and the folders that hold them
        out[f"the source shard {Path(shard).name}"] = shard
        out["the source shards' folder"] = str(Path(shard).parent)
    return out


FORMATS = ("npy", "parquet", "datacomp")


def format_of(out, fmt=None):
    """The output format: given, or from OUT's suffix (.parquet -> parquet, else npy)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
        return fmt
    return "parquet" if str(out).endswith(".parquet") else "npy"


def _by_shard(pool, indices):
    """[(shard, positions in `indices`, local rows)] for the shards the indices fall in."""
    off = pool.offsets()
    shard = np.searchsorted(off, indices, side="right") - 1
    out = []
    for i in np.unique(shard):
        pos = np.flatnonzero(shard == i)
        out.append((int(i), pos, indices[pos] - off[i]))
    return out


def pool_keys(pool, indices):
    """Keys (uid, key, image_path or row) of the given pool rows, and their captions (or None)."""
    indices = np.asarray(indices, np.int64)
    keys = np.empty(len(indices), dtype=object)
    caps = np.empty(len(indices), dtype=object) if pool.has_captions else None
    for i, pos, local in _by_shard(pool, indices):
        keys[pos] = np.asarray(pool.keys(i))[local]
        if caps is not None:
            c = pool.captions(i)
            caps[pos] = None if c is None else np.asarray(c, dtype=object)[local]
    return keys, caps


def datacomp_uids(pool, indices):
    """The uid file DataComp's resharder takes: sorted numpy 'u8,u8' records of the chosen uids."""
    from .sources.pool import uid_pairs

    keys, _ = pool_keys(pool, indices)
    if pool.key_name != "uid":
        raise ValueError(f"--format datacomp needs a pool keyed by 32-hex uids; this {pool.kind} pool keys rows "
                         f"by {pool.key_name!r}")
    return np.sort(uid_pairs(keys, "--format datacomp"))


def write_pool_subset(pool, sel, out, fmt=None):
    """Write the selection of `pool` to OUT as .npy indices (pick order), a .parquet table (key, caption,
    class, gain, rank, index, and score for a score-ranked baseline) or DataComp's uid file; returns the path
    written."""
    fmt = format_of(out, fmt)
    out = Path(out)
    if fmt == "npy":
        files.save_npy(out, sel.indices)
    elif fmt == "datacomp":
        files.save_npy(out, datacomp_uids(pool, sel.indices))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        keys, caps = pool_keys(pool, sel.indices)
        cols = {pool.key_name: pa.array(keys.tolist())}
        if caps is not None:
            cols["caption"] = pa.array(caps.tolist(), type=pa.string())
        cols["class"] = pa.array(np.asarray(sel.labels)[sel.indices])
        cols["gain"] = pa.array(np.asarray(sel.gains, np.float64))
        if sel.scores is not None:  # a score-ranked baseline's score of each chosen row
            cols["score"] = pa.array(np.asarray(sel.scores, np.float64)[sel.indices])
        cols["rank"] = pa.array(np.arange(len(sel.indices), dtype=np.int64))
        cols["index"] = pa.array(np.asarray(sel.indices, np.int64))
        with files.atomic_path(out) as tmp:
            pq.write_table(pa.table(cols), tmp)
    return out
