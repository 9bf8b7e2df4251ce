"""`clipcov eval`: zero-shot classification and image-caption retrieval of a trained model.

Zero-shot uses open_clip's build_zero_shot_classifier (class embedding = normalized mean of the
prompt-template embeddings); top-5 and mean per-class recall (the mean over classes of the share of
that class's images predicted right) are scikit-learn's top_k_accuracy_score and balanced_accuracy_score
(open_clip_train's accuracy() fails with numpy 2). Retrieval uses open_clip_train's get_clip_metrics
(recall@1/5/10 both ways).

Datasets: the built-in `fashion-mnist-test` and `digits` (built once into the cache folder), or a
folder in the same layout (pairs.tsv with filepath, title and label columns; class names from
manifest.json's class_names or --classes). Retrieval needs captions that tell pairs apart: with
class-name captions (as in the built-in sets) many captions are equal and recall@k is bounded by that.
"""
import json
import logging
from pathlib import Path

import numpy as np

from .. import files
from ..pipeline import models
from ..pipeline.prompts import class_names as named_classes
from ..pipeline.prompts import templates as named_templates

log = logging.getLogger("clipcov_fast.evaluate")
BUILTIN = ("fashion-mnist-test", "digits")


def dataset_folder(dataset, limit=None):
    """The folder of a dataset name or path (built-in ones are built into the cache on first use)."""
    if dataset in BUILTIN:
        from ..pipeline import cache
        return cache.pool(dataset, limit=limit)
    path = Path(dataset)
    if not (path / "pairs.tsv").is_file():
        raise FileNotFoundError(f"--dataset: not one of {BUILTIN} and no pairs.tsv in {path}")
    return path


def read_dataset(folder, limit=None, classes=None):
    """(Table, labels (n,) int64 or None, class names or None), first `limit` rows."""
    from ..pipeline.sources.table import Table

    table = Table(Path(folder) / "pairs.tsv")
    manifest = Path(folder) / "manifest.json"
    names = named_classes(classes) if classes else \
        (json.loads(manifest.read_text()).get("class_names") if manifest.is_file() else None)
    n = len(table) if limit is None else min(limit, len(table))
    table.rows = table.rows[:n]
    labels = None
    if "label" in table.header:
        col = table.header.index("label")
        labels = np.array([int(r[col]) for r in table.rows], dtype=np.int64)
        if names is None:
            raise ValueError(f"--classes: {folder} has labels but no class_names in manifest.json")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(f"--dataset: labels must lie in [0, {len(names)}), got {labels.min()}..{labels.max()}")
    return table, labels, names


def features(net, preprocess, tokenizer, table, batch_size=256, device="cpu"):
    """Normalized image and caption features (n, d) float32 of every row of a Table."""
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    img, txt = [], []
    with torch.no_grad(), tqdm(total=len(table), desc="clipcov eval", unit="pair", disable=None) as bar:
        for s in range(0, len(table), batch_size):
            rows = range(s, min(len(table), s + batch_size))
            ims = []
            for i in rows:
                with Image.open(table.image_path(i)) as im:
                    ims.append(preprocess(im))
            img.append(net.encode_image(torch.stack(ims).to(device), normalize=True).float().cpu())
            caps = tokenizer([table.rows[i][table._cap] for i in rows]).to(device)
            txt.append(net.encode_text(caps, normalize=True).float().cpu())
            bar.update(len(rows))
    return torch.cat(img).numpy(), torch.cat(txt).numpy()


def image_features(net, preprocess, table, batch_size=256, device="cpu"):
    """Normalized image features (n, d) float32 of every row of a Table, its images through the
    on-disk cache of pixels.images (the same bits as features() gives; for images scored again and
    again, as the experiment's students do)."""
    import torch

    from .pixels import images

    pix = images(table, preprocess)
    out = []
    with torch.no_grad():
        for s in range(0, len(pix), batch_size):
            batch = torch.from_numpy(np.array(pix[s:s + batch_size])).to(device)
            out.append(net.encode_image(batch, normalize=True).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def zero_shot_metrics(img, class_emb, labels):
    """top1, top5 (fractions) and mean per-class recall of nearest-class-embedding predictions."""
    from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score

    logits = np.asarray(img, np.float32) @ np.asarray(class_emb, np.float32).T
    classes = np.arange(logits.shape[1])
    pred = logits.argmax(1)
    top5 = top_k_accuracy_score(labels, logits, k=5, labels=classes) if len(classes) > 5 else 1.0
    return {"top1": float(np.mean(pred == labels)), "top5": float(top5),
            "mean_per_class_recall": float(balanced_accuracy_score(labels, pred)),
            "per_class_recall": [float(np.mean(pred[labels == c] == c)) if np.any(labels == c) else None
                                 for c in classes]}


def linear_probe(fit_x, fit_y, x, y, seed=0):
    """Top-1 of a multinomial logistic regression (scikit-learn, L2, C = 1) fitted on (fit_x, fit_y) and
    scored on (x, y): how linearly separable the classes are in a model's image features."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(np.asarray(fit_x), np.asarray(fit_y))
    return float(np.mean(clf.predict(np.asarray(x)) == np.asarray(y)))


def class_retrieval(img, labels, queries, query_class, k=10):
    """Text-to-image retrieval at class level: for each query (row of `queries`, a caption embedding, e.g.
    of a synonym such as "jumper"), rank the images by similarity; an image counts as relevant when its
    label is the query's class. Returns the mean over queries of precision@k and of top-1 relevance."""
    sims = np.asarray(queries, np.float32) @ np.asarray(img, np.float32).T  # (queries, images)
    k = min(k, sims.shape[1])
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    hit = np.asarray(labels)[top] == np.asarray(query_class)[:, None]
    return {f"precision_at_{k}": float(hit.mean()), "top1": float(hit[:, 0].mean()), "queries": int(len(hit))}


def retrieval_metrics(img, txt):
    """open_clip_train's get_clip_metrics on aligned rows: R@1/5/10 and ranks, both directions."""
    import torch
    from open_clip_train.train import get_clip_metrics

    m = get_clip_metrics(torch.from_numpy(img), torch.from_numpy(txt), 1.0)
    return {k: float(v) for k, v in m.items()}


def evaluate(model, dataset, *, checkpoint=None, limit=None, classes=None, templates="simple",
             retrieval_limit=1000, batch_size=256, device="cpu", seed=0, net=None):
    """Zero-shot and retrieval metrics of `model` (+ checkpoint) on `dataset` (see module doc).

    `net` may be a loaded (model, preprocess, tokenizer) triple instead of a name to load."""
    import torch

    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if retrieval_limit < 0:
        raise ValueError(f"--retrieval-limit must be >= 0, got {retrieval_limit}")
    folder = dataset_folder(dataset, limit)
    table, labels, names = read_dataset(folder, limit, classes)
    prompts = named_templates(templates)
    model_, pre, tok = net or models.load(model, checkpoint, device=device, seed=seed)
    img, txt = features(model_, pre, tok, table, batch_size, device)
    result = {"model": model, "checkpoint": None if checkpoint is None else str(checkpoint),
              "dataset": str(dataset), "pairs": len(table), "templates": str(templates),
              "prompts_per_class": len(prompts)}
    if labels is not None:
        from open_clip import build_zero_shot_classifier

        with torch.no_grad():
            W = build_zero_shot_classifier(model_, tok, names, prompts, device=device).T.float().cpu().numpy()
        result["classes"] = list(names)
        result["zero_shot"] = zero_shot_metrics(img, W, labels)
    r = min(retrieval_limit, len(table))
    if r >= 2:
        caps = [table.rows[i][table._cap] for i in range(r)]
        result["retrieval"] = dict(retrieval_metrics(img[:r], txt[:r]), pairs=r, distinct_captions=len(set(caps)))
    return result
