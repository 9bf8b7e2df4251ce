"""`clipcov embed`: embed image-caption pairs with an open_clip model (resumable)."""
from ..pipeline import models
from ..pipeline.embed import embed
from .types import positive_int


def cmd_embed(args):
    m = embed(args.data, args.model, args.out, checkpoint=args.checkpoint, batch_size=args.batch_size,
              device=args.device, num_workers=args.num_workers, seed=args.seed, img_key=args.img_key,
              caption_key=args.caption_key, sep=args.sep, overwrite=args.overwrite)
    c = m["counts"]
    print(f"embedded {c['embedded']} of {c['pairs']} pairs ({c['skipped']} skipped) into {args.out}")


def register(sub):
    p = sub.add_parser("embed", help="embed image-caption pairs with an open_clip model",
                       description="Embed every pair of a table, webdataset shards or an image folder "
                                   "into EMB/img.npy and EMB/txt.npy (fp16, L2-normalized). Resumable: "
                                   "rerun the same command after an interruption.")
    p.add_argument("--data", required=True, help="pairs.tsv/.csv, shards (DIR, x.tar, {000..009}.tar) or an "
                                                 "image folder with sidecar .txt captions")
    p.add_argument("--model", required=True, help=f"open_clip model name ({', '.join(models.NAMES)} ship here)")
    p.add_argument("--checkpoint", help="local weights file (nothing is downloaded); random weights without")
    p.add_argument("--out", required=True, help="output folder EMB")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader workers reading images")
    p.add_argument("--seed", type=int, default=0, help="seed of random weights when there is no checkpoint")
    p.add_argument("--img-key", default="filepath", help="table column of image paths")
    p.add_argument("--caption-key", default="title", help="table column of captions")
    p.add_argument("--sep", help="table separator (default: tab; comma for .csv)")
    p.add_argument("--overwrite", action="store_true", help="start over even if EMB holds other embeddings")
    p.set_defaults(func=cmd_embed)
