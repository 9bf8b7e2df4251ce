"""The on-disk cache of eval-transformed images: the transform's exact output, read back without
decoding, and made again when the table or an image changes."""
import os

import numpy as np
import open_clip
import torch
from PIL import Image

from clipcov_fast.pipeline import models
from clipcov_fast.pipeline.sources.table import Table
from clipcov_fast.training import evaluate, pixels
from pipeline_util import image, make_table


def _model():
    models.register()
    torch.manual_seed(0)
    net, _, preprocess = open_clip.create_model_and_transforms("clipcov-tiny")
    return net.eval(), preprocess, open_clip.get_tokenizer("clipcov-tiny")


def test_cache_is_the_transform_bit_for_bit_and_is_read_back_without_decoding(tmp_path, monkeypatch):
    net, pre, tok = _model()
    table = Table(make_table(tmp_path, n=6, bad=False))
    want = torch.stack([pre(Image.open(table.image_path(i))) for i in range(6)]).numpy()
    assert np.array_equal(pixels.images(table, pre), want)  # tolerance 0: the same float32 bits
    assert len(list(tmp_path.glob(".pixels-*.npy"))) == 1
    monkeypatch.setattr(Image, "open", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded again")))
    assert np.array_equal(pixels.images(table, pre), want)
    monkeypatch.undo()
    # the students' image features are features()'s, from the cached pixels
    assert np.array_equal(evaluate.image_features(net, pre, table), evaluate.features(net, pre, tok, table)[0])


def test_a_changed_image_or_table_makes_a_new_cache(tmp_path):
    _, pre, _ = _model()
    path = make_table(tmp_path, n=4, bad=False)
    table = Table(path)
    first = np.array(pixels.images(table, pre))
    image(99).save(tmp_path / "img" / "2.png")  # the same file name, another picture
    os.utime(tmp_path / "img" / "2.png", ns=(1, 1))  # whatever its time: the key follows it
    second = np.array(pixels.images(Table(path), pre))
    assert np.array_equal(second[[0, 1, 3]], first[[0, 1, 3]]) and not np.array_equal(second[2], first[2])
    assert np.array_equal(second[2], pre(Image.open(tmp_path / "img" / "2.png")).numpy())
    shorter = Table(path)
    shorter.rows = shorter.rows[:2]  # as read_dataset's limit does
    assert np.array_equal(pixels.images(shorter, pre), second[:2])
    assert len(list(tmp_path.glob(".pixels-*.npy"))) == 3
