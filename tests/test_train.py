"""clipcov train: open_clip_train accepts our argv, trains a tiny model, checkpoints and resumes."""
import csv

import pytest
import torch

from clipcov_fast import cli
from clipcov_fast.pipeline import models
from clipcov_fast.training import train as train_mod
from pipeline_util import make_table

MODEL = "clipcov-tiny"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return make_table(tmp_path_factory.mktemp("data"), n=12, bad=False)


def test_argv_is_accepted_by_open_clip_train(tmp_path):
    """The exact argv we pass parses in open_clip_train (single process and under torchrun alike)."""
    from open_clip_train.params import parse_args

    argv = train_mod.argv(tmp_path / "t.tsv", tmp_path / "run", MODEL, epochs=3, batch_size=8, lr=5e-4,
                          beta1=0.9, beta2=0.999, eps=1e-8, wd=0.1, warmup=10000, seed=1, device="cuda",
                          precision="amp", workers=4, resume=True, extra=["--grad-checkpointing"])
    a = parse_args(argv)
    assert (a.model, a.epochs, a.batch_size, a.lr, a.beta1, a.beta2, a.eps, a.wd, a.warmup) == \
        (MODEL, 3, 8, 5e-4, 0.9, 0.999, 1e-8, 0.1, 10000)
    assert (a.dataset_type, a.csv_separator, a.resume, a.name, a.pretrained) == ("csv", "\t", "latest", "run", "")
    assert a.logs == str(tmp_path) and a.grad_checkpointing and a.report_to == ""


def _batches(rows, size):
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def test_training_table_fills_the_steps_with_whole_batches_of_distinct_pairs(table, tmp_path):
    path, n, rows = train_mod.training_table(table, tmp_path / "t.tsv", steps=5, batch_size=8, seed=3)
    with open(path, newline="") as f:
        got = list(csv.reader(f, delimiter="\t"))
    assert n == 12 and rows == 40 and len(got) == 41 and got[0] == ["filepath", "title"]
    captions = [r[1] for r in got[1:]]
    assert all(len(set(b)) == 8 for b in _batches(captions, 8))  # 12 pairs: one whole batch per permutation
    assert set(captions) == {f"caption number {i}" for i in range(12)}
    assert all(r[0].startswith("/") for r in got[1:])


@pytest.mark.parametrize("n, batch, steps", [(20, 8, 6), (5, 8, 4)])
def test_the_trainer_loads_no_pair_twice_in_a_batch(tmp_path, monkeypatch, n, batch, steps):
    """Count repeats per batch in the rows open_clip_train's loader actually reads (recorded in the
    dataset it reads, our _Repeats over its CsvDataset), not in our table: its own shuffle of a repeated
    table would put pairs twice in a batch."""
    loaded = []
    original = train_mod._Repeats.__getitem__

    def record(self, idx):
        loaded.append(str(self.dataset.captions[idx]))
        return original(self, idx)

    monkeypatch.setattr(train_mod._Repeats, "__getitem__", record)
    data = make_table(tmp_path / "data", n=n, bad=False)
    info = train_mod.train(data, MODEL, tmp_path / "run", steps=steps, batch_size=batch, threads=1)
    assert info["steps"] == steps and len(loaded) == steps * batch
    per_batch = [max(b.count(c) for c in b) for b in _batches(loaded, batch)]
    if n >= batch:
        assert per_batch == [1] * steps
        # each permutation of the subset gives floor(20 / 8) = 2 whole batches: 16 distinct pairs
        assert all(len(set(loaded[i:i + 16])) == 16 for i in range(0, len(loaded) - 15, 16))
    else:  # a subset smaller than a batch: every pair once or twice in each batch
        assert all(set(b) == {f"caption number {i}" for i in range(n)} for b in _batches(loaded, batch))
        assert max(per_batch) == 2


def test_repeats_gives_the_items_of_open_clip_trains_dataset(tmp_path, monkeypatch):
    """_Repeats over CsvDataset: the same image and token tensors, bit for bit, for a table that repeats
    its rows, under the same seed (the random crop draws from torch's generator in the same order), with
    each distinct file decoded and each distinct caption tokenized only once."""
    import open_clip
    from open_clip_train.data import CsvDataset
    from PIL import Image

    models.register()
    _, train_transform, _ = open_clip.create_model_and_transforms(MODEL)
    data = make_table(tmp_path, n=5, bad=False)
    path, _, rows = train_mod.training_table(data, tmp_path / "t.tsv", steps=6, batch_size=4, seed=1)
    plain = CsvDataset(str(path), train_transform, "filepath", "title", tokenizer=open_clip.get_tokenizer(MODEL))
    torch.manual_seed(0)
    want = [plain[i] for i in range(rows)]
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    repeats = train_mod._Repeats(plain)
    torch.manual_seed(0)
    got = [repeats[i] for i in range(rows)]
    assert rows == 24 and len(opened) == len(set(opened)) == 5 and len(repeats.tokens) == 5
    assert all(torch.equal(g[0], w[0]) and torch.equal(g[1], w[1]) for g, w in zip(got, want))
    assert not torch.equal(got[0][0], repeats.dataset.transforms(repeats.images[plain.images[0]]))  # crops vary


def test_foreach_adamw_is_open_clip_trains_adamw_bit_for_bit():
    """Inside _foreach_adamw open_clip_train builds AdamW with foreach=True, and afterwards its own again;
    a few steps with decay and a mostly-unused embedding (as the token embedding) give equal weights."""
    from open_clip_train import main as ocm

    def steps(make):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Embedding(500, 8), torch.nn.Linear(8, 3))
        opt = make([{"params": net[1].bias, "weight_decay": 0.0},
                    {"params": [net[0].weight, net[1].weight], "weight_decay": 0.1}], lr=5e-3)
        for _ in range(5):
            opt.zero_grad()
            net(torch.randint(0, 7, (16,))).square().mean().backward()
            opt.step()
        return opt, [p.detach().clone() for p in net.parameters()]

    original = ocm.optim
    with train_mod._foreach_adamw():
        fast, fast_weights = steps(ocm.optim.AdamW)
    assert ocm.optim is original and fast.defaults["foreach"] is True
    plain, plain_weights = steps(ocm.optim.AdamW)
    assert not plain.defaults["foreach"]
    assert all(torch.equal(a, b) for a, b in zip(fast_weights, plain_weights))
    assert not torch.equal(fast_weights[0][100], torch.zeros(8))  # unused rows decay but are not zero


def test_train_then_resume(table, tmp_path):
    out = tmp_path / "run"
    info = train_mod.train(table, MODEL, out, epochs=1, steps=6, batch_size=4, threads=1)
    assert info["steps"] == 6 and (out / "checkpoints" / "epoch_1.pt").is_file()
    assert info["checkpoint"] == str(out / "checkpoints" / "epoch_1.pt")
    first = torch.load(info["checkpoint"], map_location="cpu", weights_only=False)
    # a second epoch, resumed from the first one's checkpoint
    info2 = train_mod.train(table, MODEL, out, epochs=2, steps=12, batch_size=4, threads=1, resume=True)
    assert info2["checkpoint"].endswith("epoch_2.pt")
    assert "resuming checkpoint" in (out / "out.log").read_text()
    second = torch.load(info2["checkpoint"], map_location="cpu", weights_only=False)
    assert second["epoch"] == 2 and first["epoch"] == 1
    # the checkpoint loads back into the model for embedding and evaluation
    net, _, _ = models.load(MODEL, info2["checkpoint"])
    key = "logit_scale"
    assert torch.equal(net.state_dict()[key], second["state_dict"][key])
    with pytest.raises(ValueError, match="already holds a run"):
        train_mod.train(table, MODEL, out, steps=2, batch_size=4)


def test_cli_train_and_print_argv(table, tmp_path, capsys):
    out = tmp_path / "cli-run"
    assert cli.main(["train", "--data", str(table), "--model", MODEL, "--out", str(out), "--steps", "3",
                     "--batch-size", "4", "--threads", "1"]) == 0
    assert "trained clipcov-tiny for 3 steps on 12 pairs" in capsys.readouterr().out
    assert cli.main(["train", "--data", str(table), "--model", MODEL, "--out", str(tmp_path / "x"),
                     "--batch-size", "4", "--print-argv", "--", "--grad-checkpointing"]) == 0
    printed = capsys.readouterr().out
    assert "--model clipcov-tiny" in printed and printed.rstrip().endswith("--grad-checkpointing")
    assert not (tmp_path / "x" / "out.log").exists()


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "--steps"), (dict(batch_size=0), "--batch-size"), (dict(epochs=0), "--epochs"),
    (dict(batch_size=64), "less than one batch"), (dict(model="no-such-model"), "unknown open_clip model"),
])
def test_train_errors(table, tmp_path, kwargs, match):
    kw = {"model": MODEL, **kwargs}
    with pytest.raises(ValueError, match=match):
        train_mod.train(table, kw.pop("model"), tmp_path / "r", **kw)
