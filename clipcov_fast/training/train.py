"""`clipcov train`: train a CLIP on a subset with open_clip's own trainer (open_clip_train), in-process.

We only translate our options into open_clip_train's argv, register our model configs, and write the
training table open_clip_train reads (its csv reader resolves image paths from the working
directory, so the table gets absolute paths). Output folder RUN: open_clip_train's out.log,
params.txt and checkpoints/epoch_N.pt; plus RUN/train.tsv and RUN/train.json (our settings).

`--steps N` fixes the number of optimizer steps whatever the subset size (the experiment compares
subsets and the full pool at equal compute): the table then holds N x batch rows per epoch, written
batch by batch from fresh seeded permutations of the subset (each permutation gives floor(n / batch)
whole batches, like a shuffled epoch with drop_last), and open_clip_train reads it in that order (its
own shuffle would mix the repeated rows again and put the same pair twice in a batch: a false negative
for the contrastive loss). So no batch holds a pair twice unless the subset is smaller than a batch.

Defaults suit a CPU and tiny models. The paper's settings for real runs (ResNet-50 + text
transformer from scratch on 5-10% of CC3M, batch 512 on 2 GPUs, 30 epochs):
    --lr 5e-4 --beta1 0.9 --beta2 0.999 --eps 1e-8 --wd 0.1 --warmup 10000 --epochs 30
which are the defaults here except warmup (scaled down for short runs) and batch size.
Multi-GPU / multi-node: run this same command under torchrun; open_clip_train picks up the
distributed environment (see docs/experiment.md for the exact command).
"""
import contextlib
import csv
import io
import json
import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np

from .. import files
from ..pipeline import models

log = logging.getLogger("clipcov_fast.train")
PAPER = {"lr": 5e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "wd": 0.1, "warmup": 10000,
         "batch_size": 256, "epochs": 30}  # batch 512 over 2 GPUs = 256 per GPU


def _rank():
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))


def training_table(data, out, *, steps=None, epochs=1, batch_size=64, seed=0, img_key="filepath",
                   caption_key="title", sep=None):
    """Write out (a TSV with absolute image paths: filepath, title) from a table; with `steps`,
    ceil(steps / epochs) x batch_size rows (one epoch) from batch_order(). Returns (path, rows in the
    source, rows written)."""
    from ..pipeline.sources.table import Table

    table = Table(data, img_key=img_key, caption_key=caption_key, sep=sep)
    n = len(table)
    if n == 0:
        raise ValueError(f"--data: {data} has no rows")
    order = np.arange(n)
    if steps is not None:
        order = batch_order(n, math.ceil(steps / epochs), batch_size * _world(), seed)
    elif n < batch_size:
        raise ValueError(f"--data: {n} pairs is less than one batch ({batch_size}); lower --batch-size "
                         "or pass --steps")
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(["filepath", "title"])
    for i in order:  # captions on one line: open_clip reads the table with pandas
        w.writerow([str(table.image_path(i).resolve()), " ".join(table.rows[i][table._cap].split())])
    files.save_text(out, buf.getvalue())
    return Path(out), n, len(order)


def batch_order(n, batches, batch_size, seed=0):
    """Row order of `batches` batches of `batch_size` rows out of n, with no row twice in a batch when
    n >= batch_size: seeded permutations of range(n), each cut to its floor(n / batch_size) whole
    batches (the rest of a permutation is dropped; the next one starts afresh). When n < batch_size,
    each batch is made of its own permutations, so it holds every row floor(batch_size / n) or
    ceil(batch_size / n) times."""
    rng = np.random.default_rng(seed)
    if n >= batch_size:
        per = (n // batch_size) * batch_size
        want = batches * batch_size
        return np.concatenate([rng.permutation(n)[:per] for _ in range(math.ceil(want / per))])[:want]
    reps = math.ceil(batch_size / n)
    return np.concatenate([np.concatenate([rng.permutation(n) for _ in range(reps)])[:batch_size]
                           for _ in range(batches)])


def _world():
    return int(os.environ.get("WORLD_SIZE", 1))


class _Repeats:
    """open_clip_train's CsvDataset for a --steps table, which repeats each subset row many times: every
    distinct image file is decoded once and every distinct caption tokenized once (a PNG decode and
    open_clip's tokenizer were a third of a step's time); the transform, with its random crop, still runs on
    every row, in the same order, so the batches are the same tensors as CsvDataset's."""

    def __init__(self, dataset):
        self.dataset, self.images, self.tokens = dataset, {}, {}

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        from PIL import Image

        path, caption = str(self.dataset.images[idx]), str(self.dataset.captions[idx])
        if path not in self.images:
            with Image.open(path) as im:
                im.load()
                self.images[path] = im.copy()
        if caption not in self.tokens:
            self.tokens[caption] = self.dataset.tokenize([caption])[0]
        return self.dataset.transforms(self.images[path]), self.tokens[caption]


@contextlib.contextmanager
def _csv_in_order():
    """open_clip_train's csv loader reading the table in its written order (no shuffle; under torchrun a
    DistributedSampler without shuffle, so rank r reads rows r, r + W, ... of each global batch)."""
    from open_clip_train import data as ocd
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    original = ocd.get_csv_dataset

    def in_order(args, preprocess_fn, is_train, epoch=0, tokenizer=None):
        info = original(args, preprocess_fn, is_train, epoch=epoch, tokenizer=tokenizer)
        if not is_train:
            return info
        old = info.dataloader
        dataset = _Repeats(old.dataset)
        sampler = DistributedSampler(dataset, shuffle=False) if args.distributed else None
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
                            pin_memory=True, sampler=sampler, drop_last=True)
        loader.num_samples, loader.num_batches = old.num_samples, len(loader)
        return ocd.DataInfo(loader, sampler)

    ocd.get_csv_dataset = in_order
    try:
        yield
    finally:
        ocd.get_csv_dataset = original


def argv(train_data, out, model, *, epochs, batch_size, lr, beta1, beta2, eps, wd, warmup, seed, device,
         precision, workers, save_frequency=1, resume=False, log_every=50, extra=()):
    """The open_clip_train argv for one run (also what `--print-argv` shows)."""
    out = Path(out)
    args = ["--train-data", str(train_data), "--dataset-type", "csv", "--csv-separator", "\t",
            "--csv-img-key", "filepath", "--csv-caption-key", "title",
            "--model", model, "--pretrained", "", "--epochs", str(epochs), "--batch-size", str(batch_size),
            "--lr", str(lr), "--beta1", str(beta1), "--beta2", str(beta2), "--eps", str(eps), "--wd", str(wd),
            "--warmup", str(warmup), "--seed", str(seed), "--device", device, "--precision", precision,
            "--workers", str(workers), "--save-frequency", str(save_frequency),
            "--logs", str(out.parent.resolve()), "--name", out.name, "--report-to", "",
            "--log-every-n-steps", str(log_every), "--zeroshot-frequency", "0", "--val-frequency", "0"]
    if resume:
        args += ["--resume", "latest"]
    return args + list(extra)


def latest_checkpoint(out):
    """RUN/checkpoints/epoch_N.pt with the largest N, or None."""
    found = sorted(Path(out, "checkpoints").glob("epoch_*.pt"),
                   key=lambda p: int(p.stem.split("_")[1]) if p.stem.split("_")[1].isdigit() else -1)
    return found[-1] if found else None


@contextlib.contextmanager
def _foreach_adamw():
    """open_clip_train's AdamW with foreach=True (torch picks it by default only on GPUs): the same
    arithmetic, bit for bit, on grouped tensors. On a CPU the per-tensor loop was a third of a step,
    most of it spent on the 49408 x 64 token embedding, whose rows are almost all unused."""
    import functools
    import types

    import torch
    from open_clip_train import main as ocm

    original = ocm.optim
    ocm.optim = types.SimpleNamespace(**vars(torch.optim))
    ocm.optim.AdamW = functools.partial(torch.optim.AdamW, foreach=True)
    try:
        yield
    finally:
        ocm.optim = original


@contextlib.contextmanager
def _keep_logging():
    """open_clip_train sets every logger to INFO and adds root handlers; put them back afterwards
    (else torch, for one, prints its compile statistics at exit)."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    levels = {name: lg.level for name, lg in logging.root.manager.loggerDict.items()
              if isinstance(lg, logging.Logger)}
    levels[None] = root.level
    root.handlers[:] = []  # open_clip_train adds its own console and out.log handlers
    try:
        yield
    finally:
        root.handlers[:] = handlers
        for name, lg in list(logging.root.manager.loggerDict.items()):
            if isinstance(lg, logging.Logger):
                lg.setLevel(levels.get(name, logging.NOTSET))
        root.setLevel(levels[None])


def train(data, model, out, *, epochs=None, steps=None, batch_size=64, lr=PAPER["lr"], beta1=PAPER["beta1"],
          beta2=PAPER["beta2"], eps=PAPER["eps"], wd=PAPER["wd"], warmup=None, seed=0, device="cpu",
          precision=None, workers=0, resume=False, threads=None, log_every=50, extra=(), dry_run=False):
    """Train `model` (an open_clip name; ours are registered) on the pairs of table `data`.

    epochs: passes over the table (default 1 with steps, else 10). steps: total optimizer steps
    (see the module doc). warmup: steps of linear warm-up (default: 10% of the run).
    Returns {"checkpoint", "argv", "steps", ...}; with dry_run, only the argv, nothing trained.
    """
    import torch

    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    epochs = epochs if epochs is not None else (1 if steps else 10)
    for value, name in ((epochs, "--epochs"), (batch_size, "--batch-size")):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if model == "lite0-minilm":
        raise ValueError("--model: lite0-minilm is the locked-tower proxy; its heads are fitted by "
                         "clipcov experiment (towers.fit), not by open_clip_train")
    models.register()
    import open_clip

    if model not in open_clip.list_models():
        raise ValueError(f"--model: unknown open_clip model {model!r}; shipped here: {', '.join(models.NAMES)}")
    out = Path(out)
    settings_path = out / "train.json"
    if not resume and _rank() == 0 and (out / "out.log").exists():  # other ranks would see rank 0's log
        raise ValueError(f"--out: {out} already holds a run; pass --resume to continue it, or choose another folder")
    if resume and settings_path.is_file():
        old = json.loads(settings_path.read_text())
        if old["data"] != str(Path(data).resolve()) or old["model"] != model:
            raise ValueError(f"--resume: {out} was trained on {old['data']} with {old['model']}")
    precision = precision or ("amp" if device.startswith("cuda") else "fp32")
    table, n, rows = training_table(data, out / "train.tsv", steps=steps, epochs=epochs,
                                    batch_size=batch_size, seed=seed)
    steps_per_epoch = rows // (batch_size * _world())  # under torchrun each rank reads 1/W of the rows
    total = steps_per_epoch * epochs
    warmup = warmup if warmup is not None else max(1, total // 10)
    args = argv(table, out, model, epochs=epochs, batch_size=batch_size, lr=lr, beta1=beta1, beta2=beta2,
                eps=eps, wd=wd, warmup=warmup, seed=seed, device=device, precision=precision,
                workers=workers, resume=resume, log_every=log_every, extra=extra)
    info = {"data": str(Path(data).resolve()), "pairs": n, "model": model, "epochs": epochs,
            "steps": total, "batch_size": batch_size, "argv": args}
    if dry_run:
        return info
    if _rank() == 0:
        files.save_json(settings_path, info)
    if threads:
        torch.set_num_threads(threads)
    from open_clip_train.main import main as open_clip_train_main

    log.info("training %s on %d pairs of %s: %d steps of %d (%d epochs) into %s", model, n, data, total,
             batch_size, epochs, out)
    in_order = _csv_in_order() if steps is not None else contextlib.nullcontext()
    with _keep_logging(), warnings.catch_warnings(), in_order, _foreach_adamw():
        # its DataLoader always asks for pinned memory, which only means something with a GPU
        warnings.filterwarnings("ignore", message=".*pin_memory.*no accelerator")
        code = open_clip_train_main(args)
    if code not in (None, 0):
        raise ValueError(f"open_clip_train stopped with code {code}; see {out / 'out.log'}")
    info["checkpoint"] = str(latest_checkpoint(out))
    return info
