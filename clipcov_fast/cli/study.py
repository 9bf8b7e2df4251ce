"""`clipcov study`: issue 11's "beyond the paper" study of ClipCov's recipe, decided on fashion-val."""
from pathlib import Path

from ..experiment.study import run
from .experiment import add_run_args, comma_list, invoked_command, run_overrides


def cmd_study(args):
    overrides = run_overrides(args, "jobs")
    if any(k < 2 for k in args.clusters):
        raise ValueError(f"--clusters must be integers of at least 2, got {args.clusters}")
    study = run(args.config, args.work, args.out, budget=args.budget, clusters=args.clusters,
                progress=not args.no_progress, command=invoked_command(), **overrides)
    print(f"study {study['config']['name']}: {len(study['students'])} students in "
          f"{study['total_seconds'] / 60:.1f} min; chosen {study['chosen']['name']}; wrote {Path(args.out) / 'study.md'}")


def register(sub):
    p = sub.add_parser("study", help="which ClipCov recipe trains better students, chosen on fashion-val",
                       description="Select a subset of the built-in fashion-web pool with the paper's ClipCov "
                                   "recipe and each variant (redundancy weight 10 and 100 or divided by the class "
                                   "quota, xcov with ClipCov's modular terms, k-means proxy classes), train "
                                   "students for every seed, compare each with the paper's recipe on fashion-val "
                                   "(paired, Holm), and write OUT/study.md, study.json and study.png; the "
                                   "experiment's clipcov_recipe reads the chosen recipe from study.json.")
    p.add_argument("--config", default="quick", help="the experiment config whose pool, proxy, students and "
                                                    "seeds are used (quick, full, or a JSON file)")
    p.add_argument("--budget", type=float, default=0.1, help="subset size as a fraction of the pool (default 0.1)")
    p.add_argument("--clusters", type=comma_list(int, "integers"), default="5,10,20,50,100",
                   help="K of the k-means candidates, comma-separated (empty: none)")
    add_run_args(p, "study.md/.json/.png", "work folder, shared with `clipcov experiment` (default "
                                          "runs/experiment-CONFIG)", out="runs/study")
    p.set_defaults(func=cmd_study)
