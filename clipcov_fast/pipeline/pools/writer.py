"""Writes a built-in pool: DIR/images/..., DIR/pairs.tsv (open_clip's filepath/title columns plus label,
noise and source), DIR/skipped.tsv and DIR/manifest.json."""
import csv
import io
import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ... import files

log = logging.getLogger("clipcov_fast.pools")
COLUMNS = ("filepath", "title", "label", "noise", "source")


class PoolWriter:
    """Writes images (each atomically, 1,000 a folder) and collects their rows."""

    def __init__(self, out, name):
        self.out, self.name = Path(out), name
        self.rows, self.skipped = [], []

    def add(self, image, caption, label=-1, noise="clean", source=""):
        i = len(self.rows)
        rel = f"images/{i // 1000:04d}/{i:06d}.png"
        with files.atomic_path(self.out / rel) as tmp:
            image.save(tmp, format="PNG")
        self.rows.append((rel, " ".join(caption.split()), int(label), noise, source))
        return i

    def skip(self, key, reason):
        log.warning("skipped %s: %s", key, reason)
        self.skipped.append((str(key), " ".join(str(reason).split())))

    def finish(self, **info):
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(self.rows)
        files.save_text(self.out / "pairs.tsv", buf.getvalue())
        files.save_text(self.out / "skipped.tsv", "key\treason\n" + "".join(f"{k}\t{r}\n" for k, r in self.skipped))
        noise = [r[3] for r in self.rows]
        manifest = {"name": self.name, "pairs": len(self.rows), "skipped": len(self.skipped),
                    "columns": {"filepath": "image path relative to this folder", "title": "caption",
                                "label": "true class (-1: none)", "noise": "clean or the corruption applied",
                                "source": "where the image came from"},
                    "noise_counts": {k: noise.count(k) for k in sorted(set(noise))}, **info}
        files.save_json(self.out / "manifest.json", manifest)
        return manifest


def write_items(writer, items, total, **row):
    """items: (key, make) with make() -> (PIL image, caption[, row fields]); failures go to skipped.tsv."""
    for key, make in tqdm(items, total=total, desc=f"build {writer.name}", unit="image", disable=None):
        try:
            image, caption, *fields = make()
        except Exception as e:  # noqa: BLE001 - a broken source file is skipped, not fatal
            writer.skip(key, f"{type(e).__name__}: {e}")
            continue
        writer.add(image, caption, **{"source": key, **row, **(fields[0] if fields else {})})
