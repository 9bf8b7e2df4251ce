"""`clipcov select`: choose a subset from embedding files or pools and write it with a JSON summary."""
import logging
from pathlib import Path

from .. import files
from ..baselines.metaclip import read_entries
from ..methods import METHODS, REGISTRY, check_needs, run_method
from ..pipeline.subsets import FORMATS, emb_captions, embedding_files, format_of, load_array, save_selection, \
    selection_paths, source_inputs, summary, write_pool_subset
from .types import positive_int


def k_from_text(text):
    """'10%' -> 0.1, '0.1' -> 0.1, '1200' and '1e3' -> 1200 and 1000 (inputs.resolve_k turns these into a
    count)."""
    text = str(text).strip()
    try:
        if text.endswith("%"):
            value = float(text[:-1]) / 100
            if not 0 < value < 1:
                raise ValueError
            return value
        value = float(text)
        if value >= 0 and value.is_integer():
            return int(value)
        if 0 < value < 1:
            return value
        raise ValueError
    except (ValueError, OverflowError):
        raise ValueError(f"--k must be a count (1200, 1e3), a fraction (0.1) or a percentage (10%), "
                         f"got {text!r}") from None


def weights_from_text(text):
    """'coverage=1,easiness=2' -> {'coverage': 1.0, 'easiness': 2.0}."""
    out = {}
    for part in filter(None, (text or "").split(",")):
        key, sep, value = part.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"--weights must look like coverage=1,easiness=2, got {part!r}")
    return out


FIELD = ("target", "p", "batch_size", "repeats", "temperature", "prefilter", "fraction", "score_threshold",
         "centroids", "n_clusters", "entries", "max_matches")  # the field's selectors' parameters
PARAMS = ("emb", "img", "txt", "datacomp", "arch", "clip_retrieval", "labels", "class_emb", "k", "method",
          "budget", "threshold", "weights", "seed", "engine", "work_dir") + FIELD
# methods that take no classes (labels only fill the summary)
CLASSLESS = tuple(m for m in METHODS if m not in ("clipcov", "xcov", "random_stratified", "clip_score_balanced",
                                                  "clipcov_released"))
log = logging.getLogger("clipcov_fast.cli")


def check_out(args, inputs, outputs):
    """--out is a name this command can write in the format it implies, and no output replaces an input
    (inputs, outputs: {what: path})."""
    suffix = Path(args.out).suffix.lower()
    if suffix == ".json":
        raise ValueError(f"--out: {args.out} ends in .json, the summary's name; give SUBSET.npy (its summary "
                         "goes beside it as SUBSET.json)")
    if suffix in (".tsv", ".csv") and not args.emb:
        raise ValueError(f"--out: a {suffix} subset is the source's own table, which only --emb knows (its "
                         "manifest names it); from --img/--txt or a pool write SUBSET.npy or SUBSET.parquet")
    files.refuse_overwrite(outputs, {what: path for what, path in inputs.items() if path})


def inputs_of(args, pool=None):
    """{flag: path} of every file the selection reads."""
    found = {"--img": args.img, "--txt": args.txt, "--labels": args.labels, "--class-emb": args.class_emb,
             "--target": args.target, "--centroids": args.centroids, "--entries": args.entries}
    if args.emb:
        found.update(source_inputs(args.emb))
    for path in pool.files() if pool is not None else ():
        found[f"the pool file {Path(path).name}"] = path
    return found


def warn_k0(k):
    if k == 0:
        log.warning("--k 0: the subset is empty")


def k_of(args):
    k = None if args.k is None else k_from_text(args.k)
    warn_k0(k)
    return k


def method_params(args):
    """The field's selectors' parameters as given (files read: --target, --centroids, --entries)."""
    out = {key: getattr(args, key) for key in FIELD if getattr(args, key) is not None}
    for key in ("target", "centroids"):
        if key in out:
            out[key] = load_array(out[key], f"--{key}")
    if "entries" in out:
        out["entries"] = read_entries(out["entries"])
    if "p" in out:
        out["p"] = float(out["p"])
    return out


def captions_of(args, pool=None):
    """The pairs' captions when the method needs them: the pool's text column, or the --emb source's."""
    if "captions" not in REGISTRY[args.method].needs:
        return None
    if pool is not None and pool.has_captions:
        caps = [pool.captions(i) for i in range(len(pool.shards))]
        return None if any(c is None for c in caps) else [c for part in caps for c in part]
    return emb_captions(args.emb) if args.emb else None


def select_from_pool(args):
    """A pool source, a work-directory engine, or a pool output format: scale.select_pool for ClipCov, the
    method itself on the pool's arrays in process."""
    from ..pipeline.sources import open_pool
    from ..scale import scores, select_pool, select_scores

    if args.method not in ("clipcov", "xcov") + scores.METHODS and args.engine != "inprocess":
        raise ValueError(f"--method {args.method} runs with --engine inprocess (the pool's arrays in this "
                         f"process); --engine local/ray take clipcov, xcov and {', '.join(scores.METHODS)}")
    pool = open_pool(datacomp=args.datacomp, clip_retrieval=args.clip_retrieval, img=args.img, txt=args.txt,
                     arch=args.arch)
    out, summary_path = Path(args.out), files.companion(args.out, ".json")
    check_out(args, inputs_of(args, pool), {"--out": out, "the summary of --out": summary_path})
    labels = load_array(args.labels, "--labels") if args.labels else None
    if labels is not None and (labels.ndim != 1 or len(labels) != pool.n):
        raise ValueError(f"--labels: {args.labels} has shape {labels.shape}, but the pool has {pool.n} rows")
    class_emb = load_array(args.class_emb, "--class-emb") if args.class_emb else None
    if args.method in ("clipcov", "xcov"):
        sel = select_pool(pool, k_of(args), objective=args.method, labels=labels, class_emb=class_emb,
                          threshold=args.threshold, weights=weights_from_text(args.weights) or None,
                          budget=args.budget, engine=args.engine, work_dir=args.work_dir,
                          ray_address=args.ray_address, workers=args.workers, num_threads=args.num_threads,
                          copy_rows=args.copy_rows or None)
    elif args.engine != "inprocess":
        params = method_params(args)
        check_needs(args.method, target=params.get("target"), captions=True if pool.has_captions else None,
                    entries=params.get("entries"))
        sel = select_scores(pool, k_of(args), args.method, params, seed=args.seed, labels=labels, engine=args.engine,
                            work_dir=args.work_dir, ray_address=args.ray_address, workers=args.workers,
                            copy_rows=args.copy_rows or None)
    else:
        params, captions = method_params(args), captions_of(args, pool)
        check_needs(args.method, target=params.get("target"), captions=captions, entries=params.get("entries"))
        A, B = pool.arrays()
        sel = run_method(args.method, A, B, k_of(args), labels=labels, class_emb=class_emb, budget=args.budget,
                         threshold=args.threshold, weights=weights_from_text(args.weights) or None, seed=args.seed,
                         num_threads=args.num_threads, captions=captions, **params)
    write_pool_subset(pool, sel, out, args.format)
    files.save_json(summary_path, summary(sel, {key: getattr(args, key) for key in PARAMS}))
    print(f"{sel!r}\nwrote {out} and {summary_path}")


def from_emb_folder(args):
    """--emb: its arrays, and its labels.npy and class_emb.npy where the flags give none (said when there
    are no classes at all)."""
    if args.img or args.txt:
        raise ValueError("--emb replaces --img and --txt: give one or the other")
    found = embedding_files(args.emb)
    args.img, args.txt = found["img"], found["txt"]
    args.labels = args.labels or found["labels"]
    if args.method in CLASSLESS:  # no class prompts: the method would ignore them (labels fill the summary)
        return
    args.class_emb = args.class_emb or found["class_emb"]
    if not (args.labels or args.class_emb):
        log.warning("--emb: %s has no labels.npy or class_emb.npy and neither --labels nor --class-emb is "
                    "given: the whole pool is one class (clipcov labels writes proxy classes)", args.emb)


def cmd_select(args):
    if args.k is None and not REGISTRY[args.method].k_optional:
        raise ValueError(f"--k is required with --method {args.method}")
    if args.class_emb and args.method in CLASSLESS:
        raise ValueError(f"--class-emb: --method {args.method} takes no classes and would ignore it; "
                         "random_stratified and clip_score_balanced take class quotas")
    pooled = bool(args.datacomp or args.clip_retrieval or args.engine != "inprocess" or
                  format_of(args.out, args.format) != "npy")
    if args.datacomp or args.clip_retrieval:
        if args.emb or args.img or args.txt:
            raise ValueError("give one source: --datacomp, --clip-retrieval, --emb, or --img and --txt")
    if args.emb and pooled and not args.out.endswith((".npy", ".parquet")):
        raise ValueError("--emb with --engine local/ray or --format writes .npy, .parquet or a uid file; "
                         "write the source's own format with the in-process engine")
    if args.emb:
        from_emb_folder(args)
    if pooled:
        return select_from_pool(args)
    if not (args.img and args.txt):
        raise ValueError("give --emb EMB, or both --img and --txt")
    subset, npy, summary_path = selection_paths(args.out, args.emb)
    outputs = {"--out": subset or npy}
    if subset:
        outputs["the indices of --out"] = npy
    outputs["the summary of --out"] = summary_path
    check_out(args, inputs_of(args), outputs)
    params, captions = method_params(args), captions_of(args)
    check_needs(args.method, target=params.get("target"), captions=captions, entries=params.get("entries"))
    sel = run_method(args.method, load_array(args.img, "--img"), load_array(args.txt, "--txt"), k_of(args),
                     labels=load_array(args.labels, "--labels") if args.labels else None,
                     class_emb=load_array(args.class_emb, "--class-emb") if args.class_emb else None,
                     budget=args.budget, threshold=args.threshold, weights=weights_from_text(args.weights) or None,
                     seed=args.seed, num_threads=args.num_threads, device=args.device, captions=captions, **params)
    params = {key: getattr(args, key) for key in PARAMS}
    npy, summary_path, info = save_selection(sel, args.out, params, emb=args.emb, absolute_paths=args.absolute_paths)
    print(f"{sel!r}\nwrote {info.get('subset', npy)} and {summary_path}")


def register(sub):
    p = sub.add_parser("select", help="choose a subset from image/caption embeddings",
                       description="Choose k pairs from embedding .npy files (memory-mapped) or a pool and "
                                   "write their indices (SUBSET.npy) and a JSON summary beside them.")
    p.add_argument("--emb", help="embedding folder of clipcov embed (img.npy, txt.npy, and labels.npy, "
                                 "class_emb.npy when present); then --out SUBSET.tsv (or a folder for "
                                 "shards) writes the chosen pairs in the source's own format")
    p.add_argument("--datacomp", metavar="DIR", help="a DataComp pool: *.parquet metadata (uid, text) with a "
                                                     "same-named .npz of embeddings beside each (the [scale] "
                                                     "extra)")
    p.add_argument("--arch", default="b32", choices=("b32", "l14"), help="DataComp embeddings to use (default b32)")
    p.add_argument("--clip-retrieval", metavar="DIR", help="clip-retrieval inference output: img_emb/, "
                                                           "text_emb/, metadata/ (the [scale] extra)")
    p.add_argument("--img", help="image embeddings, (n, d) .npy")
    p.add_argument("--txt", help="caption embeddings, (n, d) .npy")
    p.add_argument("--labels", help="proxy class of each pair, (n,) integer .npy: the classes whose quotas "
                                    "and cross-covariances ClipCov keeps")
    p.add_argument("--class-emb", help="class-prompt text embeddings, (K, d) .npy: without --labels, each pair's "
                                       "class is its zero-shot class; with --labels too (as an --emb folder "
                                       "holding both gives), the labels choose the classes and the prompts add "
                                       "the label term <caption, its class's prompt>. Neither: one class")
    p.add_argument("--k", help="subset size: a count (1200, 1e3), a fraction (0.1) or a percentage (10%%); "
                                "required but by clip_score with --fraction/--score-threshold, image_based, "
                                "image_based_clip_score and metaclip, whose rules define a set (with --k: that set "
                                "ranked by CLIP score, cut or topped up to k)")
    p.add_argument("--method", default="clipcov", choices=METHODS, metavar="METHOD",
                   help="clipcov (default) or xcov: the exact greedy; random, clip_score, semdedup: baselines "
                        "that take no classes; random_stratified, clip_score_balanced: baselines with "
                        "ClipCov's class quotas; clipcov_released: the authors' released greedy; the field: "
                        "negclip_loss, normsim, negclip_normsim (--target), image_based, image_based_clip_score "
                        "(--target), metaclip (--entries, captions) (docs/field.md)")
    p.add_argument("--budget", default="proportional", choices=("proportional", "global"),
                   help="proportional (default): each class gets its share of k; global: one greedy over "
                        "all classes")
    p.add_argument("--threshold", type=float, default=0.0, help="similarity threshold tau (default 0)")
    p.add_argument("--weights", default="", help="e.g. coverage=1,easiness=2,label=0.5,center=1,redundancy=1")
    p.add_argument("--seed", type=int, default=0, help="seed of the random and semdedup baselines (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto (default: the CPU engine until the CUDA backend is verified, docs/gpu.md), cpu, "
                        "or cuda (a build with CUDA and a GPU)")
    p.add_argument("--num-threads", type=positive_int, default=None,
                   help="threads of the engine (default: this process's CPUs)")
    f = p.add_argument_group("the field's selectors (docs/field.md)")
    f.add_argument("--target", metavar="FILE.npy", help="image embeddings of the target data, (m, d): normsim, "
                                                        "negclip_normsim, image_based, image_based_clip_score")
    f.add_argument("--p", choices=("2", "inf"), help="NormSim's norm (default 2; negclip_normsim: inf)")
    f.add_argument("--batch-size", type=positive_int, help="negCLIPLoss batch (default 32768)")
    f.add_argument("--repeats", type=positive_int, help="negCLIPLoss random batchings averaged (default 10)")
    f.add_argument("--temperature", type=float, help="negCLIPLoss teacher temperature (default 0.01, OpenAI "
                                                     "CLIP's; 1 / a proxy's logit scale)")
    f.add_argument("--prefilter", type=float, help="negclip_normsim: the negCLIPLoss fraction kept before NormSim "
                                                   "(default 0.3)")
    f.add_argument("--fraction", type=float, help="clip_score, image_based_clip_score: keep this fraction by CLIP "
                                                  "score, DataComp's way (image_based_clip_score default 0.3)")
    f.add_argument("--score-threshold", type=float, help="clip_score, image_based_clip_score: keep CLIP score >= "
                                                         "this")
    f.add_argument("--centroids", metavar="FILE.npy", help="image_based: (K, d) centroids (default: spherical "
                                                           "k-means of the pool)")
    f.add_argument("--n-clusters", type=positive_int, help="semdedup, image_based: k-means clusters")
    f.add_argument("--entries", metavar="FILE.txt", help="metaclip: metadata entries, one a line")
    f.add_argument("--max-matches", type=float, help="metaclip: t, the matches kept per entry (default 20000)")
    p.add_argument("--engine", default="inprocess", choices=("inprocess", "local", "ray"),
                   help="inprocess (default: the whole pool in this process), local (a process pool over "
                        "--work-dir) or ray (Ray tasks over --work-dir; the [scale] extra)")
    p.add_argument("--work-dir", help="work directory of --engine local/ray (resumable; on shared storage for a "
                                      "Ray cluster)")
    p.add_argument("--ray-address", help="a running Ray cluster (ray start --head); default: a local Ray")
    p.add_argument("--workers", type=positive_int, help="processes of --engine local (default: the CPUs)")
    p.add_argument("--copy-rows", action="store_true",
                   help="copy every row into --work-dir, even from .npy shards the workers could read by index "
                        "(default with --ray-address: other nodes may not see the pool's files)")
    p.add_argument("--format", choices=FORMATS, help="npy: row indices in pick order; parquet: key, caption, "
                                                     "class, gain, rank (the [scale] extra); datacomp: "
                                                     "DataComp's sorted u8,u8 uid file (default: from --out's "
                                                     "suffix)")
    p.add_argument("--absolute-paths", action="store_true", help="--emb tables: write absolute image paths "
                                                                 "(open_clip_train opens paths relative to "
                                                                 "where it runs)")
    p.add_argument("--out", required=True, help="SUBSET.npy (the summary goes to SUBSET.json; a name without "
                                                "one of the subset suffixes gets .json appended); with --emb "
                                                "also SUBSET.tsv/.csv, or a folder for webdataset shards (the "
                                                "[clip] extra); never an input's name")
    p.set_defaults(func=cmd_select)
