"""Built-in synthetic embedding pools: clustered, Zipf class sizes, with web-like noise.

Each pair's image embedding is its class centre plus noise; its caption embedding is the image's
plus noise. A recorded fraction of captions is misaligned (taken from a random other pair) and a
fraction of pairs are near-copies of a few popular pairs, like duplicated web images. Large pools
are written in chunks straight to .npy memory maps.
"""
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import files

KINDS = {0: "clean", 1: "misaligned", 2: "duplicate"}


def zipf_labels(n, classes, exponent, rng):
    """Class of each row with sizes proportional to rank^-exponent (every class non-empty if n allows)."""
    p = 1.0 / np.arange(1, classes + 1) ** exponent
    sizes = np.floor(n * p / p.sum()).astype(np.int64)
    sizes = np.maximum(sizes, 1 if n >= classes else 0)
    sizes[0] += n - sizes.sum()
    return rng.permutation(np.repeat(np.arange(classes), sizes))


def _chunk(rng, centres, y, d, misaligned, duplicates, popular):
    m = len(y)
    img = centres[y] + rng.normal(size=(m, d)).astype(np.float32)
    txt = img + 0.8 * rng.normal(size=(m, d)).astype(np.float32)
    kind = np.zeros(m, dtype=np.int8)
    u = rng.random(m)
    mis = u < misaligned
    txt[mis] = centres[rng.integers(0, len(centres), mis.sum())] + rng.normal(size=(mis.sum(), d))
    kind[mis] = 1
    dup = (u >= misaligned) & (u < misaligned + duplicates)
    src = rng.integers(0, len(popular[0]), dup.sum())
    img[dup] = popular[0][src] + 0.01 * rng.normal(size=(dup.sum(), d))
    txt[dup] = popular[1][src] + 0.01 * rng.normal(size=(dup.sum(), d))
    kind[dup] = 2
    return img, txt, kind


def make_pool(n, d=64, classes=20, zipf=0.5, misaligned=0.2, duplicates=0.1, seed=0, dtype=np.float32):
    """In-memory pool: (img, txt, labels, kind) with kind 0 clean, 1 misaligned, 2 duplicate."""
    rng = np.random.default_rng(seed)
    y = zipf_labels(n, classes, zipf, rng)
    centres = (2.0 * rng.normal(size=(classes, d))).astype(np.float32)
    popular_y = rng.integers(0, classes, 12)
    popular = (centres[popular_y] + rng.normal(size=(12, d)), centres[popular_y] + rng.normal(size=(12, d)))
    img, txt, kind = _chunk(rng, centres, y, d, misaligned, duplicates, popular)
    return img.astype(dtype), txt.astype(dtype), y, kind


def write_pool(out, n, d=512, classes=1000, zipf=0.5, misaligned=0.2, duplicates=0.05, seed=0,
               dtype=np.float16, chunk=1 << 16):
    """Writes img.npy, txt.npy (dtype), labels.npy, kind.npy and manifest.json into out/ (atomic)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y = zipf_labels(n, classes, zipf, rng)
    centres = (2.0 * rng.normal(size=(classes, d))).astype(np.float32)
    popular_y = rng.integers(0, classes, 12)
    popular = (centres[popular_y] + rng.normal(size=(12, d)), centres[popular_y] + rng.normal(size=(12, d)))
    kind = np.empty(n, dtype=np.int8)
    with files.atomic_path(out / "img.npy") as ti, files.atomic_path(out / "txt.npy") as tt:
        img = np.lib.format.open_memmap(ti, mode="w+", dtype=dtype, shape=(n, d))
        txt = np.lib.format.open_memmap(tt, mode="w+", dtype=dtype, shape=(n, d))
        for start in tqdm(range(0, n, chunk), desc=f"synthetic pool n={n}", unit="chunk", disable=None):
            stop = min(n, start + chunk)
            a, b, kind[start:stop] = _chunk(np.random.default_rng([seed, start]), centres, y[start:stop], d,
                                            misaligned, duplicates, popular)
            img[start:stop], txt[start:stop] = a, b
        img.flush()
        txt.flush()
        del img, txt
    files.save_npy(out / "labels.npy", y)
    files.save_npy(out / "kind.npy", kind)
    files.save_json(out / "manifest.json", {"n": n, "d": d, "classes": classes, "zipf": zipf, "seed": seed,
                                         "misaligned": misaligned, "duplicates": duplicates,
                                         "dtype": np.dtype(dtype).name, "kinds": KINDS})
    return out
