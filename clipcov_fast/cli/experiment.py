"""`clipcov experiment`: the paper's experiment in miniature on the built-in fashion-web pool."""
import argparse
import json
import sys
from pathlib import Path

from ..experiment.report import headline
from ..experiment.run import run
from .types import positive_int


def parse_set(items):
    """['steps=100', 'budgets=[0.1,0.2]'] -> {'steps': 100, 'budgets': [0.1, 0.2]} (JSON values, else text)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set must look like KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def comma_list(cast, what):
    """An argparse type: '0.1,0.3' -> (0.1, 0.3) with each item cast; `what` names the items in the error."""
    def parse(text):
        try:
            return tuple(cast(item) for item in text.split(",") if item.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, comma-separated; got {text!r}") from None
    return parse


def run_overrides(args, *flags):
    """Config overrides of the run commands: --set KEY=VALUE, then each of `flags` given on the command line."""
    overrides = parse_set(args.set)
    overrides.update({name: getattr(args, name) for name in flags if getattr(args, name) is not None})
    return overrides


def invoked_command():
    """The command line as typed, for the report (None when called from Python)."""
    if sys.argv and sys.argv[0].endswith(("clipcov", "__main__.py")):
        return "clipcov " + " ".join(sys.argv[1:])
    return None


def add_run_args(p, outputs, work_help, out):
    """Flags shared by experiment, study and sweep: --set, --jobs, --work, --out (default `out`, under the
    untracked runs/: the committed reports in docs/ are written there only when asked), --no-progress."""
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable), "
                                                                        "e.g. --set seeds=[0,1,2]")
    p.add_argument("--jobs", type=positive_int, help="students trained at once (one thread each)")
    p.add_argument("--work", help=work_help)
    p.add_argument("--out", default=out, help=f"where {outputs} go (default {out})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_experiment(args):
    overrides = run_overrides(args, "jobs", "proxy")
    report = run(args.config, args.work, args.out, progress=not args.no_progress, command=invoked_command(),
                 reuse=tuple(args.reuse or ()), **overrides)
    print(f"\n{headline(report)}\n\nexperiment {report['config']['name']}: {len(report['students'])} students in "
          f"{report['total_seconds'] / 60:.1f} min; wrote {Path(args.out) / 'results.md'} and results.png"
          + (f", and {report['selection_report']} (clipcov report: ClipCov against CLIP score)"
             if report.get("selection_report") else ""))


def register(sub):
    p = sub.add_parser("experiment", help="the paper's experiment in miniature on the built-in pool",
                       description="Select subsets of the built-in fashion-web pool with every method, train a "
                                   "student CLIP on each, score them zero-shot on fashion-mnist-test, and write "
                                   "OUT/results.md, results.json and results.png.")
    p.add_argument("--config", default="quick", help="quick (about 10 minutes on 2 cores), full, or a JSON file "
                                                    "of Config fields (with an optional \"base\")")
    p.add_argument("--proxy", help="lite0-minilm (default: frozen pretrained towers + heads fitted on "
                                   "fashion-proxy), tiny-clip, or MODEL=CHECKPOINT (a real CLIP)")
    p.add_argument("--reuse", action="append", metavar="RESULTS.json",
                   help="an earlier report whose students are taken where their task is the same as this run's "
                        "(same subset bytes, seed, student and scoring sets), so that a run grows by methods or "
                        "seeds without the old work folder (repeatable)")
    add_run_args(p, "results.md/.json/.png", "work folder, reused by reruns (default runs/experiment-CONFIG)",
                 out="runs/results")
    p.set_defaults(func=cmd_experiment)
