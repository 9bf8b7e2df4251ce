"""`clipcov labels`: zero-shot proxy classes of every embedded pair (an embedding folder or a pool)."""
import numpy as np

from ..pipeline.labels import label, label_pool, prompt_embeddings
from ..pipeline.subsets import load_array


def cmd_labels(args):
    if args.datacomp or args.clip_retrieval:
        from ..pipeline.sources import open_pool

        if args.emb:
            raise ValueError("give one source: --emb, --datacomp or --clip-retrieval")
        if not args.out:
            raise ValueError("--out LABELS.npy is required with --datacomp or --clip-retrieval")
        pool = open_pool(datacomp=args.datacomp, clip_retrieval=args.clip_retrieval, arch=args.arch)
        if args.class_emb:
            T = load_array(args.class_emb, "--class-emb")
        elif args.model:
            T = prompt_embeddings(args.model, args.checkpoint, args.classes, args.templates, args.device)
        else:
            raise ValueError("a pool needs --class-emb CLASSES.npy (class-prompt embeddings) or --model")
        y = label_pool(pool, T, args.out)
        print(f"wrote {args.out} ({len(y)} rows, {int((np.bincount(y) > 0).sum())} of {len(T)} classes used)")
        return
    if not args.emb:
        raise ValueError("give --emb EMB, --datacomp DIR or --clip-retrieval DIR")
    y, T = label(args.emb, args.classes, args.templates, model=args.model, checkpoint=args.checkpoint,
                 device=args.device)
    print(f"wrote labels.npy ({len(y)} pairs, {int((np.bincount(y) > 0).sum())} of {len(T)} classes used) "
          f"and class_emb.npy into {args.emb}")


def register(sub):
    p = sub.add_parser("labels", help="zero-shot proxy labels from class prompts",
                       description="Label every embedded pair with its nearest class-prompt embedding; "
                                   "writes EMB/labels.npy and EMB/class_emb.npy, or --out for a pool.")
    p.add_argument("--emb", help="embedding folder written by clipcov embed")
    p.add_argument("--datacomp", metavar="DIR", help="a DataComp pool (parquet + npz)")
    p.add_argument("--arch", default="b32", choices=("b32", "l14"))
    p.add_argument("--clip-retrieval", metavar="DIR", help="clip-retrieval inference output")
    p.add_argument("--class-emb", help="class-prompt embeddings, (K, d) .npy (pools)")
    p.add_argument("--out", help="LABELS.npy for a pool (rows in the pool's shard order)")
    p.add_argument("--classes", default="imagenet", help="imagenet, fashion-mnist, or a file (one class a line)")
    p.add_argument("--templates", default="openai", help="openai, simple, or a file (lines with {})")
    p.add_argument("--model", help="open_clip model for the prompts (default: the one that made EMB)")
    p.add_argument("--checkpoint", help="local weights for --model")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_labels)
