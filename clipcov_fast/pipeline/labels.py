"""`clipcov labels`: zero-shot proxy classes of every pair from class-prompt embeddings.

class_emb[c] is the normalized mean of the model's text embeddings of class c's prompts (open_clip's
build_zero_shot_classifier); the label of a pair is the class whose embedding is nearest its image.
"""
import json
import logging
from pathlib import Path

import numpy as np

from .. import files
from . import models
from .prompts import class_names, templates

log = logging.getLogger("clipcov_fast.labels")
CHUNK_ROWS = 1 << 16


def class_embeddings(net, tokenizer, names, prompts, device="cpu"):
    """(K, d) float32, one L2-normalized prompt-ensemble embedding per class."""
    from open_clip import build_zero_shot_classifier

    w = build_zero_shot_classifier(net, tokenizer, names, prompts, device=device)
    return w.T.float().cpu().numpy()


def zero_shot(img, class_emb):
    """Nearest class (largest dot product, lowest class on ties) of each row; read in chunks."""
    class_emb = np.asarray(class_emb, dtype=np.float32)
    out = np.empty(len(img), dtype=np.int64)
    for s in range(0, len(img), CHUNK_ROWS):
        out[s:s + CHUNK_ROWS] = np.argmax(np.asarray(img[s:s + CHUNK_ROWS], np.float32) @ class_emb.T, axis=1)
    return out


def label(emb, classes="imagenet", prompt_set="openai", *, model=None, checkpoint=None, device="cpu"):
    """Write EMB/labels.npy, EMB/class_emb.npy and EMB/labels.json; the model defaults to the one
    in EMB/manifest.json. Returns (labels, class_emb)."""
    emb = Path(emb)
    manifest_path = emb / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"--emb: no embeddings in {emb} (no manifest.json; run clipcov embed)")
    manifest = json.loads(manifest_path.read_text())
    if model is None:
        model, checkpoint = manifest["model"], manifest.get("checkpoint")
    names, prompts = class_names(classes), templates(prompt_set)
    net, _, tokenizer = models.load(model, checkpoint, device=device, seed=manifest.get("seed", 0))
    T = class_embeddings(net, tokenizer, names, prompts, device)
    img = np.load(emb / "img.npy", mmap_mode="r")
    if img.shape[1] != T.shape[1]:
        raise ValueError(f"--model: {model} embeds in {T.shape[1]} dimensions, the images in {emb} "
                         f"have {img.shape[1]}")
    y = zero_shot(img, T)
    files.save_npy(emb / "class_emb.npy", T)
    files.save_npy(emb / "labels.npy", y)
    counts = np.bincount(y, minlength=len(names))
    files.save_json(emb / "labels.json", {
        "classes": str(classes), "templates": str(prompt_set), "prompts_per_class": len(prompts),
        "model": model, "checkpoint": checkpoint, "class_names": names,
        "counts": {n: int(c) for n, c in zip(names, counts)}})
    log.info("labelled %d pairs with %d classes (%d non-empty)", len(y), len(names), int((counts > 0).sum()))
    return y, T


def prompt_embeddings(model, checkpoint=None, classes="imagenet", prompt_set="openai", device="cpu"):
    """(K, d) class-prompt embeddings of an open_clip model (for pools that hold no model name)."""
    names, prompts = class_names(classes), templates(prompt_set)
    net, _, tokenizer = models.load(model, checkpoint, device=device)
    return class_embeddings(net, tokenizer, names, prompts, device)


def label_pool(pool, class_emb, out):
    """Zero-shot labels of every row of a pool (pipeline.sources.pool), streamed by shard, in global row
    order; written to OUT (.npy). Returns the labels."""
    T = np.asarray(class_emb, dtype=np.float32)
    if T.ndim != 2 or T.shape[1] != pool.d:
        raise ValueError(f"--class-emb: class embeddings of shape {T.shape} do not match the pool's width {pool.d}")
    y = np.empty(pool.n, dtype=np.int64)
    off = pool.offsets()
    for i in range(len(pool.shards)):
        A, _ = pool.read(i)
        y[off[i]:off[i + 1]] = zero_shot(A, T)
    files.save_npy(out, y)
    log.info("labelled %d pool rows with %d classes", len(y), len(T))
    return y
