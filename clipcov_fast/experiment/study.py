"""`clipcov study`: issue 11's "beyond the paper" study. Which change to ClipCov's recipe (recipes.py)
trains better students than the paper's, judged on fashion-val only?

    the experiment's stages (pools, proxy, class names, embeddings + labels; run.prepare)
    -> one subset per candidate recipe at one budget -> students for several seeds (the same seeds for
    every candidate, so the comparison is paired) -> zero-shot top-1 on fashion-val
    -> candidate minus the paper's recipe, paired-t 95% intervals, Holm over the candidates
    -> the chosen recipe (decide) -> it and the paper's recipe scored once on the test set, for the report
    -> OUT/study.md, study.json (read by the experiment's `clipcov_recipe`), study.png

The test set plays no part in the choice: its scores are computed after the decision, from the same
checkpoints, only to report the chosen recipe's row.
"""
import dataclasses
import json
import logging
import os
import platform
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..pipeline.subsets import write_subset
from ..training.train import latest_checkpoint
from . import field, recipes
from . import run as experiment
from .configs import FIELD, make_config
from .report import best_field
from .stats import compare, paired_t
from .students import score, threads, train_students
from .study_report import write_study

log = logging.getLogger("clipcov_fast.experiment")
NOT_DONE = ("the corruption-rate sweep (15%, 30%, 50% misaligned captions): not part of this study; it is "
            "`clipcov sweep` (docs/sweep/)",
            "other scales of xcov's modular weights than ClipCov's own (xcov's matching gains grow with the class "
            "quota, so the same weights weigh less there than in ClipCov)",
            "a label term for k-means classes (clusters have no prompts; the label term is off for them)")


def decide(comparisons):
    """The study's rule: the candidate with the best mean (its mean paired difference from the paper's
    recipe, the same seeds for all) is chosen only when that difference is above 0 and resolved: its 95%
    interval lies above 0 and its Holm-adjusted p (over all candidates) is below 0.05, as the best of
    several is picked on the same seeds. Otherwise the paper's recipe stays.
    Returns {"chosen", "best", "reason"}."""
    rows = [c for c in comparisons if c["method"] != recipes.BASELINE]
    if not rows:
        return {"chosen": recipes.BASELINE, "best": recipes.BASELINE, "reason": "no candidate was compared"}
    best = max(rows, key=lambda c: c["mean"])
    pts = f"{100 * best['mean']:+.1f} points"
    if best["mean"] <= 0:
        return {"chosen": recipes.BASELINE, "best": recipes.BASELINE,
                "reason": f"no candidate's mean is above the paper's recipe (the closest, {best['method']}, {pts})"}
    ci = "no interval" if best["low"] is None else f"95% interval {100 * best['low']:+.1f} to {100 * best['high']:+.1f}"
    if best["low"] is not None and best["low"] > 0 and best["resolved"]:
        return {"chosen": best["method"], "best": best["method"],
                "reason": f"{best['method']} has the best mean ({pts}, {ci}, Holm p {best['p_holm']:.3g}): resolved"}
    return {"chosen": recipes.BASELINE, "best": best["method"],
            "reason": f"the best mean, {best['method']} ({pts}, {ci}, Holm p {best['p_holm']:.3g}), is not resolved "
                      "against the paper's recipe, so the paper's recipe stays"}


def machine():
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores, Python {platform.python_version()}"


def against_best_field(students, chosen, field_rows, budget):
    """The chosen recipe against the field selector of the best mean fashion-val top-1 (report.best_field,
    paired by seed): {"field", "mean", "low", "high", "p", "beats"}; None without field rows. `beats`: the
    interval lies above 0."""
    if not field_rows:
        return None
    best = best_field([s for s in students if s["method"] in field_rows])[budget]
    val = {}
    for s in students:
        val.setdefault(s["method"], {})[s["seed"]] = s["val_top1"]
    seeds = sorted(set(val[best]) & set(val[chosen]))
    t = paired_t([val[chosen][s] - val[best][s] for s in seeds])
    return {"field": best, **t, "beats": t["low"] is not None and t["low"] > 0}


def run(config="quick", work=None, out="docs", *, budget=0.1, clusters=recipes.CLUSTERS, progress=True,
        command=None, names=None, field_rows=FIELD, **overrides):
    """Run the study; write OUT/study.md, study.json, study.png. Returns the study dict. names: the candidate
    recipes to run (None: all; the paper's always); field_rows: the field selectors trained beside them."""
    if not (isinstance(budget, (int, float)) and 0 < budget < 1):
        raise ValueError(f"study: budget must be a fraction in (0, 1), got {budget!r}")
    cfg = make_config(config, **overrides)
    work = Path(work or f"runs/experiment-{cfg.name}")  # the experiment's work folder: its stages are reused
    work.mkdir(parents=True, exist_ok=True)
    stage = experiment.Stages(f"study {cfg.name}")
    threads(cfg.threads)

    prep = experiment.prepare(cfg, work, stage)
    emb, web = prep["emb"], prep["web"]
    manifest = json.loads((emb / "manifest.json").read_text())
    img, txt = np.load(emb / "img.npy"), np.load(emb / "txt.npy")
    labels, class_emb, rows = np.load(emb / "labels.npy"), np.load(emb / "class_emb.npy"), np.load(emb / "rows.npy")
    k = int(budget * len(img))
    cands = {n: r for n, r in recipes.candidates(clusters).items() if names is None or n in names or n == recipes.BASELINE}
    fin = prep["field"] or field.inputs(work, prep["model"], prep["ckpt"], prep["val"])
    caps = field.captions(web, emb)
    subsets, diag = {}, {}
    for name in tqdm(list(cands) + list(field_rows), desc="study: select", unit="subset", disable=not progress):
        if name in cands:
            idx = recipes.select(cands[name], img, txt, k, labels=labels, class_emb=class_emb, num_threads=cfg.threads,
                                 field=fin)
        else:  # a field selector: the reference a winning recipe must beat too
            idx = field.select(name, img, txt, k, field=fin, caps=caps, labels=labels, seed=0,
                               num_threads=cfg.threads).indices
        if len(idx) != k or len(np.unique(idx)) != k:
            raise RuntimeError(f"study: recipe {name} picked {len(np.unique(idx))} distinct pairs, not {k}")
        subsets[name] = Path(write_subset(emb, idx, work / "study" / "subsets" / f"{name}-{budget:g}.tsv", manifest))
        diag[name] = experiment.diagnostics(web, rows[np.sort(idx)])
    stage("select")
    tasks = {(name, budget, seed): experiment.student_task(
                 cfg, work / "study" / "students" / f"{name}-{budget:g}-s{seed}", subsets[name], seed, prep["val"],
                 prep["templates"], prep["classes"])
             for seed in cfg.seeds for name in subsets}
    log.info("study %s: %d students (%d recipes and %d field selectors x %d seeds), scored on %d fashion-val "
             "images", cfg.name, len(tasks), len(cands), len(field_rows), len(cfg.seeds), cfg.val)
    results = dict(train_students(tasks, cfg.jobs, progress))
    stage("students")
    students = [{"method": key[0], "budget": key[1], "seed": key[2], "val_top1": r["zero_shot"]["top1"],
                 "train_s": round(r["train_s"], 1), "eval_s": round(r["eval_s"], 1)} for key, r in sorted(results.items())]
    comparisons = compare([s for s in students if s["method"] in cands], reference=recipes.BASELINE,
                          metric="val_top1", whole=())
    decision = decide(comparisons)
    chosen = decision["chosen"]
    against = against_best_field(students, chosen, field_rows, budget)
    test = _test_scores(tasks, {recipes.BASELINE, chosen}, prep["test"], budget, cfg.seeds)
    stage("test-row")
    study = {"config": dataclasses.asdict(cfg), "command": command, "work": str(work), "machine": machine(),
             "budget": budget, "subset_pairs": k, "pool_pairs": len(img), "val_images": cfg.val,
             "test_images": cfg.test, "class_names": list(prep["class_names"]),
             "pool_make_up": experiment.diagnostics(web, rows),
             "candidates": [{"name": n, "recipe": r, "changes": recipes.changes(r), **diag[n]} for n, r in cands.items()],
             "students": students, "comparisons": comparisons, "decision": decision,
             "field_rows": list(field_rows), "field_make_up": {n: diag[n] for n in field_rows},
             "against_best_field": against,
             "chosen": {"name": chosen, "recipe": cands[chosen], "changes": recipes.changes(cands[chosen]),
                        "decision": decision["reason"]},
             "test": test, "not_done": list(NOT_DONE), "stage_seconds": stage.seconds,
             "total_seconds": stage.total()}
    paths = write_study(study, Path(out))
    log.info("wrote %s", ", ".join(map(str, paths)))
    return study


def _test_scores(tasks, names, test, budget, seeds):
    """Zero-shot top-1 on the test images of the students of `names` (after the decision: reporting only),
    and the chosen minus the paper's recipe paired by seed."""
    out = {}
    for name in sorted(names):
        out[name] = {}
        for seed in seeds:
            task = dict(tasks[(name, budget, seed)], test=str(Path(test).resolve()))
            out[name][str(seed)] = score(task, latest_checkpoint(task["run"]))["zero_shot"]["top1"]
    other = [n for n in names if n != recipes.BASELINE]
    paired = None
    if other:
        paired = paired_t([out[other[0]][str(s)] - out[recipes.BASELINE][str(s)] for s in seeds])
    return {"top1_by_seed": out, "chosen_minus_paper": paired}
