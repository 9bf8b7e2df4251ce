"""`clipcov select`: choose a subset from embedding files or pools and write it with a JSON summary."""
from .. import files
from ..methods import METHODS, run_method
from ..pipeline.subsets import FORMATS, embedding_files, format_of, load_array, save_selection, summary, \
    write_pool_subset


def k_from_text(text):
    """'10%' -> 0.1, '0.1' -> 0.1, '1200' -> 1200 (inputs.resolve_k turns these into a count)."""
    text = str(text).strip()
    try:
        if text.endswith("%"):
            value = float(text[:-1]) / 100
            if not 0 < value < 1:
                raise ValueError
            return value
        return int(text) if text.isdigit() else float(text)
    except ValueError:
        raise ValueError(f"--k must be a count (1200), a fraction (0.1) or a percentage (10%), got {text!r}") from None


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


PARAMS = ("emb", "img", "txt", "datacomp", "arch", "clip_retrieval", "labels", "class_emb", "k", "method",
          "budget", "threshold", "weights", "seed", "engine", "work_dir")


def select_from_pool(args):
    """A pool source, a work-directory engine, or a pool output format: scale.select_pool."""
    from ..pipeline.sources import open_pool
    from ..scale import select_pool

    if args.method not in ("clipcov", "xcov"):
        raise ValueError(f"--method {args.method} runs in process on --img/--txt or --emb; pools and "
                         "--engine local/ray take clipcov or xcov")
    pool = open_pool(datacomp=args.datacomp, clip_retrieval=args.clip_retrieval, img=args.img, txt=args.txt,
                     arch=args.arch)
    labels = load_array(args.labels, "--labels") if args.labels else None
    if labels is not None and (labels.ndim != 1 or len(labels) != pool.n):
        raise ValueError(f"--labels: {args.labels} has shape {labels.shape}, but the pool has {pool.n} rows")
    sel = select_pool(pool, k_from_text(args.k), objective=args.method, labels=labels,
                      class_emb=load_array(args.class_emb, "--class-emb") if args.class_emb else None,
                      threshold=args.threshold, weights=weights_from_text(args.weights) or None, budget=args.budget,
                      engine=args.engine, work_dir=args.work_dir, ray_address=args.ray_address,
                      workers=args.workers, num_threads=args.num_threads, copy_rows=args.copy_rows or None)
    out = write_pool_subset(pool, sel, args.out, args.format)
    summary_path = out.with_suffix(".json")
    files.save_json(summary_path, summary(sel, {key: getattr(args, key) for key in PARAMS}))
    print(f"{sel!r}\nwrote {out} and {summary_path}")


def cmd_select(args):
    pooled = bool(args.datacomp or args.clip_retrieval or args.engine != "inprocess" or
                  format_of(args.out, args.format) != "npy")
    if args.datacomp or args.clip_retrieval:
        if args.emb or args.img or args.txt:
            raise ValueError("give one source: --datacomp, --clip-retrieval, --emb, or --img and --txt")
    if args.emb and pooled and not args.out.endswith((".npy", ".parquet")):
        raise ValueError("--emb with --engine local/ray or --format writes .npy, .parquet or a uid file; "
                         "write the source's own format with the in-process engine")
    if args.emb:
        if args.img or args.txt:
            raise ValueError("--emb replaces --img and --txt: give one or the other")
        found = embedding_files(args.emb)
        args.img, args.txt = found["img"], found["txt"]
        args.labels = args.labels or found["labels"]  # the folder's labels and class prompts, unless given
        args.class_emb = args.class_emb or found["class_emb"]
    if pooled:
        return select_from_pool(args)
    if not (args.img and args.txt):
        raise ValueError("give --emb EMB, or both --img and --txt")
    sel = run_method(args.method, load_array(args.img, "--img"), load_array(args.txt, "--txt"),
                     k_from_text(args.k),
                     labels=load_array(args.labels, "--labels") if args.labels else None,
                     class_emb=load_array(args.class_emb, "--class-emb") if args.class_emb else None,
                     budget=args.budget, threshold=args.threshold, weights=weights_from_text(args.weights) or None,
                     seed=args.seed, num_threads=args.num_threads, device=args.device)
    params = {key: getattr(args, key) for key in PARAMS}
    npy, summary_path, info = save_selection(sel, args.out, params, emb=args.emb, absolute_paths=args.absolute_paths)
    print(f"{sel!r}\nwrote {info.get('subset', npy)} and {summary_path}")


def register(sub):
    p = sub.add_parser("select", help="choose a subset from image/caption embeddings",
                       description="Choose k pairs from embedding .npy files (memory-mapped) and write "
                                   "their indices (SUBSET.npy) and a JSON summary beside them.")
    p.add_argument("--emb", help="embedding folder of clipcov embed (img.npy, txt.npy, and labels.npy, "
                                 "class_emb.npy when present); then --out SUBSET.tsv (or a folder for "
                                 "shards) writes the chosen pairs in the source's own format")
    p.add_argument("--datacomp", metavar="DIR", help="a DataComp pool: *.parquet metadata (uid, text) with a "
                                                     "same-named .npz of embeddings beside each")
    p.add_argument("--arch", default="b32", choices=("b32", "l14"), help="DataComp embeddings to use (default b32)")
    p.add_argument("--clip-retrieval", metavar="DIR", help="clip-retrieval inference output: img_emb/, "
                                                           "text_emb/, metadata/")
    p.add_argument("--img", help="image embeddings, (n, d) .npy")
    p.add_argument("--txt", help="caption embeddings, (n, d) .npy")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--labels", help="proxy class of each pair, (n,) integer .npy")
    group.add_argument("--class-emb", help="class-prompt text embeddings, (K, d) .npy, for zero-shot labels")
    p.add_argument("--k", required=True, help="subset size: 1200, 0.1 or 10%%")
    p.add_argument("--method", default="clipcov", choices=METHODS)
    p.add_argument("--budget", default="proportional", choices=("proportional", "global"))
    p.add_argument("--threshold", type=float, default=0.0, help="similarity threshold tau (default 0)")
    p.add_argument("--weights", default="", help="e.g. coverage=1,easiness=2,label=0.5,center=1,redundancy=1")
    p.add_argument("--seed", type=int, default=0, help="seed of the random and semdedup baselines")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--engine", default="inprocess", choices=("inprocess", "local", "ray"),
                   help="inprocess (the whole pool in this process), local (a process pool over --work-dir) "
                        "or ray (Ray tasks over --work-dir)")
    p.add_argument("--work-dir", help="work directory of --engine local/ray (resumable; on shared storage for a "
                                      "Ray cluster)")
    p.add_argument("--ray-address", help="a running Ray cluster (ray start --head); default: a local Ray")
    p.add_argument("--workers", type=int, help="processes of --engine local (default: the CPUs)")
    p.add_argument("--copy-rows", action="store_true",
                   help="copy every row into --work-dir, even from .npy shards the workers could read by index "
                        "(default with --ray-address: other nodes may not see the pool's files)")
    p.add_argument("--format", choices=FORMATS, help="npy: row indices in pick order; parquet: key, caption, "
                                                     "class, gain, rank; datacomp: DataComp's sorted u8,u8 uid "
                                                     "file (default: from --out's suffix)")
    p.add_argument("--absolute-paths", action="store_true", help="--emb tables: write absolute image paths "
                                                                 "(open_clip_train opens paths relative to "
                                                                 "where it runs)")
    p.add_argument("--out", required=True, help="SUBSET.npy (the summary goes to SUBSET.json); with --emb also "
                                                "SUBSET.tsv/.csv, or a folder for webdataset shards")
    p.set_defaults(func=cmd_select)
