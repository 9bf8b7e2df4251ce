"""`clipcov demo`: every selector on the built-in synthetic pool, a summary table and a plot."""
import logging
from pathlib import Path

import numpy as np

from . import io, synthetic
from .commands_select import METHODS, run_method

log = logging.getLogger("clipcov_fast")


def composition(sel, kind):
    """Fractions of clean / misaligned / duplicate pairs in the subset."""
    picked = kind[sel.indices]
    return {name: float(np.mean(picked == code)) if len(picked) else 0.0 for code, name in synthetic.KINDS.items()}


def plot(path, results, labels, kind, classes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    pool_share = np.bincount(labels, minlength=classes) / len(labels)
    ax = axes[0]
    ax.bar(np.arange(classes) - 0.2, pool_share, 0.4, label="full pool")
    sel = results["clipcov"]
    ax.bar(np.arange(classes) + 0.2, np.bincount(labels[sel.indices], minlength=classes) / sel.k, 0.4,
           label="ClipCov subset")
    ax.set(title="class composition", xlabel="class", ylabel="share of pairs")
    ax.legend()
    ax = axes[1]
    for name in ("clipcov", "xcov"):  # their scales differ: show each relative to its first pick
        gains = results[name].gains
        ax.plot(gains / gains[0] if len(gains) and gains[0] else gains, label=name)
    ax.set(title="gain of each pick", xlabel="pick", ylabel="marginal gain / first gain")
    ax.legend()
    ax = axes[2]
    names = list(results)
    bottom = np.zeros(len(names))
    for code, kname in synthetic.KINDS.items():
        share = np.array([np.mean(kind[results[m].indices] == code) for m in names])
        ax.bar(names, share, bottom=bottom, label=kname)
        bottom += share
    ax.axhline(np.mean(kind == 0), color="k", ls="--", lw=1, label="clean share in pool")
    ax.set(title="what each subset holds", ylabel="share of subset", ylim=(0, 1.25))
    ax.legend(fontsize=8, ncol=2, loc="upper center")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def cmd_demo(args):
    out = Path(args.out)
    img, txt, labels, kind = synthetic.make_pool(args.n, d=args.d, classes=args.classes, seed=args.seed)
    log.info("synthetic pool: n=%d d=%d classes=%d (%.0f%% clean, %.0f%% misaligned, %.0f%% duplicates)",
             args.n, args.d, args.classes, 100 * np.mean(kind == 0), 100 * np.mean(kind == 1),
             100 * np.mean(kind == 2))
    k = int(args.fraction * args.n)
    results, rows = {}, []
    for method in METHODS:
        sel = run_method(method, img, txt, k, labels=labels, seed=args.seed)
        results[method] = sel
        counts = np.bincount(labels[sel.indices], minlength=args.classes)
        rows.append({"method": method, "seconds": sel.timings.get("total", 0.0), **composition(sel, kind),
                     "distinct_classes": int(np.count_nonzero(counts)),
                     "objective": None if np.isnan(sel.objective) else sel.objective})
        io.save_npy(out / f"subset_{method}.npy", sel.indices)
    header = f"{'method':<11} {'seconds':>8} {'clean':>7} {'misalig.':>9} {'dupl.':>7} {'classes':>8}"
    lines = [f"demo: k = {k} of n = {args.n} pairs ({args.fraction:.0%}), {args.classes} classes", header]
    for r in rows:
        lines.append(f"{r['method']:<11} {r['seconds']:>8.3f} {r['clean']:>7.1%} {r['misaligned']:>9.1%} "
                     f"{r['duplicate']:>7.1%} {r['distinct_classes']:>8d}")
    print("\n".join(lines))
    io.save_json(out / "summary.json", {"n": args.n, "k": k, "d": args.d, "classes": args.classes,
                                        "seed": args.seed, "methods": rows})
    plot(out / "demo.png", results, labels, kind, args.classes)
    print(f"wrote {out / 'summary.json'} and {out / 'demo.png'}")


def register(sub):
    p = sub.add_parser("demo", help="run every selector on the built-in synthetic pool",
                       description="Select from a built-in synthetic pool (clustered, Zipf class sizes, "
                                   "misaligned and duplicated pairs) with every method; print what each "
                                   "subset holds and plot it.")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
