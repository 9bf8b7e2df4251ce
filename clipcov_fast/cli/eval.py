"""`clipcov eval`: zero-shot classification and retrieval of a model."""
from .. import files
from ..training.evaluate import BUILTIN, evaluate
from .types import positive_int


def cmd_eval(args):
    res = evaluate(args.model, args.dataset, checkpoint=args.checkpoint, limit=args.limit, classes=args.classes,
                   templates=args.templates, retrieval_limit=args.retrieval_limit, batch_size=args.batch_size,
                   device=args.device)
    lines = [f"{res['model']} on {res['dataset']} ({res['pairs']} pairs)"]
    if "zero_shot" in res:
        z = res["zero_shot"]
        lines.append(f"zero-shot ({res['prompts_per_class']} prompts a class): top-1 {z['top1']:.2%}  "
                     f"top-5 {z['top5']:.2%}  mean per-class recall {z['mean_per_class_recall']:.2%}")
    if "retrieval" in res:
        r = res["retrieval"]
        for d in ("image_to_text", "text_to_image"):
            lines.append(f"retrieval {d.replace('_', ' ')} ({r['pairs']} pairs, {r['distinct_captions']} distinct "
                         f"captions): " + "  ".join(f"R@{k} {r[f'{d}_R@{k}']:.2%}" for k in (1, 5, 10)))
    print("\n".join(lines))
    if args.out:
        files.save_json(args.out, res)
        print(f"wrote {args.out}")


def register(sub):
    p = sub.add_parser("eval", help="zero-shot classification and retrieval of a model",
                       description="Zero-shot top-1/top-5 and mean per-class recall with class prompts, and "
                                   "image-caption retrieval recall@1/5/10.")
    p.add_argument("--model", required=True, help="open_clip model name, or lite0-minilm (the proxy)")
    p.add_argument("--checkpoint", help="weights: an open_clip_train checkpoint or state dict")
    p.add_argument("--dataset", default="fashion-mnist-test",
                   help=f"{' or '.join(BUILTIN)}, or a folder with pairs.tsv (filepath, title, label)")
    p.add_argument("--limit", type=int, help="first N pairs only")
    p.add_argument("--classes", help="class names: fashion-mnist, imagenet or a file (default: the dataset's)")
    p.add_argument("--templates", default="simple", help="prompt templates: simple, openai or a file")
    p.add_argument("--retrieval-limit", type=int, default=1000, help="pairs for retrieval (0: none)")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="write the metrics as JSON here")
    p.set_defaults(func=cmd_eval)
