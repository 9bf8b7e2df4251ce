"""`clipcov labels`: zero-shot proxy classes of every pair from class-prompt embeddings.

class_emb[c] is the normalized mean of the model's text embeddings of class c's prompts (open_clip's
build_zero_shot_classifier); the label of a pair is the class whose embedding is nearest its image.
"""
import json
import logging
from pathlib import Path

import numpy as np

from . import io, models

log = logging.getLogger("clipcov_fast.labels")
FASHION_MNIST_CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                         "sneaker", "bag", "ankle boot")
CHUNK_ROWS = 1 << 16


def _lines(path, arg):
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{arg}: not a known name and no such file: {p}")
    lines = [s.strip() for s in p.read_text(encoding="utf-8").splitlines() if s.strip()]
    if not lines:
        raise ValueError(f"{arg}: {p} has no non-empty line")
    return lines


def class_names(spec):
    """'imagenet' (open_clip's 1,000 names), 'fashion-mnist', or a file with one class a line."""
    if spec == "imagenet":
        from open_clip import IMAGENET_CLASSNAMES
        return list(IMAGENET_CLASSNAMES)
    if spec == "fashion-mnist":
        return list(FASHION_MNIST_CLASSES)
    return _lines(spec, "--classes")


def templates(spec):
    """'openai' (the 80 ImageNet prompts), 'simple' (open_clip's 7), or a file of lines with '{}'."""
    from open_clip import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    if spec == "openai":
        return list(OPENAI_IMAGENET_TEMPLATES)
    if spec == "simple":
        return list(SIMPLE_IMAGENET_TEMPLATES)
    lines = _lines(spec, "--templates")
    bad = [t for t in lines if "{}" not in t]
    if bad:
        raise ValueError(f"--templates: every line needs '{{}}' where the class name goes, not {bad[0]!r}")
    return lines


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
    io.save_npy(emb / "class_emb.npy", T)
    io.save_npy(emb / "labels.npy", y)
    counts = np.bincount(y, minlength=len(names))
    io.save_json(emb / "labels.json", {
        "classes": str(classes), "templates": str(prompt_set), "prompts_per_class": len(prompts),
        "model": model, "checkpoint": checkpoint, "class_names": names,
        "counts": {n: int(c) for n, c in zip(names, counts)}})
    log.info("labelled %d pairs with %d classes (%d non-empty)", len(y), len(names), int((counts > 0).sum()))
    return y, T


def cmd_labels(args):
    y, T = label(args.emb, args.classes, args.templates, model=args.model, checkpoint=args.checkpoint,
                 device=args.device)
    print(f"wrote labels.npy ({len(y)} pairs, {int((np.bincount(y) > 0).sum())} of {len(T)} classes used) "
          f"and class_emb.npy into {args.emb}")


def register(sub):
    p = sub.add_parser("labels", help="zero-shot proxy labels from class prompts",
                       description="Label every embedded pair with its nearest class-prompt embedding; "
                                   "writes EMB/labels.npy and EMB/class_emb.npy.")
    p.add_argument("--emb", required=True, help="embedding folder written by clipcov embed")
    p.add_argument("--classes", default="imagenet", help="imagenet, fashion-mnist, or a file (one class a line)")
    p.add_argument("--templates", default="openai", help="openai, simple, or a file (lines with {})")
    p.add_argument("--model", help="open_clip model for the prompts (default: the one that made EMB)")
    p.add_argument("--checkpoint", help="local weights for --model")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_labels)
