"""Model configs shipped with clipcov_fast, registered with open_clip, and offline model loading.

Nothing is ever downloaded: models are built from configs with random weights, or loaded from a
local checkpoint file (an open_clip state dict or an open_clip_train checkpoint).
"""
import hashlib
import logging
from pathlib import Path

log = logging.getLogger("clipcov_fast.models")
CONFIG_DIR = Path(__file__).parent
NAMES = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))


def register():
    """Make `clipcov-tiny` and `clipcov-small` known to open_clip (idempotent)."""
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)
    return NAMES


def file_sha256(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def load(name, checkpoint=None, device="cpu", seed=0):
    """(model in eval mode, eval image transform, tokenizer) for an open_clip model name.

    Without a checkpoint the weights are random but seeded, so two runs embed alike.
    """
    import open_clip
    import torch

    from .. import towers

    if name == towers.NAME:  # the locked-tower proxy; without a checkpoint, the cached default heads
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(f"--checkpoint: no such file: {checkpoint}")
        if checkpoint is None:
            from .. import cache
            checkpoint = cache.proxy_heads()
        return towers.load(checkpoint, device=device)
    register()
    if name not in open_clip.list_models():
        raise ValueError(f"--model: unknown open_clip model {name!r}; shipped here: "
                         f"{', '.join(NAMES)}, and the locked-tower proxy {towers.NAME}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"--checkpoint: no such file: {checkpoint}")
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None, device=device)
    if checkpoint is not None:
        try:
            open_clip.load_checkpoint(model, str(checkpoint), device=device)
        except Exception as e:  # noqa: BLE001 - report any unreadable checkpoint the same way
            raise ValueError(f"--checkpoint: cannot load {checkpoint} into {name}: {e}") from e
        log.info("loaded %s weights from %s", name, checkpoint)
    else:
        log.warning("model %s has random weights (seed %d): pass --checkpoint for a trained one", name, seed)
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(name)
