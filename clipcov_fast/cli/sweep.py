"""`clipcov sweep`: the experiment at several corruption rates of the built-in pool."""
from pathlib import Path

from ..experiment.sweep import run
from .experiment import add_run_args, comma_list, invoked_command, run_overrides


def cmd_sweep(args):
    overrides = run_overrides(args, "jobs")
    sweep = run(args.config, args.rates, args.work, args.out, progress=not args.no_progress,
                command=invoked_command(), **overrides)
    print(f"sweep {sweep['config']['name']}: {len(sweep['rates'])} rates in {sweep['total_seconds'] / 60:.1f} min; "
          f"wrote {Path(args.out) / 'sweep.md'}")


def register(sub):
    p = sub.add_parser("sweep", help="the experiment at several corruption rates of the pool",
                       description="Run `clipcov experiment` once per corruption rate of the built-in fashion-web "
                                   "pool (the share of its base images captioned as another class), each in its "
                                   "own work folder, and write OUT/sweep.md, sweep.json and sweep.png with every "
                                   "method's top-1 and its paired difference from ClipCov at each rate.")
    p.add_argument("--config", default="quick", help="the experiment config (quick, full, or a JSON file)")
    p.add_argument("--rates", type=comma_list(float, "fractions"), default="0.15,0.3,0.5",
                   help="misaligned shares, comma-separated (default 0.15,0.3,0.5)")
    add_run_args(p, "sweep.md/.json/.png (and one folder per rate)", "work folder, one subfolder per rate "
                                                                     "(default runs/sweep-CONFIG)", out="runs/sweep")
    p.set_defaults(func=cmd_sweep)
