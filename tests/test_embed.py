"""clipcov embed: fp16 normalized embeddings of the right rows, skipped images, resume, workers."""
import json

import numpy as np
import pytest
import torch

from clipcov_fast.pipeline import embed as embed_mod
from clipcov_fast.pipeline import models
from pipeline_util import image, make_shard, make_table

MODEL = "clipcov-tiny"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return make_table(tmp_path_factory.mktemp("data"), n=7)


@pytest.fixture(scope="module")
def full(table, tmp_path_factory):
    out = tmp_path_factory.mktemp("emb") / "full"
    manifest = embed_mod.embed(table, MODEL, out, batch_size=3)
    return out, manifest


def test_outputs_and_skipped(full):
    out, m = full
    img, txt = np.load(out / "img.npy"), np.load(out / "txt.npy")
    assert img.dtype == txt.dtype == np.float16 and img.shape == txt.shape == (7, 64)
    assert np.allclose(np.linalg.norm(img.astype(np.float32), axis=1), 1, atol=2e-3)
    assert np.allclose(np.linalg.norm(txt.astype(np.float32), axis=1), 1, atol=2e-3)
    assert np.load(out / "rows.npy").tolist() == list(range(7))
    skipped = (out / "skipped.tsv").read_text().splitlines()
    assert skipped[0] == "row\tkey\treason"
    assert [s.split("\t")[:2] for s in skipped[1:]] == [["7", "img/bad.png"], ["8", "img/missing.png"]]
    assert "FileNotFoundError" in skipped[2]
    assert m["counts"] == {"pairs": 9, "embedded": 7, "skipped": 2} and m["dim"] == 64
    assert json.loads((out / "manifest.json").read_text()) == m
    assert not list(out.glob("*partial*")) and not (out / embed_mod.PROGRESS).exists()


def test_rows_match_the_model_applied_one_by_one(full):
    """Independent expectation: each row is the normalized embedding of its own image and caption."""
    out, _ = full
    net, preprocess, tok = models.load(MODEL)
    img, txt = np.load(out / "img.npy"), np.load(out / "txt.npy")
    with torch.no_grad():
        for i in (0, 4, 6):
            fi = net.encode_image(preprocess(image(i)).unsqueeze(0))[0]
            ft = net.encode_text(tok([f"caption number {i}"]))[0]
            assert np.allclose(img[i], (fi / fi.norm()).numpy(), atol=2e-3)
            assert np.allclose(txt[i], (ft / ft.norm()).numpy(), atol=2e-3)


def test_interrupted_run_resumes_to_the_same_bytes(table, full, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    calls = []
    real = embed_mod._save_progress

    def crash_after_two(path, state):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if killed after two batches were written
        calls.append(state["done"])
        real(path, state)

    monkeypatch.setattr(embed_mod, "_save_progress", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        embed_mod.embed(table, MODEL, out, batch_size=3)
    assert calls == [3, 6] and json.loads((out / embed_mod.PROGRESS).read_text())["done"] == 6
    assert not (out / "manifest.json").exists()
    monkeypatch.setattr(embed_mod, "_save_progress", real)
    starts = []
    orig_items = embed_mod._items
    monkeypatch.setattr(embed_mod, "_items", lambda s, start, p: starts.append(start) or orig_items(s, start, p))
    embed_mod.embed(table, MODEL, out, batch_size=3)
    assert starts == [6]  # continued, did not start over
    for name in ("img.npy", "txt.npy", "rows.npy", "skipped.tsv", "manifest.json"):
        assert (out / name).read_bytes() == (full[0] / name).read_bytes(), name


def test_workers_give_the_same_bytes(table, full, tmp_path):
    embed_mod.embed(table, MODEL, tmp_path / "w", batch_size=3, num_workers=2)
    for name in ("img.npy", "txt.npy", "rows.npy"):
        assert (tmp_path / "w" / name).read_bytes() == (full[0] / name).read_bytes()


def test_other_settings_are_refused(table, full):
    with pytest.raises(ValueError, match="--overwrite"):
        embed_mod.embed(table, MODEL, full[0], batch_size=4)
    assert embed_mod.embed(table, MODEL, full[0], batch_size=3)["counts"]["embedded"] == 7  # done: no-op


def test_webdataset_and_checkpoint(tmp_path):
    make_shard(tmp_path / "shards" / "000.tar")
    net, _, _ = models.load(MODEL, seed=7)
    ckpt = tmp_path / "w.pt"  # an open_clip_train style checkpoint
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, ckpt)
    m = embed_mod.embed(tmp_path / "shards", MODEL, tmp_path / "e", checkpoint=ckpt, batch_size=4)
    assert m["counts"] == {"pairs": 6, "embedded": 4, "skipped": 2}
    assert m["checkpoint_sha256"] == models.file_sha256(ckpt)
    with torch.no_grad():  # the checkpoint's weights were used, not the default seed's
        t = net.encode_text(models.load(MODEL)[2](["shard caption 2"]))[0]
    assert np.allclose(np.load(tmp_path / "e" / "txt.npy")[2], (t / t.norm()).numpy(), atol=2e-3)


def test_bad_arguments(tmp_path, table):
    with pytest.raises(ValueError, match="--model"):
        embed_mod.embed(table, "no-such-model", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="--checkpoint"):
        embed_mod.embed(table, MODEL, tmp_path / "x", checkpoint=tmp_path / "none.pt")
