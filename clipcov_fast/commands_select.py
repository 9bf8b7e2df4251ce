"""`clipcov select`: choose a subset from embedding files and write it with a JSON summary."""
import json
import time
from pathlib import Path

import numpy as np

from . import api, baselines, inputs, io

METHODS = ("clipcov", "xcov", "random", "clip_score", "semdedup")


def parse_k(text):
    """'10%' -> 0.1, '0.1' -> 0.1, '1200' -> 1200."""
    text = str(text).strip()
    try:
        if text.endswith("%"):
            value = float(text[:-1]) / 100
            if not 0 < value < 1:
                raise ValueError
            return value
        return int(text) if text.isdigit() else float(text)
    except ValueError:
        raise ValueError(f"--k must be a count (1200), a fraction (0.1) or a percentage (10%), got {text!r}") from None


def parse_weights(text):
    """'coverage=1,easiness=2' -> {'coverage': 1.0, 'easiness': 2.0}."""
    out = {}
    for part in filter(None, (text or "").split(",")):
        key, sep, value = part.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"--weights must look like coverage=1,easiness=2, got {part!r}")
    return out


def load_array(path, arg):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{arg}: no such file: {path}")
    try:
        return np.load(path, mmap_mode="r")
    except Exception as e:  # noqa: BLE001 - report any unreadable file the same way
        raise ValueError(f"{arg}: cannot read {path} as a .npy array: {e}") from e


def run_method(method, img, txt, k, *, labels=None, class_emb=None, budget="proportional", threshold=0.0,
               weights=None, seed=0, num_threads=None, device="auto"):
    """Any selector by name -> Selection (baselines get labels too, for the per-class summary)."""
    if method in ("clipcov", "xcov"):
        return api.select(img, txt, k, objective=method, labels=labels, class_emb=class_emb,
                          threshold=threshold, weights=weights, budget=budget, num_threads=num_threads,
                          device=device)
    if method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {method!r}")
    t0 = time.perf_counter()
    n = len(img)
    k = inputs.parse_k(k, n)
    if method == "random":
        idx = baselines.random(n, k, seed=seed)
    elif method == "clip_score":
        idx = baselines.clip_score(img, txt, k)
    else:
        idx = baselines.semdedup(img, k, seed=seed)
    y = np.zeros(n, np.int64) if labels is None else inputs.check_labels(labels, n)
    timings = {"total": time.perf_counter() - t0}
    idx = np.asarray(idx, dtype=np.int64)
    return api.Selection(idx, np.full(len(idx), np.nan), float("nan"), y, k, n, method, "-", timings)


def summary(sel, params):
    counts = sel.class_counts()
    return {
        "method": sel.method, "budget": sel.budget, "n": sel.n, "k": sel.k,
        "objective": None if np.isnan(sel.objective) else sel.objective,
        "classes": len(counts),
        "per_class": {str(c): {"pool": p, "subset": s} for c, (p, s) in counts.items()},
        "timings_s": sel.timings, "parameters": params,
    }


def load_emb(args):
    """Fill --img/--txt (and --labels/--class-emb when absent) from an embedding folder."""
    emb = Path(args.emb)
    if not (emb / "img.npy").is_file():
        raise FileNotFoundError(f"--emb: no img.npy in {emb} (write one with clipcov embed)")
    if args.img or args.txt:
        raise ValueError("--emb replaces --img and --txt: give one or the other")
    args.img, args.txt = str(emb / "img.npy"), str(emb / "txt.npy")
    if not args.labels and (emb / "labels.npy").is_file():
        args.labels = str(emb / "labels.npy")
    if not args.class_emb and (emb / "class_emb.npy").is_file():
        args.class_emb = str(emb / "class_emb.npy")
    manifest = emb / "manifest.json"
    return json.loads(manifest.read_text()) if manifest.is_file() else None


def write_subset(manifest, emb, indices, out):
    """The chosen pairs in the source's own format (table rows, shards, or a table for a folder)."""
    from .data import from_spec

    if not manifest or "data" not in manifest:
        raise ValueError(f"--out: {emb} has no manifest.json naming its source data; use --out SUBSET.npy")
    rows = load_array(Path(emb) / "rows.npy", "--emb")
    return from_spec(manifest["data"]).write_subset(np.asarray(rows)[indices], out)


def cmd_select(args):
    manifest = load_emb(args) if args.emb else None
    if not (args.img and args.txt):
        raise ValueError("give --emb EMB, or both --img and --txt")
    img = load_array(args.img, "--img")
    txt = load_array(args.txt, "--txt")
    labels = load_array(args.labels, "--labels") if args.labels else None
    class_emb = load_array(args.class_emb, "--class-emb") if args.class_emb else None
    weights = parse_weights(args.weights) or None
    sel = run_method(args.method, img, txt, parse_k(args.k), labels=labels, class_emb=class_emb,
                     budget=args.budget, threshold=args.threshold, weights=weights, seed=args.seed,
                     num_threads=args.num_threads, device=args.device)
    out = Path(args.out)
    params = {key: getattr(args, key) for key in ("emb", "img", "txt", "labels", "class_emb", "k", "method",
                                                  "budget", "threshold", "weights", "seed")}
    info = summary(sel, params)
    if args.emb and out.suffix != ".npy":  # the subset in the source's format; indices beside it
        info["subset"] = str(write_subset(manifest, args.emb, sel.indices, out))
        out = out.with_suffix(".npy")
    io.save_npy(out, sel.indices)
    io.save_json(out.with_suffix(".json"), info)
    print(f"{sel!r}\nwrote {info.get('subset', out)} and {out.with_suffix('.json')}")


def register(sub):
    p = sub.add_parser("select", help="choose a subset from image/caption embeddings",
                       description="Choose k pairs from embedding .npy files (memory-mapped) and write "
                                   "their indices (SUBSET.npy) and a JSON summary beside them.")
    p.add_argument("--emb", help="embedding folder of clipcov embed (img.npy, txt.npy, and labels.npy, "
                                 "class_emb.npy when present); then --out SUBSET.tsv (or a folder for "
                                 "shards) writes the chosen pairs in the source's own format")
    p.add_argument("--img", help="image embeddings, (n, d) .npy")
    p.add_argument("--txt", help="caption embeddings, (n, d) .npy")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--labels", help="proxy class of each pair, (n,) integer .npy")
    group.add_argument("--class-emb", help="class-prompt text embeddings, (K, d) .npy, for zero-shot labels")
    p.add_argument("--k", required=True, help="subset size: 1200, 0.1 or 10%%")
    p.add_argument("--method", default="clipcov", choices=METHODS)
    p.add_argument("--budget", default="proportional", choices=("proportional", "global"))
    p.add_argument("--threshold", type=float, default=0.0, help="similarity threshold tau (default 0)")
    p.add_argument("--weights", default="", help="e.g. coverage=1,easiness=2,label=0.5,center=1,redundancy=1")
    p.add_argument("--seed", type=int, default=0, help="seed of the random and semdedup baselines")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--out", required=True, help="SUBSET.npy (the summary goes to SUBSET.json); with --emb also "
                                                "SUBSET.tsv/.csv, or a folder for webdataset shards")
    p.set_defaults(func=cmd_select)
