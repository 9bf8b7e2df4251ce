"""Zero-shot proxy labels."""
import json

import numpy as np
import pytest
import torch

from clipcov_fast.pipeline import labels, models, prompts
from clipcov_fast.pipeline.embed import embed
from pipeline_util import make_table


def test_zero_shot_against_hand_made_class_embeddings():
    class_emb = np.eye(3, 4, dtype=np.float32)  # three classes along the first three axes
    img = np.array([[0.1, 0.9, 0, 0], [0, 0, 0.2, 0.1], [0.7, 0.7, 0, 0], [-1, -1, -1, 1]], np.float16)
    assert labels.zero_shot(img, class_emb).tolist() == [1, 2, 0, 0]  # ties: the lowest class
    old = labels.CHUNK_ROWS
    try:  # the same answer when read in chunks
        labels.CHUNK_ROWS = 3
        assert labels.zero_shot(img, class_emb).tolist() == [1, 2, 0, 0]
    finally:
        labels.CHUNK_ROWS = old


def test_class_and_template_sets(tmp_path):
    assert len(prompts.class_names("imagenet")) == 1000 and prompts.class_names("imagenet")[0] == "tench"
    assert len(prompts.templates("openai")) == 80
    assert prompts.class_names("fashion-mnist")[9] == "ankle boot"
    (tmp_path / "c.txt").write_text("cat\n\ndog\n")
    (tmp_path / "t.txt").write_text("a {} here\n")
    (tmp_path / "bad.txt").write_text("no slot\n")
    assert prompts.class_names(tmp_path / "c.txt") == ["cat", "dog"]
    assert prompts.templates(tmp_path / "t.txt") == ["a {} here"]
    with pytest.raises(ValueError, match="--templates"):
        prompts.templates(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="--classes"):
        prompts.class_names("no-such-set")


def test_label_writes_labels_and_class_embeddings(tmp_path):
    emb = tmp_path / "emb"
    embed(make_table(tmp_path, n=6, bad=False), "clipcov-tiny", emb, batch_size=8)
    (tmp_path / "c.txt").write_text("cat\ndog\nbird\n")
    (tmp_path / "t.txt").write_text("a photo of a {}.\na drawing of a {}\n")
    y, T = labels.label(emb, tmp_path / "c.txt", tmp_path / "t.txt")
    net, _, tok = models.load("clipcov-tiny")
    with torch.no_grad():  # by hand: mean of normalized prompt embeddings, normalized
        expect = []
        for c in ("cat", "dog", "bird"):
            e = net.encode_text(tok([f"a photo of a {c}.", f"a drawing of a {c}"]))
            m = (e / e.norm(dim=-1, keepdim=True)).mean(0)
            expect.append((m / m.norm()).numpy())
    assert np.allclose(np.load(emb / "class_emb.npy"), np.array(expect), atol=1e-5)
    img = np.load(emb / "img.npy").astype(np.float32)
    assert np.load(emb / "labels.npy").tolist() == np.argmax(img @ np.array(expect).T, axis=1).tolist() == y.tolist()
    info = json.loads((emb / "labels.json").read_text())
    assert info["class_names"] == ["cat", "dog", "bird"] and sum(info["counts"].values()) == 6
    with pytest.raises(FileNotFoundError, match="--emb"):
        labels.label(tmp_path / "nothing")
