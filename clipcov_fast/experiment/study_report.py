"""The study's report: study.json (everything; the experiment's `clipcov_recipe` reads its `chosen`),
study.md (the paired table and the decision) and study.png (candidate minus the paper's recipe on val)."""
import time

import numpy as np

from .. import files

KINDS = ("clean", "misaligned", "generic", "near_duplicate")


def _by_candidate(study):
    out = {}
    for s in study["students"]:
        out.setdefault(s["method"], []).append(s["val_top1"])
    return out


def markdown(study):
    cfg, cands = study["config"], study["candidates"]
    scores, comps = _by_candidate(study), {c["method"]: c for c in study["comparisons"]}
    base = cands[0]["name"]
    seeds = ", ".join(map(str, cfg["seeds"]))
    lines = [
        f"# Beyond the paper: which ClipCov recipe, chosen on fashion-val (`{cfg['name']}` config)",
        "",
        f"Written by `clipcov study` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {study['machine']}; "
        f"total {study['total_seconds'] / 60:.1f} min (wall)" +
        (f"; command `{study['command']}`." if study.get("command") else "."),
        "",
        f"- Pool: `fashion-web`, {study['pool_pairs']} pairs (the experiment's `{cfg['name']}` pool); proxy "
        f"`{cfg['proxy']}` fitted on fashion-proxy; class names {', '.join(study['class_names'])}. The whole pool "
        "holds " + ", ".join(f"{100 * study['pool_make_up']['fractions'][k]:.1f}% {k.replace('_', '-')}" for k in KINDS[1:]) +
        " pairs (a random subset keeps about as many).",
        f"- Every candidate selects {study['subset_pairs']} pairs ({study['budget']:.0%}); a fresh "
        f"`{cfg['student']}` per subset and seed ({cfg['steps']} steps of batch {cfg['batch_size']}), seeds "
        f"{seeds} for every candidate (the same seed, the same initialization: paired).",
        f"- Score: zero-shot top-1 on {study['val_images']} **fashion-val** images (Fashion-MNIST training images "
        "45,000-49,999, in neither the pool nor fashion-proxy). The test set plays no part in the choice.",
        "- Each difference: candidate minus the paper's recipe, by seed; 95% paired-t interval; Holm's "
        f"correction over the {len(cands) - 1} candidates. *Resolved*: Holm p < 0.05.",
        "",
        "## Candidates on fashion-val",
        "",
        "| candidate | what it changes | val top-1 (%, mean ± std) | minus paper (points) | 95% interval | Holm p "
        "| resolved? | near-dup. | misaligned | generic | distinct images |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for c in cands:
        v = np.array(scores.get(c["name"], []))
        ms = f"{100 * v.mean():.1f} ± {100 * v.std(ddof=1):.1f}" if len(v) > 1 else (f"{100 * v.mean():.1f}" if len(v) else "")
        f = c["fractions"]
        make_up = f"| {100 * f['near_duplicate']:.1f}% | {100 * f['misaligned']:.1f}% | {100 * f['generic']:.1f}% | {c['distinct_images']} |"
        if c["name"] == base:
            lines.append(f"| **{base}** (the paper's) | {c['changes']} | {ms} | | | | baseline " + make_up)
            continue
        d = comps.get(c["name"])
        if d is None:
            lines.append(f"| {c['name']} | {c['changes']} | {ms} | | | | not compared " + make_up)
            continue
        ci = "" if d["low"] is None else f"{100 * d['low']:+.1f} to {100 * d['high']:+.1f}"
        word = ("yes: above" if d["mean"] > 0 else "yes: below") if d["resolved"] else "no"
        lines.append(f"| {c['name']} | {c['changes']} | {ms} | {100 * d['mean']:+.1f} | {ci} | {d['p_holm']:.3g} "
                     f"| {word} " + make_up)
    field_rows = study.get("field_rows") or []
    if field_rows:
        lines += ["", "## The field's selectors on fashion-val (the reference a winning recipe must beat too)", "",
                  "| selector | val top-1 (%, mean ± std) | by seed |", "|---|---:|---|"]
        for name in field_rows:
            v = np.array(scores.get(name, []))
            lines.append(f"| {name} | {100 * v.mean():.1f} ± {100 * (v.std(ddof=1) if len(v) > 1 else 0):.1f} | "
                         + " ".join(f"{100 * x:.1f}" for x in v) + " |")
    dec, chosen = study["decision"], study["chosen"]
    lines += ["", "## Decision", "",
              "Rule (`study.decide`): the candidate with the best mean val top-1 is chosen only if its difference "
              "from the paper's recipe is resolved above 0 (95% interval above 0 and Holm p < 0.05); otherwise "
              "the paper's recipe stays.", "",
              f"**Chosen: `{chosen['name']}`**, which changes {chosen['changes']}. "
              f"{dec['reason'][0].upper() + dec['reason'][1:]}.",
              "", "The experiment's method `clipcov_recipe` applies this recipe (it reads `chosen` from study.json).",
              ""]
    a = study.get("against_best_field")
    if a:
        ci = "" if a["low"] is None else f", 95% paired interval {100 * a['low']:+.1f} to {100 * a['high']:+.1f}"
        lines += [f"Against the best field selector on fashion-val, `{a['field']}`: `{chosen['name']}` minus it is "
                  f"{100 * a['mean']:+.1f} points{ci} (p {a['p']:.3g}, one comparison): "
                  + ("it beats the field's best." if a["beats"] else
                     "it does **not** beat the field's best (the interval is not above 0)."), ""]
    t = study.get("test")
    if t:
        by = t["top1_by_seed"]
        lines += ["## The chosen recipe on the test set (reported after the choice, not used for it)", "",
                  f"Zero-shot top-1 on {study['test_images']} Fashion-MNIST test images, the same checkpoints:", "",
                  "| row | what it changes | test top-1 (%, mean ± std) | by seed |", "|---|---|---:|---|"]
        for name in [chosen["name"]] + [n for n in by if n != chosen["name"]]:
            v = np.array(list(by[name].values()))
            row = "clipcov_recipe" if name == chosen["name"] else name
            what = chosen["changes"] if name == chosen["name"] else "nothing (the paper's recipe)"
            lines.append(f"| {row} (`{name}`) | {what} | {100 * v.mean():.1f} ± {100 * v.std(ddof=1) if len(v) > 1 else 0:.1f} "
                         f"| {' '.join(f'{100 * x:.1f}' for x in by[name].values())} |")
        p = t.get("chosen_minus_paper")
        if p:
            ci = "" if p["low"] is None else f", 95% interval {100 * p['low']:+.1f} to {100 * p['high']:+.1f}"
            lines += ["", f"clipcov_recipe minus the paper's recipe on test: {100 * p['mean']:+.1f} points{ci} "
                      f"(p {p['p']:.3g}, one comparison)."]
        else:
            lines += ["", "clipcov_recipe is the paper's recipe here, so its test row is ClipCov's (proportional) "
                      "own: the same subset and the same students."]
        lines.append("")
    lines += ["## Not done", ""] + [f"- {x}" for x in study["not_done"]] + [
        "", f"Stage times (s): {', '.join(f'{k} {v:g}' for k, v in study['stage_seconds'].items())}. "
        "Per-student val scores and per-candidate subset make-up are in study.json; the plot is study.png.", ""]
    return "\n".join(lines)


def plot(path, study):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [c["name"] for c in study["candidates"]]
    rows = sorted(study["comparisons"], key=lambda c: -order.index(c["method"]))  # top to bottom as in study.md
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.6))
    for i, c in enumerate(rows):
        lo = c["mean"] if c["low"] is None else c["low"]
        hi = c["mean"] if c["high"] is None else c["high"]
        colour = "tab:green" if c["resolved"] and c["mean"] > 0 else "tab:red" if c["resolved"] else "tab:gray"
        ax.errorbar([100 * c["mean"]], [i], xerr=[[100 * (c["mean"] - lo)], [100 * (hi - c["mean"])]], fmt="o",
                    color=colour, capsize=3)
    ax.axvline(0, color="k", lw=1)
    ax.set_yticks(range(len(rows)), [c["method"] for c in rows])
    ax.set(xlabel="val zero-shot top-1 minus the paper's recipe (points; 95% paired-t interval)",
           title=f"candidate minus the paper's ClipCov on fashion-val, {len(study['config']['seeds'])} seeds\n"
                 "green/red: resolved above/below (Holm), gray: not resolved")
    fig.tight_layout()
    files.save_png(path, fig)


def write_study(study, out):
    """OUT/study.json, study.md and study.png; returns their paths."""
    return files.save_report(out, "study", study, markdown, plot)
