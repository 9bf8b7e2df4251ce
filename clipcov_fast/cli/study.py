"""`clipcov study`: issue 11's "beyond the paper" study of ClipCov's recipe, decided on fashion-val."""
from pathlib import Path

from ..experiment import recipes
from ..experiment.configs import FIELD
from ..experiment.study import run
from .experiment import add_run_args, comma_list, invoked_command, run_overrides


def cmd_study(args):
    overrides = run_overrides(args, "jobs")
    if any(k < 2 for k in args.clusters):
        raise ValueError(f"--clusters must be integers of at least 2, got {args.clusters}")
    known = set(recipes.candidates(args.clusters))
    bad = [n for n in args.recipes or () if n not in known]
    if bad:
        raise ValueError(f"--recipes: unknown recipe(s) {bad}; known: {sorted(known)}")
    bad = [m for m in args.field if m not in FIELD]
    if bad:
        raise ValueError(f"--field: unknown field selector(s) {bad}; known: {list(FIELD)}")
    study = run(args.config, args.work, args.out, budget=args.budget, clusters=args.clusters,
                progress=not args.no_progress, command=invoked_command(), names=args.recipes,
                field_rows=tuple(args.field), **overrides)
    print(f"study {study['config']['name']}: {len(study['students'])} students in "
          f"{study['total_seconds'] / 60:.1f} min; chosen {study['chosen']['name']}; wrote {Path(args.out) / 'study.md'}")


def register(sub):
    p = sub.add_parser("study", help="which ClipCov recipe trains better students, chosen on fashion-val",
                       description="Select a subset of the built-in fashion-web pool with the paper's ClipCov "
                                   "recipe and each variant (redundancy weight 10 and 100 or divided by the class "
                                   "quota, xcov with ClipCov's modular terms, k-means proxy classes, negCLIPLoss "
                                   "as the alignment term, a NormSim term, a negCLIPLoss prefilter, class-balanced "
                                   "negCLIPLoss) and the field's selectors, train students for every seed, "
                                   "compare each recipe with the paper's on fashion-val (paired, Holm) and the "
                                   "chosen one with the best field selector, and write OUT/study.md, study.json "
                                   "and study.png; the experiment's clipcov_recipe reads the chosen recipe from "
                                   "study.json.")
    p.add_argument("--config", default="quick", help="the experiment config whose pool, proxy, students and "
                                                    "seeds are used (quick, full, or a JSON file)")
    p.add_argument("--budget", type=float, default=0.1, help="subset size as a fraction of the pool (default 0.1)")
    p.add_argument("--clusters", type=comma_list(int, "integers"), default="5,10,20,50,100",
                   help="K of the k-means candidates, comma-separated (empty: none)")
    p.add_argument("--recipes", type=comma_list(str.strip, "names"), default=None,
                   help="only these candidate recipes, comma-separated (default: all; the paper's always runs)")
    p.add_argument("--field", type=comma_list(str.strip, "names"), default=",".join(FIELD),
                   help="the field selectors trained beside them, comma-separated (default: all of "
                        f"{', '.join(FIELD)}; empty: none)")
    add_run_args(p, "study.md/.json/.png", "work folder, shared with `clipcov experiment` (default "
                                          "runs/experiment-CONFIG)", out="runs/study")
    p.set_defaults(func=cmd_study)
