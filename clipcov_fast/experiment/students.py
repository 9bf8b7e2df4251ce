"""Student CLIPs: train one on a subset and score it, several at a time in fresh processes.

Scores: zero-shot on the test images (and on fashion-val, where the task names it); zero-shot on each shift of fashion-mnist-shifted; a linear probe on
the student's image features (fitted on fashion-proxy, scored on the test images); text-to-image
retrieval at class level with synonym captions ("jumper", "chelsea boots", ...)."""
import contextlib
import json
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

from .. import files


def threads(n):
    import torch
    torch.set_num_threads(n)


def _student(task):
    """Train and score one student (runs in a worker process, one thread); returns its result."""
    from ..pipeline import models
    from ..training import evaluate, train

    run = Path(task["run"])
    done = run / "result.json"
    if done.is_file() and json.loads(done.read_text()).get("task") == task:
        return json.loads(done.read_text())
    shutil.rmtree(run, ignore_errors=True)  # an unfinished student starts over
    run.mkdir(parents=True)
    t0 = time.perf_counter()
    os.environ["OMP_NUM_THREADS"] = "1"
    threads(1)
    models.register()
    with open(run / "console.log", "w") as log_file, contextlib.redirect_stdout(log_file), \
            contextlib.redirect_stderr(log_file):
        info = train.train(task["data"], task["student"], run, steps=task["steps"], batch_size=task["batch_size"],
                           lr=task["lr"], seed=task["seed"], log_every=100, threads=1)
        t1 = time.perf_counter()
        scores = score(task, info["checkpoint"])
    result = {"task": task, **scores, "train_s": t1 - t0, "eval_s": time.perf_counter() - t1, "steps": info["steps"]}
    files.save_json(done, result)
    return result


def score(task, checkpoint):
    """Every score of one student (see the module doc); the model is loaded once."""
    import numpy as np
    import torch
    from open_clip import build_zero_shot_classifier

    from ..pipeline import models
    from ..pipeline.prompts import class_names, templates
    from ..training import evaluate

    net, pre, tok = models.load(task["student"], checkpoint)
    with torch.no_grad():
        W = build_zero_shot_classifier(net, tok, class_names(task["classes"]), templates(task["templates"]),
                                       device="cpu").T.float().numpy()

    def read(folder, limit=None):
        table, labels, _ = evaluate.read_dataset(folder, limit, classes=task["classes"])
        return table, labels, evaluate.image_features(net, pre, table)

    _, y, img = read(task["test"])
    out = {"zero_shot": evaluate.zero_shot_metrics(img, W, y)}
    if task.get("val"):  # fashion-val: where the experiment's choices among methods are made
        _, yv, fv = read(task["val"])
        out["val_zero_shot"] = evaluate.zero_shot_metrics(fv, W, yv)
    if task.get("shifted"):
        table, ys, f = read(task["shifted"])
        kind = np.array([r[table.header.index("noise")] for r in table.rows])
        with warnings.catch_warnings():  # a small shift may lack a class: only its top-1 is kept
            warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
            out["shifted"] = {k: evaluate.zero_shot_metrics(f[kind == k], W, ys[kind == k])["top1"]
                              for k in dict.fromkeys(kind)}
    if task.get("probe"):
        _, yp, fp = read(task["probe"], task.get("probe_limit"))
        out["linear_probe"] = evaluate.linear_probe(fp, yp, img, y)
    if task.get("synonyms"):
        words, cls = zip(*task["synonyms"])
        with torch.no_grad():
            q = net.encode_text(tok(list(words)), normalize=True).float().numpy()
        out["synonym_retrieval"] = evaluate.class_retrieval(img, y, q, np.array(cls))
    return out


def _keep_freed_memory():
    """glibc returns a freed block of 128 KB or more to the kernel at once, and a student frees and
    allocates the 12.6 MB token-embedding gradient and optimizer temporaries every step: fresh pages each
    time (450,917 minor faults in 60 steps of 128, 6% of the time here: bench/student_time.py). Serve them
    from the heap instead (36,062 faults; the same arithmetic)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD (32 MB is glibc's largest): smaller blocks come from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GB of freed heap


def _init_worker():
    os.environ["OMP_NUM_THREADS"] = "1"
    _keep_freed_memory()
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


def _identity(task):
    """A task without its run folder and table path: what decides the student and its scores."""
    return json.dumps({k: v for k, v in task.items() if k not in ("run", "data")}, sort_keys=True)


def task_sha256(task):
    """The hash of a task's identity (_identity) with its work folder's path (the run folder's grandparent)
    written as {WORK}: a student of a report is reused only for the same task, from any work folder."""
    import hashlib
    work = str(Path(task["run"]).parent.parent)
    return hashlib.sha256(_identity(task).replace(work, "{WORK}").encode()).hexdigest()


def seed_from_reports(tasks, reports):
    """Finished students of earlier reports (results.json files whose student rows carry `task_sha256` and
    `result`) become cached results in their tasks' run folders, for the tasks of the same identity (the same
    subset bytes, seed, student, steps and scoring sets); train_students then skips them. Returns how many."""
    found = {}
    for path in reports:
        try:
            rows = json.loads(Path(path).read_text())["students"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"--reuse: {path} is not a readable experiment report ({e})") from None
        found.update({r["task_sha256"]: r["result"] for r in rows if "task_sha256" in r and "result" in r})
    seeded = 0
    for task in tasks.values():
        result = found.get(task_sha256(task))
        done = Path(task["run"]) / "result.json"
        if result is None or done.is_file():
            continue
        done.parent.mkdir(parents=True, exist_ok=True)
        files.save_json(done, {"task": task, **result})
        seeded += 1
    return seeded


def train_unique(tasks, jobs, progress=True):
    """{key: result} of train_students, training once per distinct task: keys whose tasks differ only in
    their folders (the same subset bytes, seed and scores: `clipcov_recipe` when the study chose the
    paper's recipe) share one student."""
    first = {}
    for key, task in tasks.items():
        first.setdefault(_identity(task), key)
    trained = dict(train_students({key: tasks[key] for key in first.values()}, jobs, progress))
    return {key: trained[first[_identity(task)]] for key, task in tasks.items()}
