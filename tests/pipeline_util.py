"""Small generated image-caption data for the pipeline tests."""
import io

import numpy as np
from PIL import Image


def image(seed, size=(24, 20)):
    """A distinct random RGB image per seed."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def make_table(folder, n=8, bad=True, sep="\t", name="pairs.tsv"):
    """folder/name with n good pairs (images in folder/img/), then a corrupted and a missing image.
    Columns: filepath, title, extra (an extra column a subset must keep)."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = [("filepath", "title", "extra")]
    for i in range(n):
        image(i).save(folder / "img" / f"{i}.png")
        rows.append((f"img/{i}.png", f"caption number {i}", f"x{i}"))
    if bad:
        (folder / "img" / "bad.png").write_bytes(b"this is not a png")
        rows.append(("img/bad.png", "a corrupted image", "xbad"))
        rows.append(("img/missing.png", "a missing image", "xmissing"))
    (folder / name).write_text("".join(sep.join(r) + "\n" for r in rows))
    return folder / name


def make_shard(path, n=4):
    """A webdataset shard: n good samples (png/jpg), one corrupted jpg, one without an image."""
    import webdataset as wds

    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path), encoder=False) as w:
        for i in range(n):
            ext = "png" if i % 2 else "jpg"
            buf = io.BytesIO()
            image(100 + i).save(buf, format="PNG" if ext == "png" else "JPEG")
            w.write({"__key__": f"s{i:03d}", ext: buf.getvalue(), "txt": f"shard caption {i}".encode()})
        w.write({"__key__": "s900", "jpg": b"\xff\xd8 broken", "txt": b"broken jpeg"})
        w.write({"__key__": "s901", "txt": b"no image at all"})
    return path
