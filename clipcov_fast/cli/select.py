"""`clipcov select`: choose a subset from embedding files and write it with a JSON summary."""
from ..methods import METHODS, run_method
from ..pipeline.subsets import embedding_files, load_array, save_selection


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


def cmd_select(args):
    if args.emb:
        if args.img or args.txt:
            raise ValueError("--emb replaces --img and --txt: give one or the other")
        found = embedding_files(args.emb)
        args.img, args.txt = found["img"], found["txt"]
        args.labels = args.labels or found["labels"]  # the folder's labels and class prompts, unless given
        args.class_emb = args.class_emb or found["class_emb"]
    if not (args.img and args.txt):
        raise ValueError("give --emb EMB, or both --img and --txt")
    sel = run_method(args.method, load_array(args.img, "--img"), load_array(args.txt, "--txt"),
                     k_from_text(args.k),
                     labels=load_array(args.labels, "--labels") if args.labels else None,
                     class_emb=load_array(args.class_emb, "--class-emb") if args.class_emb else None,
                     budget=args.budget, threshold=args.threshold, weights=weights_from_text(args.weights) or None,
                     seed=args.seed, num_threads=args.num_threads, device=args.device)
    params = {key: getattr(args, key) for key in ("emb", "img", "txt", "labels", "class_emb", "k", "method",
                                                  "budget", "threshold", "weights", "seed")}
    npy, summary_path, info = save_selection(sel, args.out, params, emb=args.emb)
    print(f"{sel!r}\nwrote {info.get('subset', npy)} and {summary_path}")


def register(sub):
    p = sub.add_parser("select", help="choose a subset from image/caption embeddings",
                       description="Choose k pairs from embedding .npy files (memory-mapped) and write "
                                   "their indices (SUBSET.npy) and a JSON summary beside them.")
    p.add_argument("--emb", help="embedding folder of clipcov embed (img.npy, txt.npy, and labels.npy, "
                                 "class_emb.npy when present); then --out SUBSET.tsv (or a folder for "
                                 "shards) writes the chosen pairs in the source's own format")
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
    p.add_argument("--out", required=True, help="SUBSET.npy (the summary goes to SUBSET.json); with --emb also "
                                                "SUBSET.tsv/.csv, or a folder for webdataset shards")
    p.set_defaults(func=cmd_select)
