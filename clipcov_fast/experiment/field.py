"""The field's selectors in the experiment (configs.FIELD), each as docs/field.md defines it, with what it needs
from the run: the proxy's embeddings of fashion-val images (the target of NormSim and of the image-based
filter: never the test set), the proxy's temperature (negCLIPLoss, one batch of the whole pool) and the pool's
captions with every class's caption words as entries (MetaCLIP, t set so that the subset has k pairs)."""
import json
import logging
from pathlib import Path

import numpy as np

from .. import files
from ..baselines import metaclip
from ..methods import run_method
from ..pipeline import models
from ..pipeline.pools.fashion import WORDS
from ..pipeline.sources.table import Table
from ..training import evaluate
from .configs import CLASS_NAMES

log = logging.getLogger("clipcov_fast.experiment")
# MetaCLIP's entries: the class names of the prompts and every caption word of each class, once each
ENTRIES = tuple(dict.fromkeys(CLASS_NAMES + tuple(w for words in WORDS for w in words)))


def inputs(work, model, ckpt, val):
    """{"target": the proxy's normalized image embeddings of the fashion-val folder `val` (float32),
    "temperature": 1 / the proxy's logit scale}, cached in WORK/field-target.npy and WORK/field.json for
    this checkpoint's bytes and this folder."""
    work = Path(work)
    key = {"checkpoint_sha256": models.file_sha256(ckpt), "val": str(Path(val).resolve())}
    meta, target = work / "field.json", work / "field-target.npy"
    if meta.is_file() and target.is_file():
        data = json.loads(meta.read_text())
        if data.get("key") == key:
            return {"target": np.load(target), "temperature": data["temperature"]}
    import torch

    net, pre, _ = models.load(model, ckpt)
    table, _, _ = evaluate.read_dataset(val)
    G = evaluate.image_features(net, pre, table)
    with torch.no_grad():
        temperature = float(1.0 / net.logit_scale.exp().item())
    files.save_npy(target, G.astype(np.float32))
    files.save_json(meta, {"key": key, "temperature": temperature, "target_rows": len(G)})
    log.info("field: target = %d fashion-val images through the proxy; temperature %.4g", len(G), temperature)
    return {"target": G.astype(np.float32), "temperature": temperature}


def captions(web, emb):
    """The pool's caption of every embedded row (the web table's title column, in the embeddings' row order)."""
    table = Table(Path(web) / "pairs.tsv")
    col = table.header.index("title")
    return [table.rows[r][col] for r in np.load(Path(emb) / "rows.npy")]


def select(method, img, txt, k, *, field, caps, labels, seed, num_threads):
    """The Selection of field method `method` (configs.FIELD) at k pairs; `field` is inputs()'s dict."""
    one_batch = {"batch_size": len(img), "repeats": 1, "temperature": field["temperature"]}
    name, params = {
        "negclip_loss": ("negclip_loss", one_batch),
        "normsim2": ("normsim", {"target": field["target"], "p": 2}),
        "normsim_inf": ("normsim", {"target": field["target"], "p": float("inf")}),
        "negclip_normsim": ("negclip_normsim", {"target": field["target"], "p": float("inf"), **one_batch}),
        "image_based_clip_score": ("image_based_clip_score", {"target": field["target"]}),
        "metaclip": ("metaclip", {"entries": list(ENTRIES)}),
    }[method]
    if method == "metaclip":
        params["max_matches"] = metaclip.t_for_k(caps, ENTRIES, k, seed=seed)
    return run_method(name, img, txt, k, labels=labels, seed=seed, num_threads=num_threads, device="cpu",
                      captions=caps, **params)
