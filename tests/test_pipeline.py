"""Round trip: table (or shards) -> embed -> labels -> select --emb -> subset in the source's format."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from clipcov_fast import baselines, cli
from clipcov_fast.pipeline.embed import embed
from pipeline_util import make_shard, make_table


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    root = tmp_path_factory.mktemp("rt")
    table = make_table(root / "data", n=10)  # rows 10, 11 are the corrupted and missing images
    assert cli.main(["embed", "--data", str(table), "--model", "clipcov-tiny", "--out", str(root / "emb"),
                     "--batch-size", "4", "--num-workers", "0"]) == 0
    assert cli.main(["labels", "--emb", str(root / "emb"), "--classes", "fashion-mnist",
                     "--templates", "simple"]) == 0
    return root


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def test_select_emb_writes_the_chosen_rows(emb, monkeypatch):
    # a stand-in selector with known picks, so the expected subset rows are known
    monkeypatch.setattr(baselines, "random", lambda n, k, seed=0: np.arange(n)[::-1][:k], raising=False)
    out = emb / "out" / "subset.tsv"
    assert cli.main(["select", "--emb", str(emb / "emb"), "--k", "30%", "--method", "random",
                     "--out", str(out)]) == 0
    rows = _read(out)
    assert rows[0] == ["filepath", "title", "extra"]
    assert [r[1:] for r in rows[1:]] == [["caption number 7", "x7"], ["caption number 8", "x8"],
                                        ["caption number 9", "x9"]]
    assert all((out.parent / r[0]).is_file() for r in rows[1:])
    assert np.load(emb / "out" / "subset.npy").tolist() == [9, 8, 7]
    summary = json.loads((emb / "out" / "subset.json").read_text())
    assert summary["k"] == 3 and summary["n"] == 10 and summary["subset"] == str(out)
    labels = np.load(emb / "emb" / "labels.npy")  # labels.npy was picked up for the per-class summary
    assert sum(v["pool"] for v in summary["per_class"].values()) == 10
    assert {int(c) for c in summary["per_class"]} == set(labels.tolist())


def test_select_emb_absolute_paths_open_from_another_directory(emb, monkeypatch, tmp_path):
    # open_clip_train opens a table's image paths relative to where it runs, not to the table
    monkeypatch.setattr(baselines, "random", lambda n, k, seed=0: np.arange(n)[::-1][:k], raising=False)
    out = emb / "out" / "abs.tsv"
    assert cli.main(["select", "--emb", str(emb / "emb"), "--k", "2", "--method", "random",
                     "--absolute-paths", "--out", str(out)]) == 0
    rows = _read(out)[1:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert [r[1] for r in rows] == ["caption number 8", "caption number 9"]  # in table order
    assert all(Path(r[0]).is_absolute() and Path(r[0]).is_file() for r in rows)


def test_select_emb_maps_around_skipped_rows(tmp_path, monkeypatch):
    """Embedding rows skip unreadable images; the subset must still name the right table rows."""
    table = make_table(tmp_path, n=3, bad=False)
    lines = table.read_text().splitlines()
    table.write_text("\n".join([lines[0], "img/missing.png\tgone\tx", *lines[1:]]) + "\n")
    embed(table, "clipcov-tiny", tmp_path / "emb", batch_size=2)
    assert np.load(tmp_path / "emb" / "rows.npy").tolist() == [1, 2, 3]
    monkeypatch.setattr(baselines, "random", lambda n, k, seed=0: np.array([0]), raising=False)
    cli.main(["select", "--emb", str(tmp_path / "emb"), "--k", "1", "--method", "random",
              "--out", str(tmp_path / "s.tsv")])
    assert [r[1] for r in _read(tmp_path / "s.tsv")[1:]] == ["caption number 0"]


def test_select_emb_shards(tmp_path, monkeypatch):
    import webdataset as wds

    make_shard(tmp_path / "shards" / "000.tar")
    embed(tmp_path / "shards", "clipcov-tiny", tmp_path / "emb", batch_size=4)
    monkeypatch.setattr(baselines, "random", lambda n, k, seed=0: np.array([3, 1]), raising=False)
    assert cli.main(["select", "--emb", str(tmp_path / "emb"), "--k", "2", "--method", "random",
                     "--out", str(tmp_path / "sub")]) == 0
    got = list(wds.WebDataset(str(tmp_path / "sub" / "subset-000000.tar"), shardshuffle=False))
    assert [g["__key__"] for g in got] == ["s001", "s003"]


def test_select_emb_argument_errors(emb, capsys):
    assert cli.main(["select", "--emb", str(emb / "nothing"), "--k", "1", "--out", "x.npy"]) == 2
    assert "--emb" in capsys.readouterr().err
    assert cli.main(["select", "--emb", str(emb / "emb"), "--img", "a.npy", "--k", "1", "--out", "x.npy"]) == 2
    assert cli.main(["select", "--k", "1", "--out", "x.npy"]) == 2
    assert "--emb" in capsys.readouterr().err


def test_round_trip_with_the_random_baseline(emb):
    out = emb / "rnd" / "subset.tsv"
    assert cli.main(["select", "--emb", str(emb / "emb"), "--k", "5", "--method", "random", "--out", str(out)]) == 0
    rows = _read(out)[1:]
    assert len(rows) == 5 and len({r[0] for r in rows}) == 5
    assert {r[1] for r in rows} <= {f"caption number {i}" for i in range(10)}


def test_round_trip_with_clipcov(emb):
    out = emb / "cc" / "subset.tsv"
    assert cli.main(["select", "--emb", str(emb / "emb"), "--k", "40%", "--method", "clipcov",
                     "--out", str(out)]) == 0
    picks = np.load(emb / "cc" / "subset.npy")
    rows = _read(out)[1:]
    assert len(rows) == len(picks) == 4
    assert [r[1] for r in rows] == [f"caption number {i}" for i in sorted(picks)]
    assert json.loads((emb / "cc" / "subset.json").read_text())["method"] == "clipcov"
