"""Pools from Fashion-MNIST (Debian's dataset-fashion-mnist) and scikit-learn's digits.

fashion-web imitates a web-crawled pool: each training image gets a caption from many templates and
synonyms, and a seeded share of the pairs is corrupted the way web data is (misaligned captions,
generic captions, near-duplicate copies of a few popular images, optional out-of-domain drawings).
Every pair's `noise` column says what was done, so a selection can be scored against it.
Fashion-MNIST's 60,000 training images are split three ways: [0, POOL_END) feed fashion-web, [POOL_END,
VAL_END) is fashion-val (the validation split: every choice of the experiment that needs scored images is
made on it, never on the test set), and [VAL_END, 60000) is fashion-proxy (clean pairs a proxy model is
fitted on, so that it never scores its own training data).
"""
import gzip

import numpy as np
from PIL import Image

from ..prompts import FASHION_MNIST_CLASSES
from .debian import package_files
from .writer import write_items

POOL_END = 45000  # training images [0, 45000) feed fashion-web (before the validation split: [0, 50000))
VAL_END = 50000  # [45000, 50000): fashion-val; [50000, 60000): fashion-proxy
NOISE = {"misaligned": 0.15, "generic": 0.10, "near_duplicate": 0.10}  # shares of the base images
WORDS = (("t-shirt", "tee", "top", "graphic tee", "crew neck t-shirt"),
         ("trousers", "pants", "jeans", "slacks", "chinos"),
         ("pullover", "sweater", "jumper", "knit sweater", "hoodie"),
         ("dress", "summer dress", "maxi dress", "evening dress"),
         ("coat", "jacket", "winter coat", "parka", "trench coat"),
         ("sandal", "sandals", "flip flops", "strappy sandals"),
         ("shirt", "button-up shirt", "blouse", "flannel shirt"),
         ("sneaker", "sneakers", "running shoes", "trainers"),
         ("bag", "handbag", "tote bag", "purse", "shoulder bag"),
         ("ankle boot", "ankle boots", "chelsea boots", "booties"))
TEMPLATES = ("{}", "a photo of a {}", "{} for sale", "buy this {} online", "new {} - free shipping",
             "women's {}", "men's {}", "black and white photo of a {}", "cheap {} on sale today",
             "vintage {}", "my favourite {}", "{}, size M", "{} | online store", "close-up of a {}",
             "product shot: {}", "classic {} in grey", "{} (unisex)", "best selling {}",
             "a {} on a plain background", "limited edition {}")
GENERIC = ("image", "click here", "photo", "untitled", "product image", "see more", "no description",
           "thumbnail", "view details", "IMG_{:04d}.jpg", "DSC{:05d}", "image {}")


def read_idx(name):
    """A Fashion-MNIST idx file (uint8 images (n, 28, 28) or labels (n,))."""
    path = next(f for f in package_files("dataset-fashion-mnist", [name + ".gz"]))
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]  # idx header: 0, 0, dtype, ndim, then one big-endian int32 per dimension
    shape = np.frombuffer(data, ">i4", dims, 4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def clean_caption(label, rng):
    return str(rng.choice(TEMPLATES)).format(rng.choice(WORDS[label]))


def _fashion_item(images, idx, caption, **row):
    return (f"fashion-mnist:{idx}", lambda: (Image.fromarray(images[idx]), caption, row))


def build_web(writer, limit, rng, ood=0.0, misaligned=NOISE["misaligned"]):
    """misaligned: the share of base images captioned as another class (the corruption rate)."""
    images, labels = read_idx("train-images-idx3-ubyte"), read_idx("train-labels-idx1-ubyte")
    if not 0 <= ood <= 1:
        raise ValueError(f"--ood must be a fraction in [0, 1], got {ood}")
    if not 0 <= misaligned <= 1 - NOISE["generic"]:
        raise ValueError(f"misaligned must be a fraction in [0, {1 - NOISE['generic']:g}] (generic captions take "
                         f"{NOISE['generic']:g}), got {misaligned}")
    base = rng.permutation(POOL_END)[:limit]
    items = []
    for idx in base:
        y = int(labels[idx])
        kind = rng.choice(["clean", "misaligned", "generic"],
                          p=[1 - misaligned - NOISE["generic"], misaligned, NOISE["generic"]])
        if kind == "misaligned":  # a caption of another class
            caption = clean_caption(int((y + rng.integers(1, 10)) % 10), rng)
        elif kind == "generic":
            caption = str(rng.choice(GENERIC)).format(int(rng.integers(10000)))
        else:
            caption = clean_caption(y, rng)
        items.append(_fashion_item(images, idx, caption, label=y, noise=str(kind)))
    # near-duplicates: lightly shifted and re-lit copies of a few popular images, as on the web
    popular = rng.choice(base, max(1, len(base) // 100), replace=False)
    for idx in rng.choice(popular, int(round(NOISE["near_duplicate"] * len(base)))):
        shift, gain = rng.integers(-1, 2, size=2), rng.uniform(0.85, 1.15)
        copy = np.clip(np.roll(images[idx], tuple(shift), axis=(0, 1)) * gain, 0, 255).astype(np.uint8)
        y = int(labels[idx])
        items.append((f"fashion-mnist:{idx}", lambda c=copy, y=y, cap=clean_caption(y, rng):
                      (Image.fromarray(c), cap, {"label": y, "noise": "near_duplicate"})))
    if ood:
        from .drawings import clipart_items, emoji_items

        count = int(round(ood * len(base)))
        for source, half in ((clipart_items, count - count // 2), (emoji_items, count // 2)):
            for key, make in source(half, rng)[0]:
                items.append((key, lambda m=make: (*m(), {"label": -1, "noise": "out_of_domain"})))
    order = rng.permutation(len(items))  # mix the kinds as a crawl would
    write_items(writer, [items[i] for i in order], len(items))
    return {"package": "dataset-fashion-mnist", "class_names": list(FASHION_MNIST_CLASSES),
            "noise_rates": dict(NOISE, misaligned=misaligned, out_of_domain=ood), "base_images": int(len(base)),
            "proxy_holdout": f"Fashion-MNIST training images {POOL_END}-59999 never enter this pool "
                             f"({POOL_END}-{VAL_END - 1}: fashion-val; {VAL_END}-59999: fashion-proxy)",
            "clean_rows": [i for i, r in enumerate(writer.rows) if r[3] == "clean"]}


def build_proxy(writer, limit, rng):
    images, labels = read_idx("train-images-idx3-ubyte"), read_idx("train-labels-idx1-ubyte")
    held = np.arange(VAL_END, len(images))[:limit]
    write_items(writer, [_fashion_item(images, i, clean_caption(int(labels[i]), rng), label=int(labels[i]))
                         for i in held], len(held))
    return {"package": "dataset-fashion-mnist", "class_names": list(FASHION_MNIST_CLASSES),
            "images": f"Fashion-MNIST training images {VAL_END}-{len(images) - 1}, clean captions"}


def build_val(writer, limit, rng):
    """The validation split: Fashion-MNIST training images POOL_END..VAL_END-1, in neither fashion-web nor
    fashion-proxy, captioned with their class name like the test set."""
    images, labels = read_idx("train-images-idx3-ubyte"), read_idx("train-labels-idx1-ubyte")
    held = np.arange(POOL_END, VAL_END)[:limit]
    write_items(writer, [_fashion_item(images, i, FASHION_MNIST_CLASSES[labels[i]], label=int(labels[i]))
                         for i in held], len(held))
    return {"package": "dataset-fashion-mnist", "class_names": list(FASHION_MNIST_CLASSES),
            "images": f"Fashion-MNIST training images {POOL_END}-{VAL_END - 1} (validation), class-name captions"}


def build_test(writer, limit, rng):
    images, labels = read_idx("t10k-images-idx3-ubyte"), read_idx("t10k-labels-idx1-ubyte")
    n = len(images) if limit is None else min(limit, len(images))
    write_items(writer, [_fashion_item(images, i, FASHION_MNIST_CLASSES[labels[i]], label=int(labels[i]))
                         for i in range(n)], n)
    return {"package": "dataset-fashion-mnist", "class_names": list(FASHION_MNIST_CLASSES)}


SHIFTS = ("inverted", "rotated", "blurred", "sketch")  # fashion-mnist-shifted: the distribution-shift analogue


def shift_image(x, kind):
    """A Fashion-MNIST image (uint8 (28, 28)) under one distribution shift: inverted (255 - x), rotated
    (90 degrees counter-clockwise), blurred (Gaussian, radius 1.5) or sketch (an edge map, dark lines
    on white: 255 minus PIL's FIND_EDGES, which is the 3x3 Laplacian -1 around 8 in the middle, clipped)."""
    from PIL import ImageFilter

    x = np.asarray(x, np.uint8)
    if kind == "inverted":
        return 255 - x
    if kind == "rotated":
        return np.ascontiguousarray(np.rot90(x))
    if kind == "blurred":
        return np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(1.5)))
    if kind == "sketch":
        return 255 - np.asarray(Image.fromarray(x).filter(ImageFilter.FIND_EDGES))
    raise ValueError(f"shift must be one of {SHIFTS}, got {kind!r}")


def build_shifted(writer, limit, rng):
    """The first `limit` Fashion-MNIST test images (all 10,000 by default) under each of SHIFTS: 4 x limit
    rows, caption = class name, column `noise` = the shift (so a report can score each shift apart)."""
    images, labels = read_idx("t10k-images-idx3-ubyte"), read_idx("t10k-labels-idx1-ubyte")
    n = len(images) if limit is None else min(limit, len(images))
    items = [(f"fashion-mnist-test:{i}:{kind}",
              lambda i=i, kind=kind: (Image.fromarray(shift_image(images[i], kind)), FASHION_MNIST_CLASSES[labels[i]],
                                      {"label": int(labels[i]), "noise": kind}))
             for kind in SHIFTS for i in range(n)]
    write_items(writer, items, len(items))
    return {"package": "dataset-fashion-mnist", "class_names": list(FASHION_MNIST_CLASSES), "shifts": list(SHIFTS)}


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def build_digits(writer, limit, rng):
    from sklearn.datasets import load_digits  # ships inside scikit-learn: nothing is downloaded

    digits = load_digits()
    images = (digits.images * (255 / 16)).round().astype(np.uint8)
    n = len(images) if limit is None else min(limit, len(images))
    def make(i):
        y = int(digits.target[i])
        return Image.fromarray(images[i]), f"the number {DIGIT_NAMES[y]}", {"label": y}

    write_items(writer, [(f"digits:{i}", lambda i=i: make(i)) for i in range(n)], n)
    return {"package": "scikit-learn", "class_names": list(DIGIT_NAMES)}
