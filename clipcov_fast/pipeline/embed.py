"""`clipcov embed`: image and caption embeddings of every pair with an open_clip model.

Output folder EMB: img.npy and txt.npy (n_ok, d) float16, L2-normalized; rows.npy (the source row of
each embedding row); skipped.tsv (rows whose image could not be read); manifest.json.
While running, embeddings go straight into memory-mapped *.partial.npy files of n rows, and
.progress.json says how many rows are done; a rerun with the same settings continues there. Batches
are fixed row ranges, so a resumed run computes the very same batches and gives the same bytes.
"""
import json
import logging
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import files
from . import models
from .sources import open_source

log = logging.getLogger("clipcov_fast.embed")
PROGRESS = ".progress.json"


def _items(source, start, preprocess):
    """A torch IterableDataset of (row, key, caption, image tensor or None, error); DataLoader
    workers take every num_workers-th row, so each row is read once."""
    import torch

    class Items(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            worker, count = (info.id, info.num_workers) if info else (0, 1)
            for row, key, caption, open_image in source.items(start, worker, count):
                try:
                    with open_image() as im:
                        yield row, key, caption, preprocess(im), ""
                except Exception as e:  # noqa: BLE001 - any unreadable image is skipped, not fatal
                    yield row, key, caption, None, f"{type(e).__name__}: {e}"

    return Items()


def _save_progress(path, state):
    files.save_json(path, state)


def _clean(text):
    return " ".join(str(text).split())  # one line, no tabs, for skipped.tsv


def embed(data, model, out, *, checkpoint=None, batch_size=64, device="cpu", num_workers=0, seed=0,
          img_key="filepath", caption_key="title", sep=None, overwrite=False):
    """Embed every pair of `data` (a table, shards or a folder; or an opened source) into `out`.

    Returns the manifest dict. Reruns continue an interrupted run with the same settings.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"--checkpoint: no such file: {checkpoint}")
    source = open_source(data, img_key, caption_key, sep) if isinstance(data, (str, os.PathLike)) else data
    out = Path(out)
    n = len(source)
    settings = {"data": source.spec(), "pairs": n, "model": model,
                "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
                "checkpoint_sha256": models.file_sha256(checkpoint) if checkpoint else None,
                "seed": seed, "batch_size": batch_size}
    manifest_path, progress_path = out / "manifest.json", out / PROGRESS
    if manifest_path.is_file() and not overwrite:
        manifest = json.loads(manifest_path.read_text())
        if all(manifest.get(k) == v for k, v in settings.items()):
            log.info("%s is already complete with these settings", out)
            return manifest
        raise ValueError(f"--out: {out} holds embeddings made with other settings; "
                         "pass --overwrite or choose another folder")

    net, preprocess, tokenizer = models.load(model, checkpoint, device=device, seed=seed)
    with torch.no_grad():  # the output width, from one dummy caption
        dim = int(net.encode_text(tokenizer(["x"]).to(device)).shape[-1])
    parts = {name: out / f"{name}.partial.npy" for name in ("img", "txt")}
    skipped_part = out / "skipped.partial.tsv"
    state = json.loads(progress_path.read_text()) if progress_path.is_file() else None
    if state and not overwrite and state["settings"] != settings:
        raise ValueError(f"--out: {out} holds an unfinished run with other settings; "
                         "pass --overwrite or choose another folder")
    if state and not overwrite and all(p.is_file() for p in parts.values()):
        done = state["done"]
        arrays = {k: np.load(p, mmap_mode="r+") for k, p in parts.items()}
        log.info("resuming %s at row %d of %d", out, done, n)
    else:
        out.mkdir(parents=True, exist_ok=True)
        done = 0
        arrays = {k: np.lib.format.open_memmap(p, mode="w+", dtype=np.float16, shape=(n, dim))
                  for k, p in parts.items()}
        skipped_part.write_text("")
    # a crash may have left skipped lines of a batch that is not done: keep only the done rows
    skipped = [line.split("\t", 2) for line in skipped_part.read_text().splitlines()]
    skipped = [(int(r), key, why) for r, key, why in skipped if int(r) < done]
    skipped_part.write_text("".join(f"{r}\t{key}\t{why}\n" for r, key, why in skipped))

    def finish_batch(b, items):
        ok = [it for it in items if it[3] is not None]
        if ok:
            with torch.no_grad():
                rows = np.array([it[0] for it in ok])
                fi = net.encode_image(torch.stack([it[3] for it in ok]).to(device))
                ft = net.encode_text(tokenizer([it[2] for it in ok]).to(device))
                for name, f in (("img", fi), ("txt", ft)):
                    arrays[name][rows] = torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy()
                    arrays[name].flush()
        bad = [(it[0], _clean(it[1]), _clean(it[4])) for it in items if it[3] is None]
        for row, key, why in bad:
            log.warning("skipped row %d (%s): %s", row, key, why)
        with open(skipped_part, "a") as f:
            f.write("".join(f"{r}\t{key}\t{why}\n" for r, key, why in bad))
        skipped.extend(bad)
        _save_progress(progress_path, {"settings": settings, "done": min(n, (b + 1) * batch_size)})

    loader = torch.utils.data.DataLoader(_items(source, done, preprocess), batch_size=None,
                                         num_workers=num_workers)
    pending, next_b = {}, done // batch_size
    with tqdm(total=n, initial=done, desc="clipcov embed", unit="pair", disable=None) as bar:
        for item in loader:  # rows may arrive out of order from workers: batches go in row order
            pending.setdefault(item[0] // batch_size, []).append(item)
            while next_b * batch_size < n and \
                    len(pending.get(next_b, ())) == min(batch_size, n - next_b * batch_size):
                items = pending.pop(next_b)
                finish_batch(next_b, items)
                bar.update(len(items))
                next_b += 1
    if next_b * batch_size < n:
        raise ValueError(f"--data: the source yielded fewer pairs than the {n} it counted")
    return _finalize(out, settings, arrays, parts, skipped, skipped_part, progress_path, dim)


def _finalize(out, settings, arrays, parts, skipped, skipped_part, progress_path, dim):
    """Drop the skipped rows, write the final files atomically, remove the working files."""
    n = settings["pairs"]
    keep = np.ones(n, dtype=bool)
    keep[[r for r, _, _ in skipped]] = False
    rows = np.flatnonzero(keep)
    for name, arr in arrays.items():
        with files.atomic_path(out / f"{name}.npy") as tmp:
            if keep.all():
                arr.flush()
                os.replace(parts[name], tmp)
            else:  # copy the kept rows in chunks, never the whole array in memory
                dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(rows), dim))
                for s in range(0, len(rows), 1 << 16):
                    dst[s:s + (1 << 16)] = arr[rows[s:s + (1 << 16)]]
                dst.flush()
                del dst
    arrays.clear()
    files.save_npy(out / "rows.npy", rows.astype(np.int64))
    files.save_text(out / "skipped.tsv", "row\tkey\treason\n" + "".join(
        f"{r}\t{key}\t{why}\n" for r, key, why in sorted(skipped)))
    manifest = dict(settings, dim=dim, dtype="float16", normalized=True,
                    counts={"pairs": n, "embedded": int(len(rows)), "skipped": len(skipped)},
                    files={"img": "img.npy", "txt": "txt.npy", "rows": "rows.npy", "skipped": "skipped.tsv"})
    files.save_json(out / "manifest.json", manifest)
    for p in list(parts.values()) + [skipped_part, progress_path]:
        if p.exists():
            p.unlink()
    log.info("embedded %d of %d pairs into %s (%d skipped)", len(rows), n, out, len(skipped))
    return manifest
