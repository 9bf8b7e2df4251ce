"""`clipcov report`: one self-contained HTML page of what a selection kept and dropped, beside the pool it came
from and, with `against`, beside another selection of the same pool.

    selection.py  a subset file and its summary, opened again with their pool (rows, classes, scores, captions,
                  images, the pool's own records)
    aggregate.py  what the page shows, from arrays (counts, histograms, chosen examples, the comparison)
    page.py       the HTML: matplotlib plots and thumbnails embedded, no script, no network
"""
import html
import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ... import files
from . import aggregate, page
from .selection import OpenedSelection, thumbnail

log = logging.getLogger("clipcov_fast.report")
TERMS_MAX_ROWS = 2_000_000  # the selection's own terms are recomputed up to this pool size (they cost a select)
NEGCLIP_MAX_ROWS = 200_000
CLIPCOV_METHODS = ("clipcov", "xcov", "clipcov_released")


def write_report(subset, out, against=None, seed=0):
    """Write the report of SUBSET (as `clipcov select` writes it) to OUT (atomically); returns
    {"out", "sections", "scores" (the names of the score panels), "unreadable" (rows)}."""
    a = OpenedSelection(subset)
    b = OpenedSelection(against) if against is not None else None
    if b is not None and (b.n != a.n or b.describe().split("from ", 1)[1] != a.describe().split("from ", 1)[1]):
        raise ValueError(f"--against: {against} comes from another pool ({b.describe()}) than {subset} "
                         f"({a.describe()})")
    kept = np.zeros(a.n, bool)
    kept[a.indices] = True
    log.info("report: %s", a.describe())
    clip = a.clip_scores()
    scores = {"CLIP score": clip}
    scores.update(_terms(a))
    rank = scores.get("utility", clip)  # which dropped rows are "first dropped"
    unreadable = []
    sections = [("summary", "What was selected", _summary_html(a, b))]
    comp = aggregate.composition(a.labels, a.indices)
    body = f'<img class="plot" alt="composition" src="{page.composition_plot(comp, a.method)}">'
    recs = a.records()
    for name, values in recs.items():
        shares = aggregate.records(values, a.indices)
        body += f"<h3>The pool's own records: {html.escape(name)}</h3>" + page.table(
            ["record", "share of the pool", "share of the subset"],
            [(k, f"{p:.1%}", f"{s:.1%}") for k, (p, s) in shares.items()])
    sections.append(("composition", "Composition", body))
    hists = {name: aggregate.histograms(v, kept) for name, v in scores.items()}
    note = ("" if len(scores) > 1 else f'<p class="note">{html.escape(_terms_note(a))}</p>')
    sections.append(("scores", "Scores, kept vs dropped",
                     f'<img class="plot" alt="scores" src="{page.histogram_plots(hists)}">{note}'))
    body = ""
    for role, cls in tqdm(aggregate.choose_classes(a.labels, a.indices, seed), desc="clipcov report: examples",
                          disable=None, leave=False):
        groups = aggregate.examples(a.labels, a.indices, rank, cls, seed=seed)
        body += f"<h3>Class {cls}: {html.escape(role)} ({int(np.sum(a.labels == cls))} in the pool, " \
                f"{int(np.sum(a.labels[a.indices] == cls))} kept)</h3>"
        for group, rows in groups.items():
            body += f'<div class="group"><b>{html.escape(group)}</b><div class="grid">' + \
                _cards(a, rows, clip, kept, unreadable) + "</div></div>"
    sections.append(("examples", "Examples", body or "<p>(no rows)</p>"))
    if b is not None:
        cmp = aggregate.compare(a.labels, a.indices, b.indices)
        kept_b = np.zeros(a.n, bool)
        kept_b[b.indices] = True
        body = f'<img class="plot" alt="comparison" src="{page.compare_plot(cmp, a.method, b.method)}">'
        body += f"<h3>Kept by {html.escape(a.name)}, dropped by {html.escape(b.name)}</h3><div class='grid'>" + \
            _cards(a, cmp["a_not_b"], clip, kept, unreadable) + "</div>"
        body += f"<h3>Kept by {html.escape(b.name)}, dropped by {html.escape(a.name)}</h3><div class='grid'>" + \
            _cards(a, cmp["b_not_a"], clip, kept_b, unreadable) + "</div>"
        sections.append(("compare", f"{a.method} against {b.method}", body))
    if unreadable:
        sections.append(("unreadable", "Images that did not open",
                         page.table(["row"], [(r,) for r in sorted(set(unreadable))])))
    title = f"clipcov report: {a.name}" + (f" against {b.name}" if b is not None else "")
    files.save_text(out, page.page(title, sections))
    log.info("report: wrote %s (%d sections, %d unreadable images)", out, len(sections), len(set(unreadable)))
    return {"out": str(out), "sections": [s[0] for s in sections], "scores": list(scores),
            "unreadable": sorted(set(unreadable))}


def _cards(sel, rows, clip, kept, unreadable):
    if not rows:
        return "<p>(none)</p>"
    captions, openers, links = sel.captions(rows), sel.images(rows), sel.links(rows)
    out = []
    for r, cap, op, link in zip(rows, captions, openers, links):
        thumb = None if op is None else (thumbnail(op) or b"")
        if thumb == b"":
            unreadable.append(int(r))
        out.append(page.card(int(r), cap, thumb, float(clip[r]), link, "kept" if kept[r] else "dropped"))
    return "".join(out)


def _terms(sel):
    """The selection's own scores per row, when cheap enough: ClipCov's coverage, centre, label and utility;
    NormSim with the selection's target; negCLIPLoss up to NEGCLIP_MAX_ROWS rows."""
    if sel.arrays() is None or sel.n == 0:
        return {}
    p = sel.summary.get("parameters", {})
    if sel.method in ("normsim", "negclip_normsim", "negclip_loss"):
        return _field_scores(sel, p)
    if sel.method not in CLIPCOV_METHODS or sel.n > TERMS_MAX_ROWS:
        return {}
    from ... import api

    weights = {}
    for part in filter(None, (p.get("weights") or "").split(",")):
        key, _, value = part.partition("=")
        weights[key.strip()] = float(value)
    A, B = sel.arrays()
    t = api.terms(A, B, labels=sel.labels, class_emb=sel.class_emb, threshold=float(p.get("threshold") or 0.0),
                  weights=weights or None)
    names = ("coverage", "center", "label", "utility") if sel.class_emb is not None else ("coverage", "center",
                                                                                          "utility")
    return {name: t[name] for name in names}


def _field_scores(sel, p):
    from ... import baselines
    from ..subsets import load_array

    out, (A, B) = {}, sel.arrays()
    if sel.method != "negclip_loss" and p.get("target"):
        where = sel.path.parent
        target = load_array(p["target"] if Path(p["target"]).exists() else where / p["target"], "--target")
        default = float("inf") if sel.method == "negclip_normsim" else 2
        out["NormSim"] = baselines.normsim_scores(A, target=target, p=float(p.get("p") or default))
    if sel.method != "normsim" and sel.n <= NEGCLIP_MAX_ROWS:
        out["negCLIPLoss"] = baselines.negclip_loss_scores(
            A, B, **{k: p[k] for k in ("batch_size", "repeats", "temperature") if p.get(k) is not None},
            seed=int(p.get("seed") or 0))
    return out


def _terms_note(sel):
    if sel.method not in CLIPCOV_METHODS:
        return (f"{sel.method}'s own score is not recomputed here (it is for ClipCov, NormSim and, up to "
                f"{NEGCLIP_MAX_ROWS:,} rows, negCLIPLoss); the CLIP score of every row is shown.")
    return (f"ClipCov's terms are recomputed for pools of up to {TERMS_MAX_ROWS:,} rows held as arrays; this one "
            "is not, so only the CLIP score is shown.")


def _summary_html(a, b):
    rows = [("subset", a.describe()), ("classes", len(np.unique(a.labels)))]
    if b is not None:
        rows.append(("against", b.describe()))
    return page.table(None, rows) + ('<p class="note">Classes are the proxy classes the selection used '
                                          "(its labels, or zero-shot from its class prompts).</p>")
