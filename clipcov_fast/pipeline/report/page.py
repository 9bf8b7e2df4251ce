"""The report as one self-contained HTML page: matplotlib plots and thumbnails embedded as base64 images, no
script, no stylesheet or font from elsewhere, so that the file opens anywhere without a network."""
import base64
import html
import io
import time

import numpy as np

CSS = """
body { font-family: sans-serif; margin: 24px auto; max-width: 1180px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 15px; margin: 18px 0 6px; } p.note { color: #555; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ddd; padding: 3px 8px; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; } .group { margin: 4px 0 10px; }
.card { width: 132px; font-size: 11px; border: 1px solid #ddd; padding: 4px; background: #fafafa; }
.card img, .card .none { width: 96px; height: 96px; display: block; margin: 0 auto 4px; object-fit: contain; }
.card .none { background: #e4e4e4; color: #777; text-align: center; line-height: 96px; font-size: 10px; }
.cap { overflow-wrap: anywhere; max-height: 4.2em; overflow: hidden; } .kept { color: #1a7f37; }
.dropped { color: #b42318; } img.plot { max-width: 100%; }
"""


def png(fig):
    """A matplotlib figure as a data URI (PNG), the figure closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def figure(*shape, size=(11, 3.6)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*shape, figsize=size)


def composition_plot(comp, name):
    fig, ax = figure(1, 2 if comp["truncated"] else 1, size=(11, 3.8))
    ax0 = ax[0] if comp["truncated"] else ax
    x = np.arange(len(comp["classes"]))
    ax0.bar(x - 0.2, comp["pool"], 0.4, label="pool", color="#9aa5b1")
    ax0.bar(x + 0.2, comp["kept"], 0.4, label=f"kept by {name}", color="#1f77b4")
    ax0.set_xticks(x, [str(c) for c in comp["classes"]], rotation=90 if len(x) > 20 else 0, fontsize=7)
    ax0.set(xlabel="proxy class" + (" (the 20 largest, then the 20 smallest)" if comp["truncated"] else ""),
            ylabel="pairs", title=f"pool vs kept per class ({comp['all_classes']} classes)")
    if comp["truncated"]:
        ax0.axvline(len(x) / 2 - 0.5, color="k", lw=0.8, ls=":")
        ax[1].hist(comp["kept_fraction"], bins=30, color="#1f77b4")
        ax[1].set(xlabel="kept fraction of a class", ylabel="classes", title="kept fraction, every class")
    ax0.legend(fontsize=8)
    return png(fig)


def histogram_plots(hists):
    """One small panel per score: kept and dropped rows' histograms (density), on shared edges."""
    fig, axes = figure(1, len(hists), size=(3.7 * len(hists), 3.0))
    axes = np.atleast_1d(axes)
    for ax, (name, h) in zip(axes, hists.items()):
        centers = 0.5 * (h["edges"][1:] + h["edges"][:-1])
        width = h["edges"][1] - h["edges"][0]
        for key, color in (("dropped", "#d62728"), ("kept", "#2ca02c")):
            total = max(1, h[key].sum())
            ax.bar(centers, h[key] / total / width, width, alpha=0.55, color=color, label=f"{key} ({h[key].sum()})")
        ax.set(title=name, xlabel="score", ylabel="density")
        ax.legend(fontsize=7)
    return png(fig)


def compare_plot(cmp, name_a, name_b):
    fig, axes = figure(1, 2, size=(11, 3.6))
    axes[0].bar(["both", f"only {name_a}", f"only {name_b}"], [cmp["both"], cmp["only_a"], cmp["only_b"]],
                color=["#555", "#1f77b4", "#ff7f0e"])
    axes[0].set(title="overlap", ylabel="pairs")
    axes[0].tick_params(axis="x", labelsize=7)
    order = np.argsort(-cmp["pool"], kind="stable")[:40]
    diff = (cmp["kept_a"] - cmp["kept_b"])[order]
    axes[1].bar(np.arange(len(order)), diff, color=np.where(diff >= 0, "#1f77b4", "#ff7f0e"))
    axes[1].set_xticks(np.arange(len(order)), [str(c) for c in cmp["classes"][order]], fontsize=7,
                       rotation=90 if len(order) > 20 else 0)
    axes[1].axhline(0, color="k", lw=0.6)
    axes[1].set(title=f"kept by {name_a} minus kept by {name_b}, per class (largest classes)", ylabel="pairs")
    return png(fig)


def card(row, caption, thumb, score, link, state):
    """One example: thumbnail (or a placeholder: no image on disk, or unreadable), caption, CLIP score, row."""
    if thumb is None:
        pic = '<div class="none">no image</div>'
    elif thumb == b"":
        pic = '<div class="none">unreadable</div>'
    else:
        pic = f'<img alt="row {row}" src="data:image/jpeg;base64,{base64.b64encode(thumb).decode()}">'
    cap = "(no caption)" if caption is None else html.escape(str(caption))
    if link:
        cap = f'<a href="{html.escape(str(link), quote=True)}">{cap}</a>'
    return (f'<div class="card">{pic}<div class="cap">{cap}</div><div class="{state}">row {row} · '
            f'{state} · CLIP {score:.3f}</div></div>')


def page(title, sections):
    """sections: [(id, heading, body html)]."""
    body = "\n".join(f'<section id="{sid}"><h2>{html.escape(head)}</h2>\n{content}\n</section>'
                     for sid, head, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f'<p class="note">Written by clipcov report on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}. '
            f"The page stands alone: its plots and thumbnails are inside it.</p>\n{body}\n</body></html>\n")


def table(header, rows):
    """An HTML table; header None: no header row."""
    head = "" if header is None else "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"
