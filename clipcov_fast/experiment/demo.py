"""Every selector on the built-in synthetic pool: what each subset holds, a summary table and a plot."""
import logging
from pathlib import Path

import numpy as np

from .. import files, synthetic
from ..methods import METHODS, REGISTRY, run_method

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
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # classes are whole numbers
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
    ax.tick_params(axis="x", labelrotation=35)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    files.save_png(path, fig)


def run_demo(out, n=20000, d=64, classes=20, fraction=0.1, seed=0):
    """Select with every method; write OUT/subset_METHOD.npy, summary.json and demo.png. Returns the table
    as text."""
    out = Path(out)
    img, txt, labels, kind = synthetic.make_pool(n, d=d, classes=classes, seed=seed)
    log.info("synthetic pool: n=%d d=%d classes=%d (%.0f%% clean, %.0f%% misaligned, %.0f%% duplicates)",
             n, d, classes, 100 * np.mean(kind == 0), 100 * np.mean(kind == 1),
             100 * np.mean(kind == 2))
    k = int(fraction * n)
    # the field's target-based selectors get a target that stands for a downstream task's images: every 20th
    # clean image of the pool (the pool has no captions, so metaclip does not run here)
    target = img[np.flatnonzero(kind == 0)[::20]]
    results, rows = {}, []
    for method in [m for m in METHODS if "captions" not in REGISTRY[m].needs]:
        sel = run_method(method, img, txt, k, labels=labels, seed=seed, target=target)
        results[method] = sel
        counts = np.bincount(labels[sel.indices], minlength=classes)
        rows.append({"method": method, "seconds": sel.timings.get("total", 0.0), **composition(sel, kind),
                     "distinct_classes": int(np.count_nonzero(counts)),
                     "objective": None if np.isnan(sel.objective) else sel.objective})
        files.save_npy(out / f"subset_{method}.npy", sel.indices)
    w = max(len(r["method"]) for r in rows)
    header = f"{'method':<{w}} {'seconds':>8} {'clean':>7} {'misalig.':>9} {'dupl.':>7} {'classes':>8}"
    lines = [f"demo: k = {k} of n = {n} pairs ({fraction:.0%}), {classes} classes", header]
    for r in rows:
        lines.append(f"{r['method']:<{w}} {r['seconds']:>8.3f} {r['clean']:>7.1%} {r['misaligned']:>9.1%} "
                     f"{r['duplicate']:>7.1%} {r['distinct_classes']:>8d}")
    files.save_json(out / "summary.json", {"n": n, "k": k, "d": d, "classes": classes,
                                        "seed": seed, "methods": rows})
    plot(out / "demo.png", results, labels, kind, classes)
    return "\n".join(lines + [f"wrote {out / 'summary.json'} and {out / 'demo.png'}"])
