"""Readers (table, folder, webdataset shards) and the built-in pool builders."""
import csv
import io as _io

import numpy as np
import pytest
from PIL import Image

from clipcov_fast.pipeline.prompts import FASHION_MNIST_CLASSES
from clipcov_fast.pipeline.sources import from_spec, open_source
from clipcov_fast.pipeline.pools.debian import MissingPackage
from clipcov_fast.pipeline.sources.folder import Folder
from clipcov_fast.pipeline.sources.table import Table
from clipcov_fast.pipeline.sources.webds import Shards
from pipeline_util import image, make_shard, make_table


def test_table_reads_open_clip_convention(tmp_path):
    t = open_source(make_table(tmp_path, n=3, bad=False))
    assert isinstance(t, Table) and len(t) == 3
    rows = list(t.items())
    assert [r[0] for r in rows] == [0, 1, 2]
    assert [r[2] for r in rows] == ["caption number 0", "caption number 1", "caption number 2"]
    with rows[1][3]() as im:  # the path resolves from the table's folder, not the working directory
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(image(1)))


def test_table_csv_custom_columns_and_worker_split(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "p.csv").write_text('img,text\na.png,"one, with comma"\nb.png,two\nc.png,three\n')
    t = Table(tmp_path / "p.csv", img_key="img", caption_key="text")
    assert [r[2] for r in t.items()] == ["one, with comma", "two", "three"]
    assert [r[0] for r in t.items(start=1, worker=1, num_workers=2)] == [2]
    with pytest.raises(ValueError, match="--caption-key"):
        Table(tmp_path / "p.csv", img_key="img")


def test_table_missing_file_names_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data"):
        open_source(tmp_path / "nope.tsv")


def test_table_subset_keeps_format_and_rebases_paths(tmp_path):
    t = Table(make_table(tmp_path / "src", n=5))
    out = t.write_subset([4, 1, 4], tmp_path / "elsewhere" / "sub.tsv")
    with open(out, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["filepath", "title", "extra"]
    assert [r[1:] for r in rows[1:]] == [["caption number 1", "x1"], ["caption number 4", "x4"]]
    for r, i in zip(rows[1:], (1, 4)):  # paths now resolve from the subset's folder
        assert (out.parent / r[0]).resolve() == (tmp_path / "src" / "img" / f"{i}.png").resolve()
    assert from_spec(t.spec()).rows == t.rows
    out = t.write_subset([1], tmp_path / "abs.tsv", absolute_paths=True)  # for open_clip_train run elsewhere
    with open(out, newline="") as f:
        path = list(csv.reader(f, delimiter="\t"))[1][0]
    assert path == str((tmp_path / "src" / "img" / "1.png").resolve())


def test_folder_with_sidecar_captions(tmp_path):
    for name, cap in (("b", "second"), ("a", "first\nignored line")):
        image(0).save(tmp_path / f"{name}.jpg")
        (tmp_path / f"{name}.txt").write_text(cap)
    image(1).save(tmp_path / "lonely.png")  # no caption: not a pair
    f = open_source(tmp_path)
    assert isinstance(f, Folder)
    assert [(r[1], r[2]) for r in f.items()] == [("a.jpg", "first"), ("b.jpg", "second")]
    out = f.write_subset([1], tmp_path / "sub" / "s.tsv")
    assert out.read_text().splitlines() == ["filepath\ttitle", "../b.jpg\tsecond"]


def test_webdataset_shard(tmp_path):
    import webdataset as wds

    shard = make_shard(tmp_path / "shard-000.tar")
    s = open_source(tmp_path)  # a folder of .tar files
    assert isinstance(s, Shards) and len(s) == 6
    items = list(s.items())
    assert [(i, k, c) for i, k, c, _ in items[:2]] == [(0, "s000", "shard caption 0"), (1, "s001", "shard caption 1")]
    with items[1][3]() as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(image(101)))
    for _, _, _, opener in items[4:]:  # the corrupted jpeg and the sample without an image
        with pytest.raises(Exception):
            opener().load()
    assert [i for i, *_ in s.items(start=2, worker=1, num_workers=2)] == [3, 5]
    out = s.write_subset([3, 0], tmp_path / "sub")
    got = list(wds.WebDataset(str(out / "subset-000000.tar"), shardshuffle=False, empty_check=False))
    assert [g["__key__"] for g in got] == ["s000", "s003"]
    original = {x["__key__"]: x for x in wds.WebDataset(str(shard), shardshuffle=False)}
    assert got[1]["png"] == original["s003"]["png"] and got[1]["txt"] == b"shard caption 3"
    import json
    assert json.loads((out / "sizes.json").read_text()) == {"subset-000000.tar": 2}  # open_clip_train reads it


def test_webdataset_missing_shard(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data"):
        open_source(str(tmp_path / "x-{000..001}.tar"))


def _build(name, tmp_path, **kw):
    from clipcov_fast.pipeline import pools

    try:
        return pools.build(name, tmp_path / name, **kw)
    except MissingPackage as e:
        pytest.skip(f"{name}: {e}")


def _pairs(folder):
    with open(folder / "pairs.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.mark.parametrize("name", ["fashion-mnist-test", "fashion-proxy", "fashion-val", "digits", "clipart", "stamps",
                                  "emoji"])
def test_pool_builders(tmp_path, name):
    m = _build(name, tmp_path, limit=4)
    rows = _pairs(tmp_path / name)
    assert len(rows) == m["pairs"] == 4 - m["skipped"] and len(rows) >= 3
    for r in rows:
        assert r["title"].strip()
        with Image.open(tmp_path / name / r["filepath"]) as im:
            assert min(im.size) >= 8
    if name == "digits":
        assert [r["title"] for r in rows] == ["the number zero", "the number one", "the number two", "the number three"]
    if name == "fashion-proxy":  # the held-out images only
        assert all(int(r["source"].split(":")[1]) >= 50000 for r in rows)
    if name == "fashion-val":  # the validation split, in neither fashion-web nor fashion-proxy
        assert all(45000 <= int(r["source"].split(":")[1]) < 50000 for r in rows)
        assert all(r["title"] in FASHION_MNIST_CLASSES for r in rows)


def test_fashion_web_noise_is_recorded_and_seeded(tmp_path):
    from clipcov_fast.pipeline.pools import fashion

    m = _build("fashion-web", tmp_path, limit=200, seed=3)
    rows = _pairs(tmp_path / "fashion-web")
    assert len(rows) == 200 + 20  # 10% near-duplicates added
    assert m["clean_rows"] == [i for i, r in enumerate(rows) if r["noise"] == "clean"]
    kinds = {r["noise"] for r in rows}
    assert kinds == {"clean", "misaligned", "generic", "near_duplicate"}
    assert fashion.POOL_END == 45000 and all(int(r["source"].split(":")[1]) < 45000 for r in rows)  # never val, proxy
    templates = {t.format(w) for ws in fashion.WORDS for w in ws for t in fashion.TEMPLATES}
    for r in rows:
        own = {t.format(w) for w in fashion.WORDS[int(r["label"])] for t in fashion.TEMPLATES}
        if r["noise"] in ("clean", "near_duplicate"):
            assert r["title"] in own
        elif r["noise"] == "misaligned":
            assert r["title"] in templates  # another class's caption (words overlap, e.g. "shirt")
        else:
            assert r["title"] not in templates
    dups = [r for r in rows if r["noise"] == "near_duplicate"]
    assert len({r["source"] for r in dups}) <= 2  # copies of a few popular images
    images = fashion.read_idx("train-images-idx3-ubyte")
    with Image.open(tmp_path / "fashion-web" / dups[0]["filepath"]) as im:
        orig = images[int(dups[0]["source"].split(":")[1])].astype(float)
        assert np.abs(np.asarray(im, float) - orig).mean() > 0  # a changed copy ...
        assert np.corrcoef(np.asarray(im, float).ravel(), orig.ravel())[0, 1] > 0.5  # ... of the same image
    _build("fashion-web", tmp_path / "again", limit=200, seed=3)
    assert _pairs(tmp_path / "again" / "fashion-web") == rows
    _build("fashion-web", tmp_path / "other", limit=200, seed=4)
    assert _pairs(tmp_path / "other" / "fashion-web") != rows


def test_shift_transforms_hand_computed():
    from clipcov_fast.pipeline.pools.fashion import shift_image

    x = np.zeros((28, 28), np.uint8)
    x[0, 27], x[3, 5] = 255, 10
    assert np.array_equal(shift_image(x, "inverted"), 255 - x)
    r = shift_image(x, "rotated")  # 90 degrees counter-clockwise: the top-right pixel goes top-left
    assert r[0, 0] == 255 and r[27 - 5, 3] == 10 and r.sum() == x.sum()
    # blur: a single bright pixel spreads symmetrically, its peak drops, its mass is kept (to rounding)
    dot = np.zeros((28, 28), np.uint8)
    dot[14, 14] = 255
    b = shift_image(dot, "blurred").astype(int)
    assert 0 < b[14, 14] < 255 and b[13, 14] == b[15, 14] == b[14, 13] == b[14, 15] > 0
    assert abs(b.sum() - 255) <= 0.05 * 255
    # sketch of a step (columns 14.. at 200): the Laplacian is 8 x 200 - 5 x 200 = 600 -> 255 on the bright
    # side of the edge (a dark line, 0), -600 -> 0 on the dark side and 0 elsewhere (white, 255)
    step = np.zeros((28, 28), np.uint8)
    step[:, 14:] = 200
    sk = shift_image(step, "sketch")
    assert (sk[1:-1, 14] == 0).all() and (sk[1:-1, 1:14] == 255).all() and (sk[1:-1, 15:-1] == 255).all()
    with pytest.raises(ValueError, match="shift must be one of"):
        shift_image(x, "mirrored")


def test_fashion_shifted_pool(tmp_path):
    m = _build("fashion-mnist-shifted", tmp_path, limit=3)
    rows = _pairs(tmp_path / "fashion-mnist-shifted")
    assert m["pairs"] == 12 and [r["noise"] for r in rows] == [k for k in m["shifts"] for _ in range(3)]
    assert [r["label"] for r in rows[:3]] == [r["label"] for r in rows[3:6]]  # the same test images per shift
