"""`clipcov sweep`: the experiment at several corruption rates of the pool (the share of fashion-web's base
images captioned as another class), one experiment per rate, and one report across them.

    clipcov sweep --config quick --rates 0.15,0.3,0.5 --out docs/sweep
    -> OUT/sweep.md, sweep.json, sweep.png; each rate's own report in OUT/misaligned-R/

Each rate has its own work folder (WORK/misaligned-R), so a stopped sweep resumes where it stopped, and a
rate whose report OUT/misaligned-R/results.json already holds the same config is read, not run again (so a
committed sweep grows by one rate without its work folders). The comparisons are each experiment's own:
paired by seed against ClipCov, Holm-corrected within one rate and budget.
"""
import dataclasses
import json
import logging
import time
from pathlib import Path

from .. import files
from .configs import WHOLE, make_config
from .report import LABELS
from .run import run as run_experiment

log = logging.getLogger("clipcov_fast.experiment")


def folder_name(rate):
    return f"misaligned-{rate:g}"


def run(config="quick", rates=(0.15, 0.3, 0.5), work=None, out="docs/sweep", *, progress=True, command=None,
        **overrides):
    """Run the experiment at each corruption rate; write OUT/sweep.md, sweep.json, sweep.png. Returns the
    sweep dict."""
    if not rates:
        raise ValueError("--rates: give at least one corruption rate")
    cfg = make_config(config, **overrides)  # every rate's config is checked before anything runs
    for rate in rates:
        make_config(cfg, misaligned=rate)
    work, out, t0 = Path(work or f"runs/sweep-{cfg.name}"), Path(out), time.perf_counter()
    rows = []
    for rate in rates:
        results = out / folder_name(rate) / "results.json"
        reused = done_before(results, make_config(cfg, misaligned=rate))
        if reused:
            log.info("misaligned %g: reusing %s (same config)", rate, results)
        else:
            run_experiment(cfg, work / folder_name(rate), out / folder_name(rate), progress=progress,
                           command=command, misaligned=rate)
        rows.append({**sweep_row(rate, results), "reused": reused})
    sweep = {"config": {**dataclasses.asdict(cfg), "misaligned": None}, "rates": list(rates), "command": command,
             "total_seconds": round(time.perf_counter() - t0, 1), "runs": rows}
    write_sweep(sweep, out)
    return sweep


def done_before(results, cfg):
    """Whether the experiment report `results` exists and was made with config `cfg`."""
    try:
        done = json.loads(Path(results).read_text())["config"]
    except (OSError, ValueError, KeyError):
        return False
    return done == json.loads(json.dumps(dataclasses.asdict(cfg)))  # as JSON: tuples read back as lists


def sweep_row(rate, results):
    """One rate's summary from its results.json: top-1 mean/std per (method, budget) as the experiment's
    report summarized it, its comparisons, the pool's noise counts."""
    report = json.loads(Path(results).read_text())
    return {"misaligned": rate, "results": str(results), "pool": report["pool"],
            "seconds": report["total_seconds"],
            "top1": [{"method": s["method"], "budget": s["budget"], "mean": s["top1"][0], "std": s["top1"][1],
                      "n": s["top1"][2]} for s in report["summary"]],
            "comparisons": report["comparisons"]}


def markdown(sweep):
    rates, runs = sweep["rates"], sweep["runs"]
    methods = list(dict.fromkeys(t["method"] for r in runs for t in r["top1"]))
    methods = [m for m in LABELS if m in methods]
    budgets = sorted({t["budget"] for r in runs for t in r["top1"] if t["method"] not in WHOLE})
    cfg = sweep["config"]
    head = "| method | " + " | ".join(f"{r:.0%} misaligned" for r in rates) + " |"
    rule = "|---|" + "---:|" * len(rates)
    lines = [f"# ClipCov against the pool's corruption rate: `{cfg['name']}` config", "",
             f"Written by `clipcov sweep` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
             f"{sweep['total_seconds'] / 60:.1f} min" + (f"; command `{sweep['command']}`." if sweep.get("command")
                                                         else "."),
             "Each rate's experiment took (its own run; one that reused a work folder counts only what it "
             "computed): " + ", ".join(f"{r['misaligned']:.0%} {r['seconds'] / 60:.1f} min"
                                       + (" (report reused)" if r.get("reused") else "") for r in runs) + ".", "",
             f"One experiment per rate (its own pool, proxy labels, subsets and students; seeds "
             f"{', '.join(map(str, cfg['seeds']))}); the rate is the share of the pool's base images captioned "
             "as another class (10% generic captions and 10% near-duplicates at every rate). Each rate's full "
             "report is in its folder misaligned-R/.", ""]
    for b in budgets:
        lines += [f"## Zero-shot top-1 (%) at {b:.0%}, mean ± std over seeds", "", head, rule]
        for m in methods:
            cells = []
            for r in runs:
                t = next((t for t in r["top1"] if t["method"] == m and t["budget"] == (1.0 if m in WHOLE else b)), None)
                cells.append("-" if t is None else f"{100 * t['mean']:.1f} ± {100 * t['std']:.1f}")
            lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
        lines += ["", f"Minus ClipCov (proportional), paired by seed: mean (95% interval), * = resolved (Holm "
                      "within the rate)", "", head, rule]
        for m in methods:
            if m == "clipcov":
                continue
            cells = []
            for r in runs:
                c = next((c for c in r["comparisons"] if c["method"] == m and c["budget"] == b), None)
                cells.append("-" if c is None else _diff(c))
            lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines + ["The plot is sweep.png; the numbers are in sweep.json."]) + "\n"


def _diff(c):
    if c["low"] is None:
        return f"{100 * c['mean']:+.1f}"
    return f"{100 * c['mean']:+.1f} ({100 * c['low']:+.1f}, {100 * c['high']:+.1f}){' *' if c['resolved'] else ''}"


def plot(path, sweep):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sweep["runs"]
    budgets = sorted({t["budget"] for r in runs for t in r["top1"] if t["method"] not in WHOLE})
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4.2), squeeze=False)
    for ax, b in zip(axes[0], budgets):
        for m in LABELS:
            pts = [(r["misaligned"], t) for r in runs for t in r["top1"]
                   if t["method"] == m and t["budget"] == (1.0 if m in WHOLE else b)]
            if pts:
                x = [100 * p[0] for p in pts]
                ax.errorbar(x, [100 * p[1]["mean"] for p in pts], yerr=[100 * p[1]["std"] for p in pts],
                            marker="o", capsize=3, label=LABELS[m], ls="--" if m in WHOLE else "-")
        ax.set(xlabel="misaligned captions in the pool (%)", ylabel="zero-shot top-1 (%)",
               title=f"{b:.0%} subsets (mean ± std over seeds)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    files.save_png(path, fig)


def write_sweep(sweep, out):
    """OUT/sweep.json, sweep.md and sweep.png; returns their paths."""
    return files.save_report(out, "sweep", sweep, markdown, plot)
