"""`clipcov labels`: zero-shot proxy classes of every embedded pair."""
import numpy as np

from ..pipeline.labels import label


def cmd_labels(args):
    y, T = label(args.emb, args.classes, args.templates, model=args.model, checkpoint=args.checkpoint,
                 device=args.device)
    print(f"wrote labels.npy ({len(y)} pairs, {int((np.bincount(y) > 0).sum())} of {len(T)} classes used) "
          f"and class_emb.npy into {args.emb}")


def register(sub):
    p = sub.add_parser("labels", help="zero-shot proxy labels from class prompts",
                       description="Label every embedded pair with its nearest class-prompt embedding; "
                                   "writes EMB/labels.npy and EMB/class_emb.npy.")
    p.add_argument("--emb", required=True, help="embedding folder written by clipcov embed")
    p.add_argument("--classes", default="imagenet", help="imagenet, fashion-mnist, or a file (one class a line)")
    p.add_argument("--templates", default="openai", help="openai, simple, or a file (lines with {})")
    p.add_argument("--model", help="open_clip model for the prompts (default: the one that made EMB)")
    p.add_argument("--checkpoint", help="local weights for --model")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_labels)
