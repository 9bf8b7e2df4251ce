"""clipcov study: k-means proxy classes, the quota-normalized redundancy against a brute-force greedy,
the study's decision rule on known answers, clipcov_recipe reading the study's JSON (and failing clearly
without it), and the whole study on a tiny config."""
import json

import numpy as np
import pytest

from clipcov_fast import reference
from clipcov_fast.experiment import configs, recipes, study
from clipcov_fast.experiment import run as experiment
from clipcov_fast.experiment.report import labels_for
from conftest import make_pool, needs_fashion


def test_kmeans_recovers_well_separated_blobs_exactly():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, 6)) * 20
    truth = rng.permutation(np.repeat(np.arange(5), [40, 7, 25, 3, 60]))  # unequal sizes, a tiny one
    x = centres[truth] + rng.normal(size=(len(truth), 6))
    y = recipes.kmeans(x, 5, seed=1)
    # the same partition: every cluster is one blob and every blob one cluster
    assert len(set(zip(y.tolist(), truth.tolist()))) == 5 and len(np.unique(y)) == 5
    # numbered by first occurrence: row 0 is cluster 0, the next new cluster 1, ...
    _, first = np.unique(y, return_index=True)
    assert y[np.sort(first)].tolist() == [0, 1, 2, 3, 4]
    assert np.array_equal(recipes.kmeans(x, 5, seed=1), y)  # seeded
    with pytest.raises(ValueError, match="k must be between 1"):
        recipes.kmeans(x, 0)


def _brute_quota_greedy(A, B, k, labels, class_emb, w_red=1.0):
    """The objective with class c's redundancy divided by its quota q_c, greedy by brute force in float64:
    every candidate's gain recomputed from the set function at every pick."""
    t = reference.terms(A, B, labels, class_emb)
    An = A / np.linalg.norm(A, axis=1, keepdims=True)
    Bn = B / np.linalg.norm(B, axis=1, keepdims=True)
    y = t["labels"]
    quota = reference.quotas(y, k)
    picked = []
    for c, q in quota.items():
        members = np.flatnonzero(y == c)
        mine = []
        for _ in range(q):
            def value(S):
                s = An[S] @ Bn[S].T
                sp = np.where(s > 0, s, 0.0)
                return t["utility"][S].sum() - w_red / q * ((sp + sp.T).sum() - 2 * np.trace(sp)) / 2
            gains = {i: value(mine + [i]) - value(mine) for i in members if i not in mine}
            mine.append(max(gains, key=lambda i: (gains[i], -i)))
        picked += mine
    return sorted(picked)


@pytest.mark.parametrize("with_prompts", [False, True])
def test_quota_normalized_redundancy_matches_brute_force(with_prompts):
    A, B, y = make_pool(60, 5, classes=3, seed=7, noise=0.4)
    class_emb = np.random.default_rng(0).normal(size=(3, 5)) if with_prompts else None
    k = 17  # quotas that do not divide the class sizes evenly
    got = recipes.select_quota_redundancy(A, B, k, y, class_emb)
    want = _brute_quota_greedy(A, B, k, y, class_emb)
    assert sorted(got.tolist()) == want
    # through a recipe, and it is not the paper's (the redundancy weighs n_c / q_c times more)
    recipe = recipes.candidates(())["redundancy_quota"]
    assert sorted(recipes.select(recipe, A, B, k, labels=y, class_emb=class_emb).tolist()) == want
    heavy = _brute_quota_greedy(A, B, k, y, class_emb, w_red=10.0)
    assert sorted(recipes.select_quota_redundancy(A, B, k, y, class_emb, {"redundancy": 10.0}).tolist()) == heavy


def _row(method, mean, low, high, p_holm):
    return {"budget": 0.1, "method": method, "n": 5, "mean": mean, "low": low, "high": high, "p": p_holm / 2,
            "p_holm": p_holm, "resolved": p_holm < 0.05}


@pytest.mark.parametrize("rows, chosen, best", [
    # the best mean is resolved above 0: it is chosen
    ([_row("redundancy_10", 0.02, 0.005, 0.035, 0.04), _row("kmeans_5", 0.01, -0.01, 0.03, 0.5)],
     "redundancy_10", "redundancy_10"),
    # the best mean's interval holds 0: the paper's recipe stays, even if a lower one is resolved
    ([_row("redundancy_10", 0.03, -0.01, 0.07, 0.3), _row("kmeans_5", 0.02, 0.01, 0.03, 0.01)],
     "clipcov", "redundancy_10"),
    # its unadjusted interval excludes 0 but Holm over the candidates does not resolve it: the paper's stays
    ([_row("redundancy_10", 0.02, 0.001, 0.039, 0.12), _row("kmeans_5", -0.01, -0.03, 0.01, 0.5)],
     "clipcov", "redundancy_10"),
    # every candidate below the paper's, one resolved below: the paper's
    ([_row("redundancy_100", -0.05, -0.08, -0.02, 0.01), _row("xcov_terms", -0.01, -0.03, 0.01, 0.5)],
     "clipcov", "clipcov"),
])
def test_decision_rule_on_known_answers(rows, chosen, best):
    d = study.decide(rows)
    assert (d["chosen"], d["best"]) == (chosen, best)
    assert ("stays" in d["reason"] or "below" in d["reason"] or "above" in d["reason"]) if chosen == "clipcov" \
        else "resolved" in d["reason"]


def test_decision_from_paired_scores():
    """decide() on compare()'s output of a made-up table: +2 points on every seed is resolved, noise is not."""
    from clipcov_fast.experiment.stats import compare

    base = [0.60, 0.55, 0.62, 0.58, 0.57]
    noise = [0.01, -0.02, 0.015, -0.005, 0.0]
    students = [{"method": m, "budget": 0.1, "seed": s, "val_top1": v} for m, vals in
                {"clipcov": base, "redundancy_10": [b + 0.02 + e / 20 for b, e in zip(base, noise)],
                 "kmeans_5": [b + e for b, e in zip(base, noise)]}.items() for s, v in enumerate(vals)]
    comps = compare(students, reference="clipcov", metric="val_top1", whole=())
    assert study.decide(comps)["chosen"] == "redundancy_10"
    worse = [dict(s, val_top1=s["val_top1"] - 0.04) if s["method"] == "redundancy_10" else s for s in students]
    assert study.decide(compare(worse, reference="clipcov", metric="val_top1", whole=()))["chosen"] == "clipcov"


def _study_json(path, name):
    recipe = recipes.candidates((5,))[name]
    path.write_text(json.dumps({"chosen": {"name": name, "recipe": recipe, "changes": recipes.changes(recipe),
                                           "decision": "made up for a test"}}))
    return path


def _fake_pool(root, n=80, d=6):
    """A pool folder (pairs.tsv with the built-in pools' columns) and its embedding folder."""
    A, B, y = make_pool(n, d, classes=4, seed=2, noise=0.5)
    web, emb = root / "web", root / "emb"
    web.mkdir()
    emb.mkdir()
    (web / "pairs.tsv").write_text("filepath\ttitle\tlabel\tnoise\tsource\n" + "".join(
        f"img/{i}.png\tcaption {i}\t{y[i]}\tclean\t{i}\n" for i in range(n)))
    np.save(emb / "img.npy", A.astype(np.float32))
    np.save(emb / "txt.npy", B.astype(np.float32))
    np.save(emb / "labels.npy", y)
    np.save(emb / "class_emb.npy", np.random.default_rng(1).normal(size=(4, d)).astype(np.float32))
    np.save(emb / "rows.npy", np.arange(n))
    (emb / "manifest.json").write_text(json.dumps({"data": {
        "kind": "table", "path": str(web / "pairs.tsv"), "img_key": "filepath", "caption_key": "title", "sep": "\t"}}))
    return web, emb


def test_clipcov_recipe_reads_the_study_json_and_fails_clearly_without_it(tmp_path):
    missing = tmp_path / "none" / "study.json"
    with pytest.raises(FileNotFoundError, match="clipcov_recipe needs the study's result .*clipcov study"):
        configs.make_config("quick", methods=["clipcov", "clipcov_recipe"], study=str(missing))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="no chosen recipe"):
        configs.make_config("quick", methods=["clipcov_recipe"], study=str(tmp_path / "bad.json"))
    configs.make_config("quick", methods=["clipcov"], study=str(missing))  # not needed, not read

    web, emb = _fake_pool(tmp_path)
    img, txt = np.load(emb / "img.npy"), np.load(emb / "txt.npy")
    labels, class_emb = np.load(emb / "labels.npy"), np.load(emb / "class_emb.npy")
    for name in ("redundancy_100", "clipcov"):
        path = _study_json(tmp_path / f"{name}.json", name)
        cfg = configs.make_config("quick", methods=["clipcov", "clipcov_recipe"], budgets=[0.25], seeds=[0],
                                  pool=80, batch_size=16, threads=1, study=str(path))
        subsets, rows = experiment.select_subsets(cfg, tmp_path / f"work-{name}", web, emb, None)
        want = recipes.select(recipes.candidates(())[name], img, txt, 20, labels=labels, class_emb=class_emb)
        assert rows[("clipcov_recipe", 0.25, 0)].tolist() == sorted(want.tolist())
        same = rows[("clipcov_recipe", 0.25, 0)].tolist() == rows[("clipcov", 0.25, 0)].tolist()
        assert same == (name == "clipcov")  # the paper's recipe is ClipCov's own subset
        assert len(subsets[("clipcov_recipe", 0.25, 0)].read_text().splitlines()) == 21
    # the results' row says what the recipe changes
    chosen = recipes.load(_study_json(tmp_path / "r10.json", "redundancy_10"))
    assert "redundancy weight 10 (paper: 1)" in labels_for({"recipe": chosen})["clipcov_recipe"]


def test_candidates_and_what_they_change():
    c = recipes.candidates()
    assert list(c)[0] == "clipcov" and recipes.changes(c["clipcov"]).startswith("nothing")
    assert {f"kmeans_{k}" for k in (5, 10, 20, 50, 100)} <= set(c)
    assert c["xcov_terms"]["weights"] == {"easiness": 2.0, "label": 0.5, "center": 1.0}
    A, B, y = make_pool(50, 5, classes=3, seed=4)
    field = {"target": A[:7], "temperature": 0.05}  # the field recipes' inputs
    for name, recipe in recipes.candidates((3,)).items():
        idx = recipes.select(recipe, A, B, 12, labels=y, class_emb=np.eye(3, 5), field=field)
        assert len(np.unique(idx)) == 12, name


@needs_fashion
def test_study_end_to_end_on_a_tiny_config(tmp_path, capsys):
    from clipcov_fast import cli

    out = tmp_path / "out"
    argv = ["study", "--work", str(tmp_path / "work"), "--out", str(out), "--clusters", "3", "--budget", "0.25",
            "--jobs", "1", "--no-progress", "--set", "proxy=tiny-clip", "--set", "pool=150", "--set", "proxy_pairs=64",
            "--set", "test=40", "--set", "val=40", "--set", "seeds=[0,1]", "--set", "steps=2",
            "--set", "batch_size=16", "--set", "threads=1", "--set", "shift=10", "--set", "probe=20",
            "--set", "proxy_eval=20"]
    assert cli.main(argv) == 0
    assert "study quick: 32 students" in capsys.readouterr().out  # (10 recipes + 6 field selectors) x 2 seeds
    result = json.loads((out / "study.json").read_text())
    assert [c["name"] for c in result["candidates"]] == ["clipcov", "redundancy_10", "redundancy_100",
                                                         "redundancy_quota", "xcov_terms", "kmeans_3",
                                                         "negclip_alignment", "normsim_term", "negclip_prefilter",
                                                         "negclip_balanced"]
    assert result["field_rows"] == list(configs.FIELD)
    assert set(result["field_make_up"]) == set(configs.FIELD)
    assert all(sum(d["class_counts"]) == d["pairs"] == result["subset_pairs"] for d in result["field_make_up"].values())
    a = result["against_best_field"]  # the chosen recipe against the field selector best on fashion-val
    val = {m: np.mean([s["val_top1"] for s in result["students"] if s["method"] == m]) for m in configs.FIELD}
    assert a["field"] == max(configs.FIELD, key=lambda m: (val[m], -configs.FIELD.index(m)))
    chosen = {s["seed"]: s["val_top1"] for s in result["students"] if s["method"] == result["chosen"]["name"]}
    best = {s["seed"]: s["val_top1"] for s in result["students"] if s["method"] == a["field"]}
    assert a["mean"] == pytest.approx(np.mean([chosen[s] - best[s] for s in chosen]))
    assert {c["method"] for c in result["comparisons"]} == {c["name"] for c in result["candidates"][1:]}
    assert all(0 <= s["val_top1"] <= 1 for s in result["students"])
    assert result["chosen"]["name"] == result["decision"]["chosen"]
    assert set(result["test"]["top1_by_seed"]) == {"clipcov", result["chosen"]["name"]}
    assert recipes.load(out / "study.json")["recipe"] == recipes.candidates((3,))[result["chosen"]["name"]]
    md = (out / "study.md").read_text()
    assert "fashion-val" in md and "## Decision" in md and "corruption-rate sweep" in md
    assert "## The field's selectors on fashion-val" in md and f"Against the best field selector on fashion-val, `{a['field']}`" in md
    assert (out / "study.png").read_bytes()[:4] == b"\x89PNG"
