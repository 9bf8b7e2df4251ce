"""Image-caption sources (tables, webdataset shards, image folders) and embedding pools (DataComp,
clip-retrieval, .npy pairs: pool.py, datacomp.py, clip_retrieval.py; open_pool picks one).

Every source numbers its pairs 0..n-1 in a stable order, yields them as
(row, key, caption, open_image) and writes a chosen subset back in its own format.
Each reader is imported in the branch that needs it: webdataset is an optional dependency.
"""
from pathlib import Path


def open_source(path, img_key="filepath", caption_key="title", sep=None):
    """The right reader for `path`: a folder of .tar shards or a .tar/brace pattern -> webdataset,
    another folder -> image folder with sidecar captions, a file -> TSV/CSV table."""
    text = str(path)
    p = Path(text)
    if text.endswith(".tar") or "{" in text or (p.is_dir() and any(p.glob("*.tar"))):
        from .webds import Shards
        return Shards(text)
    if p.is_dir():
        from .folder import Folder
        return Folder(p)
    from .table import Table
    return Table(p, img_key=img_key, caption_key=caption_key, sep=sep)


def from_spec(spec):
    """Re-open a source from the `spec()` an embedding manifest recorded."""
    kind = spec.get("kind")
    if kind == "table":
        from .table import Table
        return Table(spec["path"], spec["img_key"], spec["caption_key"], spec["sep"])
    if kind == "folder":
        from .folder import Folder
        return Folder(spec["path"])
    if kind == "webdataset":
        from .webds import Shards
        return Shards(spec["path"])
    raise ValueError(f"unknown data source kind {kind!r} in the embedding manifest")


def open_pool(datacomp=None, clip_retrieval=None, img=None, txt=None, arch="b32", check=True):
    """The pool of whichever source is given (exactly one), checked (check=False: a pool opened again by a
    worker, checked already by its driver)."""
    given = [x is not None for x in (datacomp, clip_retrieval, img)]
    if sum(given) != 1:
        raise ValueError("give exactly one source: --datacomp DIR, --clip-retrieval DIR, or --img/--txt")
    if datacomp is not None:
        from .datacomp import DataCompPool
        pool = DataCompPool(datacomp, arch)
    elif clip_retrieval is not None:
        from .clip_retrieval import ClipRetrievalPool
        pool = ClipRetrievalPool(clip_retrieval)
    elif txt is None:
        raise ValueError("--img needs --txt")
    else:
        from .pool import ArrayPool
        pool = ArrayPool(img, txt)
    return pool.check() if check else pool
