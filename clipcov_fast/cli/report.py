"""`clipcov report`: one self-contained HTML page of what a selection kept and dropped."""
from ..pipeline.report import write_report


def cmd_report(args):
    info = write_report(args.subset, args.out, against=args.against, seed=args.seed)
    extra = f" ({len(info['unreadable'])} images did not open: listed on the page)" if info["unreadable"] else ""
    print(f"wrote {info['out']}: {', '.join(info['sections'])}{extra}")


def register(sub):
    p = sub.add_parser("report", help="an HTML page of what a selection kept and dropped",
                       description="Write one self-contained HTML page (plots and thumbnails inside; no script, no "
                                   "network) of SUBSET as clipcov select wrote it (its .npy, .parquet, uid file or "
                                   "table, with SUBSET.json beside it): composition per class, scores kept vs "
                                   "dropped, examples, and with --against a second selection of the same pool.")
    p.add_argument("subset", metavar="SUBSET", help="a subset written by clipcov select")
    p.add_argument("--against", metavar="OTHER", help="another selection of the same pool, shown side by side")
    p.add_argument("--seed", type=int, default=0, help="seed of the random class and examples (default 0)")
    p.add_argument("--out", required=True, help="the page, e.g. report.html")
    p.set_defaults(func=cmd_report)
