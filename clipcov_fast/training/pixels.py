"""A folder's images through a model's eval transform, cached on disk next to its pairs.tsv.

Every student of the experiment scores the same test, shifted and probe images with the same eval
transform (deterministic: resize, crop, to tensor, normalize), and decoding and transforming them again
was most of a student's scoring time. The cache holds the transform's float32 output as is, so the
features are the same bits; it is keyed on the table, every image file's size and modification time, the
row count and the transform, so a rebuilt pool or another transform makes a new one.
"""
import hashlib
from pathlib import Path

import numpy as np

from .. import files


def key(table, preprocess):
    n = len(table)
    h = hashlib.sha256(Path(table.path).read_bytes())
    for i in range(n):
        st = table.image_path(i).stat()
        h.update(f"{i}:{st.st_size}:{st.st_mtime_ns};".encode())
    h.update(f"{n}|{preprocess!r}".encode())
    return h.hexdigest()[:20]


def images(table, preprocess):
    """(rows, C, H, W) float32 array: preprocess(image) of every row of a Table, from the cache
    (made on first use, written atomically so two processes may race safely)."""
    import torch
    from PIL import Image

    path = Path(table.path).parent / f".pixels-{key(table, preprocess)}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    out = []
    for i in range(len(table)):
        with Image.open(table.image_path(i)) as im:
            out.append(preprocess(im))
    array = torch.stack(out).numpy() if out else np.zeros((0,), np.float32)
    files.save_npy(path, array)
    return array
