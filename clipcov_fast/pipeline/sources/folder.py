"""An image folder with sidecar captions: photo.jpg + photo.txt (first line is the caption)."""
import csv
import io
import os
from pathlib import Path

from PIL import Image

from ... import files

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


class Folder:
    kind = "folder"

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"--data: no such folder: {self.path}")
        # sorted for a stable row order; images without a caption file are not pairs
        self.files = sorted(p for p in self.path.rglob("*")
                            if p.suffix.lower() in IMAGE_SUFFIXES and p.with_suffix(".txt").is_file())
        if not self.files:
            raise ValueError(f"--data: no image with a sidecar .txt caption under {self.path}")

    def spec(self):
        return {"kind": self.kind, "path": str(self.path.resolve())}

    def __len__(self):
        return len(self.files)

    def caption(self, i):
        text = self.files[i].with_suffix(".txt").read_text(encoding="utf-8", errors="replace")
        return (text.splitlines() or [""])[0].strip()

    def captions(self):
        return [self.caption(i) for i in range(len(self.files))]

    def items(self, start=0, worker=0, num_workers=1):
        for i in range(start + worker, len(self.files), num_workers):
            path = self.files[i]
            yield i, str(path.relative_to(self.path)), self.caption(i), lambda p=path: Image.open(p)

    def write_subset(self, rows, out, absolute_paths=False):
        """A folder has no table of its own: the subset is an open_clip table (filepath, title); paths
        relative to the table's folder, or absolute."""
        out = Path(out)
        sep = "," if out.suffix.lower() == ".csv" else "\t"
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
        writer.writerow(["filepath", "title"])
        base = out.parent.resolve()
        for i in sorted(set(int(r) for r in rows)):
            path = self.files[i].resolve()
            writer.writerow([str(path) if absolute_paths else os.path.relpath(path, base), self.caption(i)])
        files.save_text(out, buf.getvalue())
        return out
