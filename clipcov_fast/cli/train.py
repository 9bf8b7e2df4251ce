"""`clipcov train`: train a CLIP on a subset with open_clip_train, in-process."""
import shlex

from ..pipeline import models
from ..training.train import PAPER, train
from .types import positive_int


def cmd_train(args):
    info = train(args.data, args.model, args.out, epochs=args.epochs, steps=args.steps,
                 batch_size=args.batch_size, lr=args.lr, beta1=args.beta1, beta2=args.beta2, eps=args.eps,
                 wd=args.wd, warmup=args.warmup, seed=args.seed, device=args.device, precision=args.precision,
                 workers=args.workers, resume=args.resume, threads=args.threads, extra=args.extra or (),
                 dry_run=args.print_argv)
    if args.print_argv:
        print("open_clip_train argv:", " ".join(shlex.quote(a) for a in info["argv"]))
        return
    print(f"trained {info['model']} for {info['steps']} steps on {info['pairs']} pairs; "
          f"checkpoint {info['checkpoint']}")


def register(sub):
    p = sub.add_parser("train", help="train a CLIP on a subset with open_clip_train",
                       description="Train an open_clip model on a table of pairs (a subset written by "
                                   "clipcov select) with open_clip's trainer, in-process. Checkpoints go to "
                                   "OUT/checkpoints/epoch_N.pt; --resume continues from the latest. Under "
                                   "torchrun the same command trains on several GPUs or nodes.")
    p.add_argument("--data", required=True, help="table of pairs (filepath, title), e.g. SUBSET.tsv")
    p.add_argument("--model", required=True, help=f"open_clip model name ({', '.join(models.NAMES)} ship here)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--epochs", type=positive_int, help="passes over the data (default 10; 1 with --steps)")
    p.add_argument("--steps", type=positive_int, help="total optimizer steps, whatever the table size")
    p.add_argument("--batch-size", type=positive_int, default=64, help="per device (paper: 256 on each of 2 GPUs)")
    p.add_argument("--lr", type=float, default=PAPER["lr"])
    p.add_argument("--beta1", type=float, default=PAPER["beta1"])
    p.add_argument("--beta2", type=float, default=PAPER["beta2"])
    p.add_argument("--eps", type=float, default=PAPER["eps"])
    p.add_argument("--wd", type=float, default=PAPER["wd"], help="weight decay (none on gains and biases)")
    p.add_argument("--warmup", type=int, help="warm-up steps (default: 10%% of the run; paper: 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (one process; use torchrun for several GPUs)")
    p.add_argument("--precision", help="open_clip_train precision (default: amp on cuda, fp32 on cpu)")
    p.add_argument("--workers", type=int, default=0, help="data loader workers per process")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue from OUT's latest checkpoint")
    p.add_argument("--print-argv", action="store_true", help="print the open_clip_train argv and stop")
    p.add_argument("extra", nargs="*", metavar="-- OPEN_CLIP_TRAIN_ARGS",
                   help="more open_clip_train arguments after --, e.g. -- --grad-checkpointing")
    p.set_defaults(func=cmd_train)
