"""`clipcov demo`: every selector on the built-in synthetic pool (seconds), a summary table and a plot."""
from ..experiment.demo import run_demo
from .types import positive_int


def cmd_demo(args):
    print(run_demo(args.out, n=args.n, d=args.d, classes=args.classes, fraction=args.fraction, seed=args.seed))


def register(sub):
    p = sub.add_parser("demo", help="run every selector on the built-in synthetic pool",
                       description="Select from a built-in synthetic pool (clustered, Zipf class sizes, "
                                   "misaligned and duplicated pairs) with every method; print what each "
                                   "subset holds and plot it.")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--n", type=positive_int, default=20000)
    p.add_argument("--d", type=positive_int, default=64)
    p.add_argument("--classes", type=positive_int, default=20)
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
