"""The experiment's report: results.json (everything), results.md (tables) and results.png (plot)."""
import os
import platform
import time
from pathlib import Path

import numpy as np

from .. import files
from .configs import FIELD, WHOLE
from .stats import compare

LABELS = {"clipcov": "ClipCov (proportional)", "clipcov_global": "ClipCov (global budget)",
          "clipcov_released": "ClipCov (released greedy)", "clipcov_true_quotas": "ClipCov (true-label classes)",
          "xcov": "xcov", "random": "random", "random_stratified": "stratified random", "clip_score": "CLIP score",
          "clip_score_balanced": "class-balanced CLIP score", "semdedup": "SemDeDup",
          "negclip_loss": "negCLIPLoss", "normsim2": "NormSim-2 (target: fashion-val)",
          "normsim_inf": "NormSim-inf (target: fashion-val)", "negclip_normsim": "negCLIPLoss 30%, then NormSim-inf",
          "image_based_clip_score": "DataComp image-based ∩ CLIP score", "metaclip": "MetaCLIP balancing",
          "full": "full pool",
          "proxy_data": "fashion-proxy (the proxy's data)", "clipcov_recipe": "ClipCov (study's recipe)"}
EXTRA = {"shifted_mean": "Shifted test set: zero-shot top-1, mean of the four shifts",
         "linear_probe": "Linear probe top-1 (fitted on fashion-proxy, scored on test)",
         "synonym_retrieval_p10": "Synonym text-to-image retrieval, precision@10"}
KINDS = ("clean", "misaligned", "generic", "near_duplicate")


def labels_for(report):
    """LABELS, with clipcov_recipe's row naming what the study's recipe changes."""
    r = report.get("recipe")
    if not r:
        return LABELS
    return {**LABELS, "clipcov_recipe": f"ClipCov (study's recipe `{r['name']}`: {r['changes']})"}


def labels_short(method):
    """A method's label for a tick: the study's recipe without its description."""
    return "ClipCov (study's recipe)" if method == "clipcov_recipe" else LABELS.get(method, method)


def summarize(students):
    """{(method, budget): {"top1": (mean, std, n), ... diagnostics averaged over seeds}}."""
    groups = {}
    for s in students:
        groups.setdefault((s["method"], s["budget"]), []).append(s)
    out = {}
    for key, rows in groups.items():
        stats = {}
        for m in ("top1", "top5", "mean_per_class_recall", "shifted_mean", "linear_probe", "synonym_retrieval_p10"):
            if any(r.get(m) is None for r in rows):
                continue
            v = np.array([r[m] for r in rows])
            stats[m] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v))
        stats["fractions"] = {k: float(np.mean([r["fractions"][k] for r in rows])) for k in KINDS}
        stats["distinct_images"] = float(np.mean([r["distinct_images"] for r in rows]))
        stats["class_counts"] = np.mean([r["class_counts"] for r in rows], axis=0).round(1).tolist()  # over seeds
        stats["class_counts_by_seed"] = {r["seed"]: r["class_counts"] for r in rows}
        stats["pairs"] = rows[0]["pairs"]
        out[key] = stats
    return out


def _choice(report):
    c = report.get("choices", {}).get("class_names")
    if not c:
        return ""
    return (f" (chosen on {c['val_images']} fashion-val images, never the test set, by the proxy's zero-shot "
            "top-1: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in c["val_top1"].items()) + ")")


def _pm(stat, scale=100):
    mean, std, n = stat
    return f"{scale * mean:.1f} ± {scale * std:.1f}" if n > 1 else f"{scale * mean:.1f}"


def markdown(report, summary):
    cfg, proxy = report["config"], report["proxy"]
    labels = labels_for(report)
    methods = [m for m in labels if any(k[0] == m for k in summary)]
    budgets = sorted({k[1] for k in summary if k[0] not in WHOLE})
    z = proxy["zero_shot_on_test"]
    lines = [
        f"# Miniature ClipCov experiment: `{cfg['name']}` config",
        "",
        f"Written by `clipcov experiment` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}; "
        f"total {report['total_seconds'] / 60:.1f} min" + (f"; command `{report['command']}`." if report.get("command") else "."),
        "",
        *([f"> {report['note']}", ""] if report.get("note") else []),
        f"- Pool: built-in `fashion-web`, {report['pool']['pairs']} pairs ({cfg['pool']} Fashion-MNIST training "
        f"images with web-like captions: {cfg.get('misaligned', 0.15):.0%} misaligned, 10% generic, plus 10% "
        "near-duplicates of 1% of the images).",
        f"- Proxy: `{proxy['spec']}` ({proxy['model']}), fitted on `{Path(proxy['fitted_on']).name}` "
        f"(Fashion-MNIST training images never in the pool, clean captions): zero-shot top-1 "
        f"{z['top1']:.1%} on {proxy['test_images']} test images. Proxy classes: zero-shot over the 10 "
        "Fashion-MNIST classes with the prompts below.",
        f"- Students: a fresh `{cfg['student']}` per subset, {cfg['steps']} steps of batch {cfg['batch_size']} "
        f"(AdamW, lr {cfg['lr']:g}, wd 0.1, cosine), the same for every subset and the full pool; seeds "
        f"{', '.join(map(str, cfg['seeds']))}" + "".join(
            f" ({float(b):.0%}: seeds {', '.join(map(str, v))}, for time)" for b, v in cfg.get("budget_seeds", {}).items())
        + ".",
        *([f"- `clipcov_recipe`: the recipe `clipcov study` chose on fashion-val, `{report['recipe']['name']}`: "
           f"{report['recipe']['changes']} ({report['recipe']['decision']}; docs/study.md)."] if report.get("recipe") else []),
        f"- Score: zero-shot top-1 (%) on {cfg['test']} Fashion-MNIST test images, mean ± standard deviation over "
        f"seeds (descriptive; comparisons are in the paired table below); class embedding = mean of the prompts {', '.join(repr(t) for t in report['templates'])} over the "
        f"class names {', '.join(report['class_names'])}" + _choice(report) + ".",
        "",
        "## Zero-shot top-1 (%)",
        "",
        "| method | " + " | ".join(f"{b:.0%}" for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for m in methods:
        if m in WHOLE:
            stat = next(v for k, v in summary.items() if k[0] == m)
            lines.append(f"| {labels[m]} ({stat['pairs']} pairs) | " + " | ".join(_pm(stat["top1"]) for _ in budgets) + " |")
        else:
            lines.append(f"| {labels[m]} | " + " | ".join(
                _pm(summary[(m, b)]["top1"]) if (m, b) in summary else "" for b in budgets) + " |")
    for b in budgets:
        lines += ["", f"## What each {b:.0%} subset holds (top-5, per-class recall, and the pool's own records)", "",
                  "| method | top-1 | top-5 | mean per-class recall | pairs | distinct images | clean | misaligned "
                  "| generic | near-dup. | per-class counts (true classes 0-9, mean over seeds; each seed in results.json) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for m in methods:
            key = next((k for k in summary if k[0] == m and (m in WHOLE or k[1] == b)), None)
            if key is None:
                continue
            s = summary[key]
            f = s["fractions"]
            lines.append(f"| {labels[m]} | {_pm(s['top1'])} | {_pm(s['top5'])} | {_pm(s['mean_per_class_recall'])} "
                         f"| {s['pairs']} | {s['distinct_images']:.0f} | " +
                         " | ".join(f"{100 * f[k]:.0f}%" for k in KINDS) +
                         f" | {' '.join(f'{c:g}' for c in s['class_counts'])} |")
    n_seeds = len(cfg["seeds"])
    if all("shifted_mean" in v for v in summary.values()):
        lines += ["", "## Beyond zero-shot top-1 (%, mean ± std over seeds; descriptive)", "",
                  "Shifted: zero-shot top-1 on fashion-mnist-shifted (test images inverted, rotated 90 degrees, "
                  "blurred, as edge-map sketches), mean over the four shifts. Linear probe: logistic regression "
                  "on the student's image features, fitted on fashion-proxy, scored on the test images. Synonyms: "
                  "text-to-image retrieval at class level, precision@10 of captions such as 'jumper' or "
                  "'chelsea boots' over the test images.", "",
                  "| method | budget | shifted | linear probe | synonyms P@10 |", "|---|---:|---:|---:|---:|"]
        for (m, b), v in sorted(summary.items(), key=lambda kv: (kv[0][1], list(labels).index(kv[0][0]))):
            lines.append(f"| {labels[m]} | {'whole' if m in WHOLE else f'{b:.0%}'} | {_pm(v['shifted_mean'])} | "
                         f"{_pm(v['linear_probe'])} | {_pm(v['synonym_retrieval_p10'])} |")
    pl = proxy.get("pool_labels")
    if pl:
        lines += ["", f"Proxy labels of the pool against its true classes: {pl['accuracy']:.1%} right over "
                  f"{pl['pairs']} pairs; recall per true class 0-9: " +
                  " ".join("-" if r is None else f"{100 * r:.0f}" for r in pl["per_class_recall"]) +
                  "; precision per label 0-9: " +
                  " ".join("-" if r is None else f"{100 * r:.0f}" for r in pl["per_class_precision"]) + " (%)."]
    lines += ["", "## Against ClipCov (proportional): paired differences", ""] + verdict(
        report.get("comparisons", []), budgets, n_seeds, labels)
    lines += field_verdict(report, budgets, labels)
    for metric, rows in report.get("comparisons_by_metric", {}).items():
        lines += [f"### {EXTRA[metric]}", "", "The same paired comparison on this score (Holm over the methods, "
                  "within this score).", ""] + _paired_table(rows, budgets, labels)
    lines += [
        "",
        f"Stage times (s): {', '.join(f'{k} {v:g}' for k, v in report['stage_seconds'].items())}. "
        "Per-student numbers are in results.json; the plot is results.png.",
    ]
    if cfg["name"] != "full":
        import dataclasses

        from .configs import CONFIGS
        full = dataclasses.asdict(CONFIGS["full"])
        lines.append(f"The `full` config (not run here) would take about "
                     f"{estimate_seconds(report, full) / 60:.0f} minutes on this machine, extrapolated from "
                     "these stage times (data stages by pool size, students by count and steps x batch).")
    return "\n".join(lines) + "\n"


def estimate_seconds(report, cfg):
    """Run time of config `cfg` (a dict) extrapolated from this run's stage times: data stages scale with
    the pairs they touch, students with their number and steps x batch (train), test images (eval).
    An estimate, not a measurement."""
    mine, times = report["config"], report["stage_seconds"]
    pool, proxy = cfg["pool"] / mine["pool"], cfg["proxy_pairs"] / mine["proxy_pairs"]
    work = cfg["steps"] * cfg["batch_size"] / (mine["steps"] * mine["batch_size"])
    students = [s["train_s"] * work + s["eval_s"] * cfg["test"] / mine["test"]
                for s in report["students"]]
    whole = sum(m in WHOLE for m in cfg["methods"])
    per_budget = {float(b): len(v) for b, v in cfg.get("budget_seeds", {}).items()}
    n = len(cfg["seeds"]) * whole + sum(per_budget.get(b, len(cfg["seeds"])) for b in cfg["budgets"]) * (
        len(cfg["methods"]) - whole)
    per_student = float(np.mean(students)) if students else 0.0
    return (times.get("pools", 0) * pool + times.get("proxy", 0) * proxy + times.get("embed+labels", 0) * pool
            + times.get("proxy-eval", 0) * cfg["proxy_eval"] / mine["proxy_eval"]
            + n * per_student / cfg["jobs"])


def verdict(comparisons, budgets, n_seeds, labels=LABELS):
    """The report's statements: one per method and budget, each read off its paired interval against
    ClipCov (proportional) and Holm's correction; nothing else is said."""
    out = ["Each row: the method's zero-shot top-1 minus ClipCov (proportional)'s, paired by seed (the same "
           "seed gives the same student initialization), in points: mean, 95% paired-t interval, and Holm's "
           "adjusted p over the methods of that budget. *Resolved* means Holm p < 0.05; an unresolved "
           "difference says only that these seeds cannot tell the two apart." +
           (" With 2 seeds a paired-t interval has 1 degree of freedom (critical value 12.7), so almost "
            "nothing resolves." if n_seeds == 2 else ""), ""]
    return out + _paired_table(comparisons, budgets, labels)


def field_verdict(report, budgets, labels=LABELS):
    """The section against the best field selector of each budget: which one it is (by fashion-val top-1),
    how it stands against ClipCov (proportional) on test, and every method's paired difference from it."""
    best = {r["budget"]: r["method"] for r in report.get("best_field", [])}
    if not best:
        return []
    vs_clipcov = {(c["method"], c["budget"]): c for c in report.get("comparisons", [])}
    out = ["", "## Against the best field selector of each budget (chosen on fashion-val): paired differences", "",
           "The field selector with the highest mean zero-shot top-1 on fashion-val images (never the test set) is "
           "the reference of its budget; the rows below are test top-1 differences from it, paired by seed, with "
           "Holm's correction over the methods of that budget.", ""]
    for b in budgets:
        if b not in best:
            continue
        m, c = best[b], vs_clipcov.get((best[b], b))
        said = "" if c is None or c["low"] is None else (
            f": {100 * c['mean']:+.1f} points on test against ClipCov (proportional), 95% paired interval "
            f"{100 * c['low']:+.1f} to {100 * c['high']:+.1f}, " +
            ((f"resolved {'above' if c['mean'] > 0 else 'below'}") if c["resolved"] else "not resolved"))
        out.append(f"- At {b:.0%} the best field selector on fashion-val is {labels.get(m, m)}{said}.")
    return out + [""] + _paired_table(report.get("comparisons_to_best_field", []), budgets, labels)


def headline(report):
    """A few lines for the terminal at the end of a run: per budget, each method's top-1 (mean ± standard
    deviation over seeds) and its paired difference from ClipCov (proportional), best first."""
    summary = summarize(report["students"])
    by_key = {(c["method"], c["budget"]): c for c in compare(report["students"])}
    budgets = sorted({k[1] for k in summary if k[0] not in WHOLE})
    best = best_field(report["students"])
    out = []
    for b in budgets:
        rows = sorted(((m, s) for (m, bb), s in summary.items() if bb == b or m in WHOLE),  # the whole pools: once
                      key=lambda r: -r[1]["top1"][0])
        width = max(len(labels_short(m)) for m, _ in rows)
        out += [f"{b:.0%} subsets: zero-shot top-1 (%), mean ± sd over seeds; minus ClipCov (proportional), "
                "95% paired interval, resolved by Holm p < 0.05:"]
        for m, s in rows:
            c = by_key.get((m, b))
            diff = "  (the reference)" if m == "clipcov" else "" if c is None or c["low"] is None else (
                f"  {100 * c['mean']:+5.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}] "
                + (("resolved above" if c["mean"] > 0 else "resolved below") if c["resolved"] else "not resolved"))
            out.append(f"  {labels_short(m):<{width}}  {100 * s['top1'][0]:5.1f} ± {100 * s['top1'][1]:3.1f}{diff}")
        if b in best:
            out.append(f"  best field selector on fashion-val: {labels_short(best[b])}")
    return "\n".join(out)


def _paired_table(comparisons, budgets, labels=LABELS):
    out = []
    for b in budgets:
        rows = [c for c in comparisons if c["budget"] == b]
        if not rows:
            continue
        ref = labels.get(rows[0].get("reference"), "ClipCov")
        out += [f"At {b:.0%}:", "", f"| method | minus {ref} (points) | 95% interval | Holm p | resolved? | seeds |",
                "|---|---:|---:|---:|---|---:|"]
        for c in sorted(rows, key=lambda c: -c["mean"]):
            ci = "" if c["low"] is None else f"{100 * c['low']:+.1f} to {100 * c['high']:+.1f}"
            word = ("yes: above" if c["mean"] > 0 else "yes: below") if c["resolved"] else "no"
            out.append(f"| {labels.get(c['method'], c['method'])} | {100 * c['mean']:+.1f} | {ci} | "
                       f"{c['p_holm']:.3g} | {word} | {c['n']} |")
        out.append("")
    return out


def plot(path, summary):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({k[1] for k in summary if k[0] not in WHOLE})
    seeds = sorted({s["top1"][2] for k, s in summary.items() if k[0] not in WHOLE})
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    ax = axes[0]
    present = [x for x in LABELS if x not in WHOLE and any(k[0] == x for k in summary)]
    colors = plt.get_cmap("tab10" if len(present) <= 10 else "tab20").colors
    for m in present:
        pts = [(b, summary[(m, b)]["top1"]) for b in budgets if (m, b) in summary]
        # methods side by side around each budget, so equal scores stay visible
        dodge = 1.03 ** (present.index(m) - (len(present) - 1) / 2)  # log axis: the same shift at every budget
        ax.errorbar([100 * b * dodge for b, _ in pts], [100 * s[0] for _, s in pts], yerr=[100 * s[1] for _, s in pts],
                    marker="o", capsize=3, label=LABELS[m], color=colors[present.index(m) % len(colors)])
    full = next((v for k, v in summary.items() if k[0] == "full"), None)
    if full:
        ax.axhline(100 * full["top1"][0], color="k", ls="--", lw=1, label="full pool")
    ax.set_xscale("log")
    if len(budgets) == 1:  # one budget: room for the dodged points around its one tick
        ax.set_xlim(100 * budgets[0] / 1.35, 100 * budgets[0] * 1.35)
    scale = "" if len(budgets) == 1 else ", log scale"
    seed_text = f"{seeds[0]} seeds" if len(seeds) == 1 else f"{min(seeds)}-{max(seeds)} seeds"
    ax.set(title=f"student zero-shot top-1 vs subset size\n(points: mean; bars: ±1 standard deviation over "
                 f"{seed_text})", xlabel=f"subset size (% of the pool{scale})",
           ylabel="top-1 on Fashion-MNIST test (%)")
    ax.set_xticks([100 * b for b in budgets], [f"{b:.0%}" for b in budgets])
    ax.minorticks_off()
    ax.legend(fontsize=7)
    ax = axes[1]
    b = budgets[len(budgets) // 2]
    keys = [k for m in LABELS for k in summary if k[0] == m and (m in WHOLE or k[1] == b)]
    bottom = np.zeros(len(keys))
    for kind in KINDS:
        share = np.array([summary[k]["fractions"][kind] for k in keys])
        ax.bar([labels_short(k[0]) for k in keys], share, bottom=bottom, label=kind)
        bottom += share
    ax.set(title=f"what each {b:.0%} subset holds (mean over seeds)", ylabel="share of pairs", ylim=(0, 1.2))
    ax.tick_params(axis="x", labelsize=7, labelrotation=40)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(fontsize=8, ncol=4, loc="upper center")
    fig.tight_layout()
    files.save_png(path, fig)


def best_field(students):
    """{budget: the field selector (configs.FIELD) of the highest mean fashion-val top-1 at that budget}: the
    second reference, chosen without the test set (ties: FIELD's order)."""
    val = {}
    for s in students:
        if s["method"] in FIELD and s.get("val_top1") is not None:
            val.setdefault(s["budget"], {}).setdefault(s["method"], []).append(s["val_top1"])
    return {b: max(by, key=lambda m: (np.mean(by[m]), -FIELD.index(m))) for b, by in sorted(val.items())}


def field_comparisons(students, best):
    """Every method's paired difference from the best field selector of its budget (`best`: best_field's
    dict), with Holm's correction over the methods of that budget; each row names its reference."""
    out = []
    for b, ref in best.items():
        mine = [s for s in students if s["budget"] in (b, 1.0)]
        out += [dict(c, reference=ref) for c in compare(mine, reference=ref) if c["budget"] == b]
    return out


def write_report(report, out):
    """OUT/results.json, results.md and results.png; returns their paths."""
    out = Path(out)
    summary = summarize(report["students"])
    comparisons = compare(report["students"])
    by_metric = {m: compare(report["students"], metric=m) for m in EXTRA
                 if report["students"] and all(st.get(m) is not None for st in report["students"])}
    best = best_field(report["students"])
    report = dict(report, comparisons=comparisons, comparisons_by_metric=by_metric,
                  best_field=[{"budget": b, "method": m} for b, m in best.items()],
                  comparisons_to_best_field=field_comparisons(report["students"], best), summary=[{"method": m, "budget": b, **v} for (m, b), v in sorted(summary.items())])
    return files.save_report(out, "results", report, lambda r: markdown(r, summary),
                             lambda path, _: plot(path, summary))
