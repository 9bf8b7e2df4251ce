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


def write_subset(emb, indices, out, manifest=None):
    """The chosen pairs of embedding folder `emb` in its source's format; returns the path written."""
    from .sources import from_spec

    if manifest is None:
        manifest = embedding_files(emb)["manifest"]
    if not manifest or "data" not in manifest:
        raise ValueError(f"--out: {emb} has no manifest.json naming its source data; use --out SUBSET.npy")
    rows = load_array(Path(emb) / "rows.npy", "--emb")
    return from_spec(manifest["data"]).write_subset(np.asarray(rows)[indices], out)


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


def save_selection(sel, out, params, emb=None):
    """Write OUT.npy (indices in pick order) and OUT.json (summary), atomically. With an embedding folder
    and an OUT that is not .npy, the chosen pairs go to OUT in the source's format first.
    Returns (indices path, summary path, summary)."""
    out = Path(out)
    info = summary(sel, params)
    if emb is not None and out.suffix != ".npy":
        info["subset"] = str(write_subset(emb, sel.indices, out))
        out = out.with_suffix(".npy")
    files.save_npy(out, sel.indices)
    files.save_json(out.with_suffix(".json"), info)
    return out, out.with_suffix(".json"), info
