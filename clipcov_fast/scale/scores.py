"""The field's score-based selectors over a work directory: the pool is scored job by job, and the driver
applies the method's rule to the whole pool's scores, with the same functions and the same row chunks as
the in-process selectors (baselines/), so the picks are the same.

Jobs: global row chunks of JOB_ROWS rows (CLIP score, NormSim, nearest centroids, MetaCLIP's matches), or
negCLIPLoss's batches (repeat r, batch j of the seeded partition). Each writes scores/NAME.npz atomically;
a rerun skips finished jobs and recomputes unreadable ones. Rows are read by index from the pool's .npy
files, or, for .npz shards (DataComp), from a copy the plan writes into rows/ (the batches draw rows from
the whole pool). Memory of a job: its rows, one batch, and the target or centroids.

Work directory (besides rows/): scores.json (arguments, the pool's fingerprint, jobs), target.npy,
centroids.npy and clusters.npy (image-based), cov.npy (NormSim-2), perm/R.npy (negCLIPLoss's
permutations), entries.txt (MetaCLIP).
"""
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import files, inputs
from ..baselines import classic, common, datacomp, kmeans, metaclip, negclip
from . import fingerprint, work
from .plan import _digest, check_same, locked, private_folder, work_dir_of

log = logging.getLogger("clipcov_fast.scale")
PLAN = "scores.json"
VERSION = 1
JOB_ROWS = 1 << 17  # a chunk job's rows: a multiple of CHUNK_ROWS, so its sub-chunks are the in-process ones
RANKED_BY_CLIP = ("clip_score", "image_based", "image_based_clip_score", "metaclip")  # need every CLIP score
METHODS = ("clip_score", "negclip_loss", "normsim", "negclip_normsim", "image_based", "image_based_clip_score",
           "metaclip")
BATCHES = ("negclip_loss", "negclip_normsim")
CHUNKS = ("clip_score", "normsim", "negclip_normsim", "image_based", "image_based_clip_score", "metaclip")


def load_plan(work_dir):
    path = Path(work_dir) / PLAN
    if not path.is_file():
        raise FileNotFoundError(f"--work-dir: {work_dir} has no {PLAN}")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"--work-dir: {path} is not a readable plan ({e}); delete {work_dir} or use a new "
                         "work directory") from e


def _params_record(method, params, seed):
    """The arguments that decide the scores, JSON-ready (arrays and entries as digests)."""
    out = {"method": method, "seed": int(seed)}
    for key, value in sorted(params.items()):
        if key in ("target", "centroids"):
            value = _digest(np.asarray(value))
        elif key == "entries":
            value = _digest(np.frombuffer("\n".join(value).encode("utf-8"), np.uint8))
        out[key] = value
    return out


def plan(pool, work_dir, method, params, seed=0, copy_rows=None):
    """Plan `method` over `pool` into work_dir (reused when it holds this plan of these files; refused when it
    holds another, or the files changed). Returns the plan."""
    if method not in METHODS:
        raise ValueError(f"--engine local/ray run the score-based selectors {METHODS} and clipcov/xcov; "
                         f"--method {method} runs with --engine inprocess")
    work_dir = work_dir_of(work_dir)
    args = json.loads(json.dumps({"version": VERSION, "pool": pool.describe(), **_params_record(method, params,
                                                                                                  seed)}))
    source = fingerprint.of_pool(pool)
    with locked(work_dir):
        if (work_dir / "plan.json").is_file():
            raise ValueError(f"--work-dir: {work_dir} holds a ClipCov plan; use a new work directory")
        if (work_dir / PLAN).is_file():
            old = load_plan(work_dir)
            check_same(work_dir, old, args, source)
            return old
        with private_folder(work_dir) as tmp:
            return _build(pool, work_dir, tmp, method, params, seed, args, source, copy_rows)


def _build(pool, work_dir, tmp, method, params, seed, args, source, copy_rows):
    n, d = pool.n, pool.d
    mapped = [pool.mapped(i) for i in range(len(pool.shards))]
    copy = any(m is None for m in mapped) if copy_rows is None else bool(copy_rows)
    if copy:  # one .npy pair in the work directory, in pool order, written shard by shard
        (tmp / "rows").mkdir()
        mapped = [_copy_rows(pool, tmp / "rows")]
    rows = {"copied": copy, "files": [[img, txt, r] for (img, txt), r in
                                      zip(mapped, [n] if copy else [s.rows for s in pool.shards])]}
    p = {"args": args, "source": source, "n": n, "d": d, "dtype": str(pool.dtype), "rows": rows, "method": method,
         "seed": int(seed), "params": {k: v for k, v in params.items() if k not in ("target", "centroids",
                                                                                     "entries")}}
    jobs = []
    if method in CHUNKS:
        jobs += [[f"chunk{s}", {"rows": [s, min(n, s + JOB_ROWS)]}] for s in range(0, n, JOB_ROWS)]
    if method in BATCHES:
        b, repeats, _ = negclip.check_negclip_args(params.get("batch_size", negclip.BATCH_SIZE),
                                                   params.get("repeats", negclip.REPEATS),
                                                   params.get("temperature", negclip.TEMPERATURE))
        (tmp / "perm").mkdir()
        dt = np.int32 if n < 2**31 else np.int64
        for r in range(repeats):  # the permutations of baselines.negclip.batches, kept for the jobs
            np.save(tmp / "perm" / f"{r}.npy", np.random.default_rng([int(seed), r]).permutation(n).astype(dt))
            jobs += [[f"batch{r}_{j}", {"repeat": r, "batch": j}] for j in range((n + b - 1) // b)]
    p["jobs"] = jobs
    if "target" in params:
        G = common.checked_target(params["target"], d)
        np.save(tmp / "target.npy", G)
        if method in ("normsim", "negclip_normsim"):
            cov, _ = negclip.normsim_target(G, _p(method, params))
            if cov is not None:
                np.save(tmp / "cov.npy", cov)
        if method in ("image_based", "image_based_clip_score"):
            C = (datacomp.check_centroids(params["centroids"], d) if params.get("centroids") is not None else
                 _train_centroids(p, params, seed))
            np.save(tmp / "centroids.npy", C)
            np.save(tmp / "clusters.npy", datacomp.target_clusters(G, C))
    if method == "metaclip":
        (tmp / "entries.txt").write_text("\n".join(params["entries"]) + "\n", encoding="utf-8")
        p["pool_spec"] = pool.spec()
    for name in ("rows", "perm", "target.npy", "cov.npy", "centroids.npy", "clusters.npy", "entries.txt"):
        if (tmp / name).exists():
            target = work_dir / name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            (tmp / name).rename(target)
    if copy:  # the copy's final place
        p["rows"]["files"] = [[str(work_dir / "rows" / "img.npy"), str(work_dir / "rows" / "txt.npy"), n]]
    shutil.rmtree(work_dir / "scores", ignore_errors=True)
    files.save_json(work_dir / PLAN, p)  # last: a scores.json means a complete plan
    log.info("plan %s: n=%d d=%d, %d jobs into %s (rows %s)", method, n, d, len(jobs), work_dir,
             "copied" if copy else "read from the pool's .npy files")
    return json.loads(json.dumps(p))


def _copy_rows(pool, folder):
    """The pool's rows as folder/img.npy and txt.npy (the pool's dtype), appended shard by shard (no memory
    map: the written pages stay out of this process's RSS)."""
    n, d, dtype = pool.n, pool.d, pool.dtype
    paths = folder / "img.npy", folder / "txt.npy"
    outs = [open(path, "wb") for path in paths]
    try:
        for f in outs:
            np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                     "fortran_order": False, "shape": (n, d)})
        for i in tqdm(range(len(pool.shards)), desc="clipcov plan: copy rows", unit="shard", disable=None,
                      leave=False):
            for f, X in zip(outs, pool.read(i)):
                for b0 in range(0, len(X), inputs.CHUNK_ROWS):
                    f.write(np.ascontiguousarray(X[b0:b0 + inputs.CHUNK_ROWS], dtype=dtype).tobytes())
    finally:
        for f in outs:
            f.close()
    return str(paths[0]), str(paths[1])


def _train_centroids(p, params, seed):
    """Spherical k-means of the pool (its training rows read by index), as datacomp.pool_centroids does."""
    n = p["n"]
    n_clusters = params.get("n_clusters") or datacomp.default_clusters(n)
    n_clusters = common.int_arg(n_clusters, "n_clusters", 1)
    if n_clusters > n:
        raise ValueError(f"n_clusters must be at most n = {n}, got {n_clusters}")
    idx = kmeans.training_rows(n, n_clusters, seed)
    A, _ = _rows_of(p, idx)
    return kmeans.spherical_kmeans(common.rows_at(A, np.arange(len(idx)), True, np.float32), n_clusters, seed)


def _rows_of(p, idx):
    """Raw rows idx (global, any order) of the pool, as the plan says where they are."""
    idx = np.asarray(idx, np.int64)
    order = np.argsort(idx, kind="stable")
    A, B = work.rows_from_files(p, idx[order])
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return A[back], B[back]


def _p(method, params):
    return negclip.check_p(params.get("p", float("inf") if method == "negclip_normsim" else 2))


def job_path(work_dir, name):
    return Path(work_dir) / "scores" / f"{name}.npz"


def job_done(work_dir, name):
    path = job_path(work_dir, name)
    if not path.is_file():
        return False
    try:
        with np.load(path) as z:
            z["done"]
        return True
    except Exception:  # noqa: BLE001 - a broken file, however np.load reports it
        log.warning("work: %s does not read as a scores file; removing it, the job runs again", path)
        path.unlink(missing_ok=True)
        return False


def run_job(work_dir, job, num_threads=1):
    """Score one job unless its file exists; returns the file."""
    name, spec = job
    out = job_path(work_dir, name)
    if job_done(work_dir, name):
        return out
    t0 = time.perf_counter()
    p = load_plan(work_dir)
    if not p["rows"]["copied"]:
        fingerprint.check_unchanged(p["source"]["files"])
    w = Path(work_dir)
    method, params = p["method"], p["params"]
    result = {}
    if "repeat" in spec:  # a negCLIPLoss batch
        b = params.get("batch_size", negclip.BATCH_SIZE)
        perm = np.load(w / "perm" / f"{spec['repeat']}.npy", mmap_mode="r")
        idx = np.asarray(perm[spec["batch"] * b:(spec["batch"] + 1) * b], np.int64)
        A, B = _rows_of(p, idx)
        result["rows"] = idx
        result["negclip"] = negclip.batch_scores(common.rows_at(A, np.arange(len(idx)), True),
                                                 common.rows_at(B, np.arange(len(idx)), True),
                                                 params.get("temperature", negclip.TEMPERATURE), num_threads)
    else:  # a chunk of rows
        s, e = spec["rows"]
        A, B = _rows_of(p, np.arange(s, e))
        if method in RANKED_BY_CLIP:
            result["clip"] = classic._clip_scores(A, B, True)
        if method in ("normsim", "negclip_normsim"):
            pp = _p(method, params)
            G = np.load(w / "target.npy")
            cov = np.load(w / "cov.npy") if pp == 2 else None
            result["normsim"] = negclip.normsim_rows(A, pp, cov, None if pp == 2 else G.astype(np.float32),
                                                     True, num_threads)
        if method in ("image_based", "image_based_clip_score"):
            result["in_clusters"] = datacomp.in_clusters(A, np.load(w / "centroids.npy"), np.load(w / "clusters.npy"),
                                                         True, num_threads)
        if method == "metaclip":
            rows, ents = metaclip.Matcher(_entries(w)).match_all(_captions(p, s, e))
            result["match_rows"], result["match_entries"] = rows + s, ents
    with files.atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, done=np.array(True), **result)
    log.debug("scores %s: %s in %.2fs", name, method, time.perf_counter() - t0)
    return out


def _entries(w):
    return [line for line in (w / "entries.txt").read_text(encoding="utf-8").splitlines() if line]


def _captions(p, s, e):
    """Captions of global rows [s, e), from the pool's own text column (the pool is opened again here)."""
    from ..pipeline.sources import open_pool

    pool = open_pool(**p["pool_spec"], check=False)
    off = pool.offsets()
    out = []
    for i in range(len(pool.shards)):
        lo, hi = max(s, off[i]), min(e, off[i + 1])
        if lo < hi:
            caps = pool.captions(i)
            if caps is None:
                raise ValueError(f"{pool.shards[i].name}: has no captions for --method metaclip")
            out += list(caps[lo - off[i]:hi - off[i]])
    return out


def merge(work_dir, p, k):
    """(indices, the scores they are ranked by) from the finished jobs: the method's rule applied to the
    whole pool's scores, as methods.run_method applies it in process."""
    w = Path(work_dir)
    n, method, params = p["n"], p["method"], p["params"]
    clip = np.zeros(n)
    neg, sim, member = np.zeros(n), np.zeros(n), np.zeros(n, bool)
    matches = []
    repeats = params.get("repeats", negclip.REPEATS)
    for name, spec in p["jobs"]:
        with np.load(job_path(w, name)) as z:
            if "repeat" in spec:
                continue
            s, e = spec["rows"]
            if "clip" in z:
                clip[s:e] = z["clip"]
            if "normsim" in z:
                sim[s:e] = z["normsim"]
            if "in_clusters" in z:
                member[s:e] = z["in_clusters"]
            if "match_rows" in z:
                matches.append((z["match_rows"], z["match_entries"]))
    for r in range(repeats if method in BATCHES else 0):  # in repeat order, as in process
        for name, spec in p["jobs"]:
            if spec.get("repeat") == r:
                with np.load(job_path(w, name)) as z:
                    neg[z["rows"]] += z["negclip"]
    k = None if k is None else inputs.resolve_k(k, n)
    if method == "clip_score":
        if params.get("fraction") is None and params.get("score_threshold") is None:
            return common.ranked(clip)[:k], clip
        thr = (classic.threshold_for_fraction(clip, params["fraction"]) if params.get("fraction") is not None
               else float(params["score_threshold"]))
        return common.set_to_k(common.ranked(clip, np.flatnonzero(clip >= thr)), clip, k, method), clip
    if method == "negclip_loss":
        neg /= repeats
        return common.ranked(neg)[:k], neg
    if method == "normsim":
        return common.ranked(sim)[:k], sim
    if method == "negclip_normsim":
        neg /= repeats
        return negclip.combine(neg, sim, k, params.get("prefilter", negclip.PREFILTER)), sim
    if method == "image_based":
        return common.set_to_k(np.flatnonzero(member), clip, k, method), clip
    if method == "image_based_clip_score":
        thr = (float(params["score_threshold"]) if params.get("score_threshold") is not None else
               classic.threshold_for_fraction(clip, params.get("fraction") or 0.3))
        return common.set_to_k(common.ranked(clip, np.flatnonzero(member & (clip >= thr))), clip, k, method), clip
    rows = np.concatenate([m[0] for m in matches]) if matches else np.zeros(0, np.int64)
    ents = np.concatenate([m[1] for m in matches]) if matches else np.zeros(0, np.int64)
    n_entries = len(_entries(w))
    kept = metaclip.kept_rows(rows, ents, metaclip.entry_counts(ents, n_entries),
                              params.get("max_matches") or metaclip.T, p["seed"])
    return common.set_to_k(kept, clip, k, method), clip


def job_rows(p, job):
    spec = job[1]
    if "repeat" in spec:
        return min(p["params"].get("batch_size", negclip.BATCH_SIZE), p["n"])
    return spec["rows"][1] - spec["rows"][0]


KIND = (run_job, job_done, job_rows)  # for the engines (engines.job_kind)
