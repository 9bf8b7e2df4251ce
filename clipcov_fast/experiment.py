"""`clipcov experiment`: the paper's experiment in miniature on the built-in fashion-web pool.

    pools (fashion-web, fashion-proxy, fashion-mnist-test) -> proxy model fitted on fashion-proxy
    -> embed + zero-shot proxy labels of the pool -> one subset per method x budget x seed
    -> a fresh student CLIP per subset, all with the same number of steps -> zero-shot top-1 on
    fashion-mnist-test -> docs/results.md, results.json, results.png (with what each subset holds)

Everything lands in a work folder and is reused by a rerun with the same config (pools, proxy heads,
embeddings, finished students), so an interrupted run continues where it stopped.
The proxy never sees the pool it scores: it is fitted on fashion-proxy, a disjoint clean split.
"""
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from . import cache, io

log = logging.getLogger("clipcov_fast.experiment")
METHODS = ("clipcov", "clipcov-global", "xcov", "random", "clip_score", "semdedup", "full")
PROXIES = ("lite0-minilm", "tiny-clip")  # or MODEL=CHECKPOINT, a real CLIP
# Generic photo prompts (not the pool's caption templates), averaged per class by open_clip
TEMPLATES = ("a photo of a {}.", "a {}.", "{}", "a product photo of a {}.",
             "a black and white photo of the {}.", "a close-up photo of a {}.")
# Class names for the prompts: the everyday word of each Fashion-MNIST class, as the pool's captions use it.
# (The dataset's own "trouser" never occurs in a caption: with it, no model here ever predicts that class.)
CLASS_NAMES = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
               "ankle boot")


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    pool: int  # fashion-web base images (near-duplicates add 10% more pairs)
    proxy_pairs: int  # fashion-proxy pairs the proxy is fitted on
    test: int  # fashion-mnist-test images the students are scored on
    budgets: tuple  # subset sizes as fractions of the pool
    seeds: tuple  # one student (and one random / SemDeDup subset) per seed
    methods: tuple = METHODS
    student: str = "clipcov-tiny"
    steps: int = 600
    batch_size: int = 128
    lr: float = 5e-4
    jobs: int = 2  # students trained at once, one thread each
    threads: int = 2  # torch threads of the embedding stages
    proxy: str = "lite0-minilm"
    proxy_epochs: int = 3
    proxy_eval: int = 2000  # test images to report the proxy's own zero-shot accuracy on
    pool_seed: int = 0


CONFIGS = {
    # fits `make demo` (15 minutes on 2 cores): a 4,400-pair pool, one budget, 2 seeds, short students
    "quick": Config("quick", pool=4000, proxy_pairs=3000, test=1500, budgets=(0.1,), seeds=(0, 1),
                    steps=250, batch_size=64, proxy_eval=1000),
    # the probe's scale: an 17,600-pair pool, 3 budgets, 3 seeds
    "full": Config("full", pool=16000, proxy_pairs=10000, test=10000, budgets=(0.05, 0.1, 0.2),
                   seeds=(0, 1, 2), steps=600),
}


def make_config(base="quick", **overrides):
    """A checked Config: a named one (or a JSON file with optional "base") plus field overrides."""
    if isinstance(base, Config):
        cfg = base
    elif base in CONFIGS:
        cfg = CONFIGS[base]
    elif Path(str(base)).is_file():
        data = json.loads(Path(base).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"--config: {base} must hold a JSON object")
        cfg = make_config(data.pop("base", "quick"), **{"name": Path(base).stem, **data})
    else:
        raise ValueError(f"--config must be one of {sorted(CONFIGS)} or a JSON file, got {base!r}")
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"config: unknown field(s) {unknown}; known: {sorted(fields)}")
    for key in ("budgets", "seeds", "methods"):
        if key in overrides and not isinstance(overrides[key], (list, tuple)):
            overrides[key] = (overrides[key],)
    cfg = dataclasses.replace(cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    _check(cfg)
    return cfg


def _check(cfg):
    for key in ("pool", "proxy_pairs", "test", "steps", "batch_size", "jobs", "threads", "proxy_epochs"):
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"config: {key} must be a positive integer, got {value!r}")
    if not cfg.budgets or not all(isinstance(b, (int, float)) and 0 < b < 1 for b in cfg.budgets):
        raise ValueError(f"config: budgets must be fractions in (0, 1), got {cfg.budgets!r}")
    if not cfg.seeds or not all(isinstance(s, int) and s >= 0 for s in cfg.seeds):
        raise ValueError(f"config: seeds must be non-negative integers, got {cfg.seeds!r}")
    bad = [m for m in cfg.methods if m not in METHODS]
    if not cfg.methods or bad:
        raise ValueError(f"config: methods must be among {METHODS}, got {bad or cfg.methods!r}")
    if not (isinstance(cfg.lr, (int, float)) and cfg.lr > 0):
        raise ValueError(f"config: lr must be positive, got {cfg.lr!r}")
    if cfg.proxy not in PROXIES:
        model, sep, ckpt = cfg.proxy.partition("=")
        if not sep or not model or not Path(ckpt).is_file():
            raise ValueError(f"config: proxy must be one of {PROXIES} or MODEL=CHECKPOINT with an existing "
                             f"checkpoint file, got {cfg.proxy!r}")
    for b in cfg.budgets:
        if int(b * cfg.pool) < cfg.batch_size // 4:
            raise ValueError(f"config: a {b:.0%} subset of {cfg.pool} pairs is tiny next to batch_size "
                             f"{cfg.batch_size}: raise pool or lower batch_size")


def parse_set(items):
    """['steps=100', 'budgets=[0.1,0.2]'] -> {'steps': 100, 'budgets': [0.1, 0.2]} (JSON values, else text)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set must look like KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


# --- stages -----------------------------------------------------------------------------------------

def _threads(n):
    import torch
    torch.set_num_threads(n)


def fit_proxy(cfg, work, proxy_pool):
    """(model name, checkpoint) of the proxy, fitted on fashion-proxy unless the config names one."""
    if cfg.proxy == "lite0-minilm":
        from . import towers
        return towers.NAME, str(towers.fit(proxy_pool / "pairs.tsv", work / "proxy", epochs=cfg.proxy_epochs))
    if cfg.proxy == "tiny-clip":  # the fallback: a student-sized CLIP trained on the clean disjoint split
        from .train import latest_checkpoint, train
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


def prompt_files(work):
    """WORK/templates.txt and WORK/classes.txt, the prompts of proxy labels and of every evaluation."""
    paths = Path(work) / "templates.txt", Path(work) / "classes.txt"
    for path, lines in zip(paths, (TEMPLATES, CLASS_NAMES)):
        io.save_text(path, "\n".join(lines) + "\n")
    return tuple(str(p.resolve()) for p in paths)


def select_subsets(cfg, work, web, emb):
    """{(method, budget, seed): subset table} for every student, and the subsets' pool rows."""
    from .commands_select import run_method, write_subset

    manifest = json.loads((emb / "manifest.json").read_text())
    img, txt = np.load(emb / "img.npy"), np.load(emb / "txt.npy")
    labels, class_emb = np.load(emb / "labels.npy"), np.load(emb / "class_emb.npy")
    rows = np.load(emb / "rows.npy")
    subsets, pool_rows = {}, {}
    for budget in cfg.budgets:
        k = int(budget * len(img))
        for seed in cfg.seeds:
            for method in cfg.methods:
                key = (method, budget, seed)
                if method == "full":  # one full-pool student per seed, whatever the budgets
                    subsets[("full", 1.0, seed)], pool_rows[("full", 1.0, seed)] = web / "pairs.tsv", rows
                    continue
                name, budget_rule = ("clipcov", "global") if method == "clipcov-global" else (method, "proportional")
                sel = run_method(name, img, txt, k, labels=labels, class_emb=class_emb, budget=budget_rule,
                                 seed=seed, num_threads=cfg.threads, device="cpu")
                out = work / "subsets" / f"{method}-{budget:g}-s{seed}.tsv"
                subsets[key] = Path(write_subset(manifest, emb, sel.indices, out))
                pool_rows[key] = rows[np.sort(sel.indices)]
    return subsets, pool_rows


def diagnostics(web, pool_rows):
    """What a subset holds, from the pool's own columns: true class counts, noise shares, distinct images."""
    from .data.table import Table

    table = Table(web / "pairs.tsv")
    cols = {c: table.header.index(c) for c in ("label", "noise", "source")}
    label = np.array([int(r[cols["label"]]) for r in table.rows])
    noise = np.array([r[cols["noise"]] for r in table.rows])
    source = np.array([r[cols["source"]] for r in table.rows])
    r = np.asarray(pool_rows)
    kinds = ("clean", "misaligned", "generic", "near_duplicate", "out_of_domain")
    return {"pairs": int(len(r)), "class_counts": np.bincount(label[r][label[r] >= 0], minlength=10).tolist(),
            "fractions": {k: float(np.mean(noise[r] == k)) if len(r) else 0.0 for k in kinds},
            "distinct_images": int(len(np.unique(source[r])))}


def _student(task):
    """Train and score one student (runs in a worker process, one thread); returns its result."""
    from . import evaluate, models, train

    run = Path(task["run"])
    done = run / "result.json"
    if done.is_file() and json.loads(done.read_text()).get("task") == task:
        return json.loads(done.read_text())
    shutil.rmtree(run, ignore_errors=True)  # an unfinished student starts over
    run.mkdir(parents=True)
    t0 = time.perf_counter()
    os.environ["OMP_NUM_THREADS"] = "1"
    _threads(1)
    models.register()
    with open(run / "console.log", "w") as log_file, contextlib.redirect_stdout(log_file), \
            contextlib.redirect_stderr(log_file):
        info = train.train(task["data"], task["student"], run, steps=task["steps"], batch_size=task["batch_size"],
                           lr=task["lr"], seed=task["seed"], log_every=100, threads=1)
        t1 = time.perf_counter()
        res = evaluate.evaluate(task["student"], task["test"], checkpoint=info["checkpoint"],
                                templates=task["templates"], classes=task["classes"], retrieval_limit=0)
    result = {"task": task, "zero_shot": {k: v for k, v in res["zero_shot"].items()},
              "train_s": t1 - t0, "eval_s": time.perf_counter() - t1, "steps": info["steps"]}
    io.save_json(done, result)
    return result


def _init_worker():
    os.environ["OMP_NUM_THREADS"] = "1"
    logging.basicConfig(level=logging.ERROR)  # open_clip warns of random weights for every fresh student


def train_students(tasks, jobs, progress=True):
    """Run the student tasks, `jobs` at a time in fresh processes; yields (key, result) as they finish."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    with tqdm(total=len(tasks), desc="students", unit="model", disable=not progress, file=sys.stdout) as bar:
        def done(key, result):
            bar.set_postfix_str(f"{key[0]} {key[1]:g} s{key[2]}: top-1 {result['zero_shot']['top1']:.1%}")
            bar.update()
            return key, result

        if jobs == 1:  # in this process: no start-up cost per student (tests, debugging)
            for key, task in tasks.items():
                yield done(key, _student(task))
            return
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            futures = {pool.submit(_student, task): key for key, task in tasks.items()}
            for f in as_completed(futures):
                yield done(futures[f], f.result())


def run(config="quick", work=None, out="docs", *, progress=True, command=None, **overrides):
    """Run the experiment; write OUT/results.md, results.json, results.png. Returns the results dict."""
    from . import embed, evaluate, labels, models
    from .experiment_report import write_report

    cfg = make_config(config, **overrides)
    work = Path(work or f"runs/experiment-{cfg.name}")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    times = {}
    _threads(cfg.threads)

    def stage(name):
        times[name] = round(time.perf_counter() - t0 - sum(times.values()), 1)
        log.info("experiment %s: %s done (%.0f s so far)", cfg.name, name, time.perf_counter() - t0)

    pools = work / "pools"
    web = cache.pool("fashion-web", cfg.pool, seed=cfg.pool_seed, root=pools)
    proxy_pool = cache.pool("fashion-proxy", cfg.proxy_pairs, root=pools)
    test = cache.pool("fashion-mnist-test", cfg.test, root=pools)
    stage("pools")
    model, ckpt = fit_proxy(cfg, work, proxy_pool)
    stage("proxy")
    emb = work / f"emb-{Path(model).name}"
    stale = (emb / "manifest.json").is_file() and not _emb_ok(emb, ckpt)  # made with other proxy weights
    embed.embed(web / "pairs.tsv", model, emb, checkpoint=ckpt, batch_size=128, num_workers=0, overwrite=stale)
    templates, classes = prompt_files(work)
    labels.label(emb, classes, templates)
    stage("embed+labels")
    key = [ckpt, models.file_sha256(ckpt), cfg.proxy_eval, cfg.test, TEMPLATES, CLASS_NAMES]
    proxy_res = _cached_json(work / "proxy-eval.json", key, lambda: evaluate.evaluate(
        model, test, checkpoint=ckpt, templates=templates, classes=classes, limit=cfg.proxy_eval,
        retrieval_limit=0))
    stage("proxy-eval")
    subsets, pool_rows = select_subsets(cfg, work, web, emb)
    diag = {key: diagnostics(web, rows) for key, rows in pool_rows.items()}
    stage("select")
    tasks = {key: {"run": str((work / "students" / f"{key[0]}-{key[1]:g}-s{key[2]}").resolve()),
                   "data": str(Path(path).resolve()), "student": cfg.student, "steps": cfg.steps,
                   "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": key[2], "test": str(test.resolve()),
                   "templates": templates, "classes": classes, "data_sha256": models.file_sha256(path)}
             for key, path in subsets.items()}
    results = dict(train_students(tasks, cfg.jobs, progress))
    stage("students")
    report = {"config": dataclasses.asdict(cfg), "command": command, "work": str(work), "templates": TEMPLATES,
              "class_names": CLASS_NAMES,
              "proxy": {"spec": cfg.proxy, "model": model, "checkpoint": ckpt, "fitted_on": str(proxy_pool),
                        "zero_shot_on_test": proxy_res["zero_shot"], "test_images": proxy_res["pairs"]},
              "pool": {"path": str(web), **json.loads((web / "manifest.json").read_text()).get("noise_counts", {}),
                       "pairs": len(np.load(emb / "rows.npy"))},
              "stage_seconds": times, "total_seconds": round(time.perf_counter() - t0, 1),
              "students": [{"method": k[0], "budget": k[1], "seed": k[2], **diag[k],
                            "top1": r["zero_shot"]["top1"], "top5": r["zero_shot"]["top5"],
                            "mean_per_class_recall": r["zero_shot"]["mean_per_class_recall"],
                            "train_s": round(r["train_s"], 1), "eval_s": round(r["eval_s"], 1)}
                           for k, r in sorted(results.items())]}
    paths = write_report(report, Path(out))
    log.info("wrote %s", ", ".join(map(str, paths)))
    return report


def _emb_ok(emb, ckpt):
    from .models import file_sha256

    m = emb / "manifest.json"
    return m.is_file() and json.loads(m.read_text()).get("checkpoint_sha256") == file_sha256(ckpt)


def _cached_json(path, key, make):
    key = json.loads(json.dumps(key))  # as it reads back from the file
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("key") == key:
            return data["value"]
    value = make()
    io.save_json(path, {"key": key, "value": value})
    return value


def cmd_experiment(args):
    overrides = parse_set(args.set)
    for name in ("jobs", "proxy"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    command = "clipcov " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith(("clipcov", "cli.py")) else None
    report = run(args.config, args.work, args.out, progress=not args.no_progress, command=command, **overrides)
    print(f"experiment {report['config']['name']}: {len(report['students'])} students in "
          f"{report['total_seconds'] / 60:.1f} min; wrote {Path(args.out) / 'results.md'}")


def register(sub):
    p = sub.add_parser("experiment", help="the paper's experiment in miniature on the built-in pool",
                       description="Select subsets of the built-in fashion-web pool with every method, train a "
                                   "student CLIP on each, score them zero-shot on fashion-mnist-test, and write "
                                   "OUT/results.md, results.json and results.png.")
    p.add_argument("--config", default="quick", help="quick (about 12 minutes on 2 cores), full, or a JSON file "
                                                    "of Config fields (with an optional \"base\")")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable), "
                                                                        "e.g. --set seeds=[0] --set steps=200")
    p.add_argument("--proxy", help="lite0-minilm (default: frozen pretrained towers + heads fitted on "
                                   "fashion-proxy), tiny-clip, or MODEL=CHECKPOINT (a real CLIP)")
    p.add_argument("--jobs", type=int, help="students trained at once (one thread each)")
    p.add_argument("--work", help="work folder, reused by reruns (default runs/experiment-CONFIG)")
    p.add_argument("--out", default="docs", help="where results.md/.json/.png go (default docs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_experiment)
