"""The `clipcov select` and `clipcov demo` commands on .npy files."""
import argparse
import json

import numpy as np
import pytest

import clipcov_fast as cc
from clipcov_fast import cli
from clipcov_fast.cli.experiment import comma_list
from clipcov_fast.cli.select import k_from_text, weights_from_text
from conftest import make_pool


@pytest.fixture
def files(tmp_path):
    A, B, y = make_pool(400, 16, classes=4, seed=21)
    for name, arr in (("img", A.astype(np.float16)), ("txt", B.astype(np.float16)), ("labels", y)):
        np.save(tmp_path / f"{name}.npy", arr)
    return tmp_path, A.astype(np.float16), B.astype(np.float16), y


def test_select_writes_indices_and_summary(files):
    d, A, B, y = files
    out = d / "out" / "subset.npy"
    args = ["select", "--img", str(d / "img.npy"), "--txt", str(d / "txt.npy"), "--labels", str(d / "labels.npy"),
            "--k", "10%", "--weights", "easiness=1,redundancy=3", "--out", str(out)]
    assert cli.main(args) == 0
    want = cc.select(A, B, 40, labels=y, weights={"easiness": 1, "redundancy": 3})
    np.testing.assert_array_equal(np.load(out), want.indices)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["k"] == 40 and summary["n"] == 400 and summary["method"] == "clipcov"
    assert summary["objective"] == pytest.approx(want.objective)
    counts = np.bincount(y[want.indices], minlength=4)
    assert {c: v["subset"] for c, v in summary["per_class"].items()} == {str(c): int(counts[c]) for c in range(4)}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary files left
    plain = d / "plain.txt"
    plain.write_text("x")  # outputs get the permissions of an ordinary file, not mkstemp's 0600
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


@pytest.mark.parametrize("method", ["xcov", "random", "clip_score", "semdedup"])
def test_select_other_methods(files, method):
    d, *_ = files
    out = d / f"{method}.npy"
    assert cli.main(["select", "--img", str(d / "img.npy"), "--txt", str(d / "txt.npy"), "--k", "25",
                     "--method", method, "--out", str(out)]) == 0
    picks = np.load(out)
    assert len(picks) == 25 and len(set(picks.tolist())) == 25


def test_select_errors_exit_2_and_keep_old_output(files, capsys):
    d, *_ = files
    out = d / "keep.npy"
    np.save(out, np.arange(3))
    assert cli.main(["select", "--img", str(d / "nope.npy"), "--txt", str(d / "txt.npy"), "--k", "5",
                     "--out", str(out)]) == 2
    assert "--img: no such file" in capsys.readouterr().err
    assert cli.main(["select", "--img", str(d / "img.npy"), "--txt", str(d / "txt.npy"), "--k", "5000",
                     "--out", str(out)]) == 2
    assert "k must be between" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(out), np.arange(3))  # the earlier result is untouched


def test_parsers():
    assert k_from_text("10%") == pytest.approx(0.1) and k_from_text("0.25") == 0.25 and k_from_text("1200") == 1200
    with pytest.raises(ValueError, match="--k"):
        k_from_text("ten")
    assert weights_from_text("coverage=1,easiness=2.5") == {"coverage": 1.0, "easiness": 2.5}
    with pytest.raises(ValueError, match="--weights"):
        weights_from_text("coverage")
    assert comma_list(float, "fractions")("0.15, 0.3,") == (0.15, 0.3) and comma_list(int, "integers")("") == ()
    with pytest.raises(argparse.ArgumentTypeError, match="integers, comma-separated; got '5,x'"):
        comma_list(int, "integers")("5,x")


def test_list_arguments_are_checked_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["sweep", "--rates", "0.1,half"])
    assert e.value.code == 2 and "--rates: must be fractions" in capsys.readouterr().err


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and "clipcov-fast" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["select", "--help"])
    assert "--class-emb" in capsys.readouterr().out


def test_demo_small(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--n", "1500", "--d", "16", "--classes", "5"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [m["method"] for m in summary["methods"]] == [
        "clipcov", "xcov", "random", "clip_score", "semdedup", "random_stratified", "clip_score_balanced",
        "clipcov_released", "negclip_loss", "normsim", "negclip_normsim", "image_based", "image_based_clip_score"]
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert "clipcov" in capsys.readouterr().out
