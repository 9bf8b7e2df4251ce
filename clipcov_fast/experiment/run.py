"""`clipcov experiment`: the paper's experiment in miniature on the built-in fashion-web pool.

    pools (fashion-web, fashion-proxy, fashion-mnist-test) -> proxy model fitted on fashion-proxy
    -> embed + zero-shot proxy labels of the pool -> one subset per method x budget x seed
    -> a fresh student CLIP per subset, all with the same number of steps -> zero-shot top-1 on
    fashion-mnist-test -> docs/results.md, results.json, results.png (with what each subset holds)

Everything lands in a work folder and is reused by a rerun with the same config (pools, proxy heads,
embeddings, finished students), so an interrupted run continues where it stopped.
The proxy never sees the pool it scores: it is fitted on fashion-proxy, a disjoint clean split.
"""
import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from .. import files
from ..methods import run_method
from ..pipeline import cache, embed, models
from ..pipeline.labels import label
from ..pipeline.pools.fashion import NOISE
from ..pipeline.sources.table import Table
from ..pipeline.report import write_report as write_selection_report
from ..pipeline.subsets import save_selection, write_subset
from ..training import evaluate
from . import field, recipes
from .configs import FIELD, NAME_CANDIDATES, SYNONYMS, TEMPLATES, WHOLE, make_config
from .report import write_report
from .students import seed_from_reports, task_sha256, threads, train_unique

log = logging.getLogger("clipcov_fast.experiment")


def fit_proxy(cfg, work, proxy_pool):
    """(model name, checkpoint) of the proxy, fitted on fashion-proxy unless the config names one."""
    if cfg.proxy == "lite0-minilm":
        from ..pipeline import towers
        return towers.NAME, str(towers.fit(proxy_pool / "pairs.tsv", work / "proxy", epochs=cfg.proxy_epochs))
    if cfg.proxy == "tiny-clip":  # the fallback: a student-sized CLIP trained on the clean disjoint split
        from ..training.train import latest_checkpoint, train
        run = work / "proxy-tiny-clip"
        ckpt = latest_checkpoint(run)
        if ckpt is None or not (run / "done").is_file():
            shutil.rmtree(run, ignore_errors=True)
            ckpt = train(proxy_pool / "pairs.tsv", cfg.student, run, steps=cfg.steps, batch_size=cfg.batch_size,
                         lr=cfg.lr, seed=0, log_every=10 ** 6)["checkpoint"]
            (run / "done").write_text("")
        return cfg.student, str(ckpt)
    model, _, ckpt = cfg.proxy.partition("=")
    return model, ckpt


def choose_class_names(model, ckpt, val):
    """The class names of NAME_CANDIDATES with the best proxy zero-shot top-1 on the validation folder
    `val` (ties: the first); the proxy's image features are computed once."""
    import torch
    from open_clip import build_zero_shot_classifier

    table, labels, _ = evaluate.read_dataset(val)
    net, pre, tok = models.load(model, ckpt)
    img, _ = evaluate.features(net, pre, tok, table)
    scores = {}
    for name, names in NAME_CANDIDATES.items():
        with torch.no_grad():
            W = build_zero_shot_classifier(net, tok, list(names), list(TEMPLATES), device="cpu").T.float().numpy()
        scores[name] = evaluate.zero_shot_metrics(img, W, labels)["top1"]
    best = max(scores, key=lambda k: (scores[k], -list(NAME_CANDIDATES).index(k)))
    return {"val_images": len(table), "val_top1": scores, "chosen": best, "class_names": list(NAME_CANDIDATES[best])}


def prompt_files(work, class_names):
    """WORK/templates.txt and WORK/classes.txt, the prompts of proxy labels and of every evaluation."""
    paths = Path(work) / "templates.txt", Path(work) / "classes.txt"
    for path, lines in zip(paths, (TEMPLATES, class_names)):
        files.save_text(path, "\n".join(lines) + "\n")
    return tuple(str(p.resolve()) for p in paths)


def pool_labels(folder):
    """The true class of every row of a built-in pool's table (-1: out of domain)."""
    table = Table(Path(folder) / "pairs.tsv")
    col = table.header.index("label")
    return np.array([int(r[col]) for r in table.rows], dtype=np.int64)


def proxy_label_accuracy(web, emb):
    """How well the proxy's zero-shot labels of the pool match the true classes: overall, and per true
    class the recall (share of the class labelled as itself) and precision (share of a label that is right)."""
    pred = np.load(emb / "labels.npy")
    true = pool_labels(web)[np.load(emb / "rows.npy")]
    known = true >= 0
    pred, true = pred[known], true[known]
    classes = range(10)
    return {"pairs": int(len(true)), "accuracy": float(np.mean(pred == true)),
            "per_class_recall": [float(np.mean(pred[true == c] == c)) if np.any(true == c) else None for c in classes],
            "per_class_precision": [float(np.mean(true[pred == c] == c)) if np.any(pred == c) else None
                                    for c in classes]}


def select_subsets(cfg, work, web, emb, proxy_pool, field_inputs=None):
    """{(method, budget, seed): subset table} for every student, and each subset's rows in its table
    (the pool's, or fashion-proxy's for proxy_data). Whole tables (full, proxy_data) get budget 1.0.
    field_inputs: field.inputs()'s dict, for the field's methods."""
    manifest = json.loads((emb / "manifest.json").read_text())
    img, txt = np.load(emb / "img.npy"), np.load(emb / "txt.npy")
    labels, class_emb = np.load(emb / "labels.npy"), np.load(emb / "class_emb.npy")
    rows = np.load(emb / "rows.npy")
    true = pool_labels(web)[rows]
    true = np.where(true < 0, 10, true)  # out-of-domain pairs, if any, are a class of their own
    subsets, pool_rows = {}, {}
    caps = field.captions(web, emb) if "metaclip" in cfg.methods else None
    for budget in cfg.budgets:
        k = int(budget * len(img))
        for seed in cfg.seeds_for(budget):
            for method in cfg.methods:
                key = (method, budget, seed)
                if method in WHOLE:  # one student per seed on a whole table, whatever the budgets
                    folder = web if method == "full" else proxy_pool
                    whole = rows if method == "full" else np.arange(len(pool_labels(proxy_pool)))
                    subsets[(method, 1.0, seed)], pool_rows[(method, 1.0, seed)] = folder / "pairs.tsv", whole
                    continue
                out = work / "subsets" / f"{method}-{budget:g}-s{seed}.tsv"
                if method == "clipcov_recipe":  # the recipe `clipcov study` chose on fashion-val
                    idx = recipes.select(recipes.load(cfg.study)["recipe"], img, txt, k, labels=labels,
                                         class_emb=class_emb, num_threads=cfg.threads)
                    subsets[key] = Path(write_subset(emb, idx, out, manifest))
                    pool_rows[key] = rows[np.sort(idx)]
                    continue
                name, budget_rule, y = method, "proportional", labels
                if method == "clipcov_global":
                    name, budget_rule = "clipcov", "global"
                elif method == "clipcov_true_quotas":
                    name, y = "clipcov", true
                if method in FIELD:
                    sel = field.select(method, img, txt, k, field=field_inputs, caps=caps, labels=labels, seed=seed,
                                       num_threads=cfg.threads)
                else:
                    sel = run_method(name, img, txt, k, labels=y, class_emb=class_emb, budget=budget_rule,
                                     seed=seed, num_threads=cfg.threads, device="cpu")
                # the table for the student, and its indices and summary as clipcov select writes them
                _, _, info = save_selection(sel, out, {"emb": str(emb), "method": name, "k": k, "seed": seed}, emb=emb)
                subsets[key] = Path(info["subset"])
                pool_rows[key] = rows[np.sort(sel.indices)]
    return subsets, pool_rows


def diagnostics(folder, pool_rows):
    """What a subset holds, from its table's own columns: true class counts, noise shares, distinct images."""
    table = Table(folder / "pairs.tsv")
    cols = {c: table.header.index(c) for c in ("label", "noise", "source")}
    label = np.array([int(r[cols["label"]]) for r in table.rows])
    noise = np.array([r[cols["noise"]] for r in table.rows])
    source = np.array([r[cols["source"]] for r in table.rows])
    r = np.asarray(pool_rows)
    kinds = ("clean", "misaligned", "generic", "near_duplicate", "out_of_domain")
    return {"pairs": int(len(r)), "class_counts": np.bincount(label[r][label[r] >= 0], minlength=10).tolist(),
            "fractions": {k: float(np.mean(noise[r] == k)) if len(r) else 0.0 for k in kinds},
            "distinct_images": int(len(np.unique(source[r])))}


def prepare(cfg, work, stage=lambda name: None):
    """The stages before selection, shared by the experiment and the study: pools, the proxy, the class
    names chosen on fashion-val, the pool's proxy embeddings and zero-shot labels. `stage(name)` is called
    after each. Returns {web, proxy_pool, test, val, shifted, model, ckpt, choice, class_names, emb,
    templates, classes}; everything is cached in WORK."""
    pools = work / "pools"
    rate = {} if cfg.misaligned == NOISE["misaligned"] else {"misaligned": cfg.misaligned}  # the default keeps its name
    web = cache.pool("fashion-web", cfg.pool, seed=cfg.pool_seed, root=pools, **rate)
    proxy_pool = cache.pool("fashion-proxy", cfg.proxy_pairs, root=pools)
    test = cache.pool("fashion-mnist-test", cfg.test, root=pools)
    val = cache.pool("fashion-val", cfg.val, root=pools)
    shifted = cache.pool("fashion-mnist-shifted", cfg.shift, root=pools)
    stage("pools")
    model, ckpt = fit_proxy(cfg, work, proxy_pool)
    stage("proxy")
    choice = _cached_json(work / "choice-class-names.json",
                          [ckpt, models.file_sha256(ckpt), cfg.val, TEMPLATES, NAME_CANDIDATES],
                          lambda: choose_class_names(model, ckpt, val))
    class_names = tuple(choice["class_names"])
    stage("choices")
    emb = work / f"emb-{Path(model).name}"
    stale = (emb / "manifest.json").is_file() and not _emb_ok(emb, ckpt)  # made with other proxy weights
    embed.embed(web / "pairs.tsv", model, emb, checkpoint=ckpt, batch_size=128, num_workers=0, overwrite=stale)
    templates, classes = prompt_files(work, class_names)
    label(emb, classes, templates)
    stage("embed+labels")
    field_inputs = field.inputs(work, model, ckpt, val) if any(m in FIELD for m in cfg.methods) else None
    return {"web": web, "proxy_pool": proxy_pool, "test": test, "val": val, "shifted": shifted, "model": model,
            "ckpt": ckpt, "choice": choice, "class_names": class_names, "emb": emb, "templates": templates,
            "classes": classes, "field": field_inputs}


def student_task(cfg, run_dir, data, seed, scored_on, templates, classes, **extra):
    """One student's task for students.train_students: train on table `data`, score zero-shot on the
    folder `scored_on` (plus the extra scores named in `extra`: shifted, probe, synonyms)."""
    return {"run": str(Path(run_dir).resolve()), "data": str(Path(data).resolve()), "student": cfg.student,
            "steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": seed,
            "test": str(Path(scored_on).resolve()), "templates": templates, "classes": classes,
            "data_sha256": models.file_sha256(data), **extra}


class Stages:
    """The seconds of each stage of a run; stage(name) ends one and logs it."""

    def __init__(self, what):
        self.what, self.t0, self.seconds = what, time.perf_counter(), {}

    def __call__(self, name):
        self.seconds[name] = round(time.perf_counter() - self.t0 - sum(self.seconds.values()), 1)
        log.info("%s: %s done (%.0f s so far)", self.what, name, self.total())

    def total(self):
        return round(time.perf_counter() - self.t0, 1)


def run(config="quick", work=None, out="docs", *, progress=True, command=None, reuse=(), **overrides):
    """Run the experiment; write OUT/results.md, results.json, results.png. Returns the results dict.
    reuse: earlier results.json files whose students are taken where their task is this run's (students.
    seed_from_reports), so a run can grow by methods or seeds without the old work folder."""
    cfg = make_config(config, **overrides)
    work = Path(work or f"runs/experiment-{cfg.name}")
    work.mkdir(parents=True, exist_ok=True)
    stage = Stages(f"experiment {cfg.name}")
    threads(cfg.threads)

    prep = prepare(cfg, work, stage)
    web, proxy_pool, test, shifted, emb = (prep[k] for k in ("web", "proxy_pool", "test", "shifted", "emb"))
    model, ckpt, choice, class_names = prep["model"], prep["ckpt"], prep["choice"], prep["class_names"]
    templates, classes = prep["templates"], prep["classes"]
    key = [ckpt, models.file_sha256(ckpt), cfg.proxy_eval, cfg.test, TEMPLATES, class_names]
    proxy_res = _cached_json(work / "proxy-eval.json", key, lambda: evaluate.evaluate(
        model, test, checkpoint=ckpt, templates=templates, classes=classes, limit=cfg.proxy_eval,
        retrieval_limit=0))
    stage("proxy-eval")
    subsets, pool_rows = select_subsets(cfg, work, web, emb, proxy_pool, prep["field"])
    diag = {key: diagnostics(proxy_pool if key[0] == "proxy_data" else web, rows) for key, rows in pool_rows.items()}
    stage("select")
    tasks = {key: student_task(cfg, work / "students" / f"{key[0]}-{key[1]:g}-s{key[2]}", path, key[2], test,
                               templates, classes, shifted=str(shifted.resolve()), probe=str(proxy_pool.resolve()),
                               probe_limit=cfg.probe, synonyms=[list(s) for s in SYNONYMS],
                               val=str(prep["val"].resolve()))
             for key, path in sorted(subsets.items(), key=lambda kv: kv[0][2])}  # seed by seed: a stopped
    # run has whole seeds done, and `--set seeds=[...]` reports them from the students already trained
    if reuse:
        log.info("reusing %d finished students of %s", seed_from_reports(tasks, reuse), ", ".join(map(str, reuse)))
    results = train_unique(tasks, cfg.jobs, progress)
    stage("students")
    report = {"config": dataclasses.asdict(cfg), "command": command, "work": str(work), "templates": TEMPLATES,
              "class_names": class_names, "choices": {"class_names": choice},
              "proxy": {"spec": cfg.proxy, "model": model, "checkpoint": ckpt, "fitted_on": str(proxy_pool),
                        "zero_shot_on_test": proxy_res["zero_shot"], "test_images": proxy_res["pairs"],
                        "pool_labels": proxy_label_accuracy(web, emb)},
              "pool": {"path": str(web), **json.loads((web / "manifest.json").read_text()).get("noise_counts", {}),
                       "pairs": len(np.load(emb / "rows.npy"))},
              **({"recipe": recipes.load(cfg.study)} if "clipcov_recipe" in cfg.methods else {}),
              **({"field": {"target_images": len(prep["field"]["target"]), "target": str(prep["val"]),
                            "temperature": prep["field"]["temperature"]}} if prep["field"] else {}),
              "stage_seconds": stage.seconds, "total_seconds": stage.total(),
              "students": [{"method": k[0], "budget": k[1], "seed": k[2], **diag[k],
                            "top1": r["zero_shot"]["top1"], "top5": r["zero_shot"]["top5"],
                            "val_top1": r["val_zero_shot"]["top1"],
                            "mean_per_class_recall": r["zero_shot"]["mean_per_class_recall"],
                            "per_class_recall": r["zero_shot"]["per_class_recall"],
                            "shifted": r.get("shifted"), "shifted_mean": float(np.mean(list(r["shifted"].values()))),
                            "linear_probe": r.get("linear_probe"),
                            "synonym_retrieval_p10": r["synonym_retrieval"]["precision_at_10"],
                            "train_s": round(r["train_s"], 1), "eval_s": round(r["eval_s"], 1),
                            "task_sha256": task_sha256(tasks[k]), "result": {x: v for x, v in r.items() if x != "task"}}
                           for k, r in sorted(results.items())]}
    paths = write_report(report, Path(out))
    log.info("wrote %s", ", ".join(map(str, paths)))
    report["selection_report"] = selection_report(cfg, subsets, Path(out))
    return report


def selection_report(cfg, subsets, out):
    """OUT/report.html: the first budget's ClipCov subset of the first seed against CLIP score's (clipcov report);
    its path, or None when the run has not both methods."""
    budget = cfg.budgets[0]
    seed = cfg.seeds_for(budget)[0]
    a, b = subsets.get(("clipcov", budget, seed)), subsets.get(("clip_score", budget, seed))
    if a is None or b is None:
        return None
    return write_selection_report(a, out / "report.html", against=b)["out"]


def _emb_ok(emb, ckpt):
    m = emb / "manifest.json"
    return m.is_file() and json.loads(m.read_text()).get("checkpoint_sha256") == models.file_sha256(ckpt)


def _cached_json(path, key, make):
    key = json.loads(json.dumps(key))  # as it reads back from the file
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("key") == key:
            return data["value"]
    value = make()
    files.save_json(path, {"key": key, "value": value})
    return value
