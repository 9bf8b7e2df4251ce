"""TSV/CSV tables of image path + caption (open_clip's csv convention: `filepath`, `title`, tab)."""
import csv
import io
import os
from pathlib import Path

from PIL import Image

from ... import files


def _sep(path, sep):
    if sep is not None:
        return "\t" if sep in ("\\t", "tab") else sep
    return "," if Path(path).suffix.lower() == ".csv" else "\t"


class Table:
    kind = "table"

    def __init__(self, path, img_key="filepath", caption_key="title", sep=None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"--data: no such file: {self.path}")
        self.sep = _sep(path, sep)
        self.img_key, self.caption_key = img_key, caption_key
        with open(self.path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter=self.sep)
            self.header = next(reader, None) or []
            self.rows = [row for row in reader if row]
        for key, arg in ((img_key, "--img-key"), (caption_key, "--caption-key")):
            if key not in self.header:
                raise ValueError(f"{arg}: column {key!r} not in {self.path} (columns: {self.header}); "
                                 f"is the separator right ({self.sep!r}, set with --sep)?")
        self._img = self.header.index(img_key)
        self._cap = self.header.index(caption_key)
        for i, row in enumerate(self.rows):
            if len(row) <= max(self._img, self._cap):
                raise ValueError(f"--data: row {i + 2} of {self.path} has {len(row)} fields, "
                                 f"expected {len(self.header)}")

    def spec(self):
        return {"kind": self.kind, "path": str(self.path.resolve()), "img_key": self.img_key,
                "caption_key": self.caption_key, "sep": self.sep}

    def __len__(self):
        return len(self.rows)

    def captions(self):
        return [row[self._cap] for row in self.rows]

    def image_path(self, i):
        return self.path.parent / self.rows[i][self._img]  # an absolute path stays absolute

    def items(self, start=0, worker=0, num_workers=1):
        """(row, key, caption, open_image) for rows start.., every num_workers-th from worker."""
        for i in range(start + worker, len(self.rows), num_workers):
            path = self.image_path(i)
            yield i, self.rows[i][self._img], self.rows[i][self._cap], lambda p=path: Image.open(p)

    def write_subset(self, rows, out, absolute_paths=False):
        """Chosen rows, in table order, same columns and separator; image paths made to resolve
        from the output table's folder, or absolute (open_clip_train opens paths relative to where it runs)."""
        out = Path(out)
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=self.sep, lineterminator="\n")
        writer.writerow(self.header)
        base = out.parent.resolve()
        for i in sorted(set(int(r) for r in rows)):
            row = list(self.rows[i])
            if absolute_paths:
                row[self._img] = str(self.image_path(i).resolve())
            elif not os.path.isabs(row[self._img]):
                row[self._img] = os.path.relpath(self.image_path(i).resolve(), base)
            writer.writerow(row)
        files.save_text(out, buf.getvalue())
        return out
