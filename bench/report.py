"""Turn pytest-benchmark JSONs (make bench) into the table in docs/benchmarks.md and a plot.

    python bench/report.py bench/results/latest.json [LATER.json ...]

A row of a later file (same series, n, method) replaces the earlier one, so that a partial rerun
(pytest -k) can update a full run.

The table goes between the markers in docs/benchmarks.md; the plot to bench/results/scaling.png.
"""
import json
import platform
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def rows(results):
    out = []
    for b in results["benchmarks"]:
        info = b["extra_info"]
        if "method" not in info and "timed_out_after_s" not in info:
            continue
        out.append({"series": info.get("series", "?"), "method": info.get("method", b["params"]["method"]),
                    "n": info.get("n", b["params"].get("n")), "k": info.get("k"), "seconds": info.get("seconds"),
                    "peak_gb": info.get("peak_bytes", 0) / 1e9 or None,
                    "growth_gb": info.get("peak_growth_bytes", 0) / 1e9 or None,
                    "input_gb": info.get("input_fp32_bytes", 0) / 1e9 or None,
                    "timeout": info.get("timed_out_after_s"), "stages": info.get("stages_s")})
    return sorted(out, key=lambda r: (r["series"], r["n"], r["method"]))


def table(rs, machine):
    lines = [f"Machine: {machine}. Command: `make bench` (one fresh process per row, bench/measure.py).", "",
             "| series | n | k | method | seconds | load / terms / greedy s | peak RSS GB | growth GB | fp32 inputs GB |",
             "|---|---:|---:|---|---:|---|---:|---:|---:|"]
    fmt = lambda x, f: "" if x is None else format(x, f)  # noqa: E731
    for r in rs:
        secs = f"> {r['timeout']} (stopped)" if r["timeout"] else fmt(r["seconds"], ".2f")
        st = r["stages"] or {}
        stages = " / ".join(f"{st[key]:.2f}" for key in ("load", "terms", "greedy")) if st else ""
        lines.append(f"| {r['series']} | {r['n']:,} | {fmt(r['k'], ',')} | {r['method']} | {secs} | {stages} | "
                     f"{fmt(r['peak_gb'], '.2f')} | {fmt(r['growth_gb'], '.2f')} | {fmt(r['input_gb'], '.2f')} |")
    return "\n".join(lines)


def plot(rs, path):
    series = sorted({r["series"] for r in rs})
    fig, axes = plt.subplots(2, len(series), figsize=(6 * len(series), 8), squeeze=False)
    for col, name in enumerate(series):
        by_method = defaultdict(list)
        for r in rs:
            if r["series"] == name and r["seconds"] is not None:
                by_method[r["method"]].append(r)
        for method, pts in sorted(by_method.items()):
            pts.sort(key=lambda r: r["n"])
            axes[0, col].plot([p["n"] for p in pts], [p["seconds"] for p in pts], "o-", label=method)
            axes[1, col].plot([p["n"] for p in pts], [p["growth_gb"] or 0 for p in pts], "o-", label=method)
        for row, label in ((0, "seconds"), (1, "peak memory growth (GB)")):
            ax = axes[row, col]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("n (pairs)")
            ax.set_ylabel(label)
            ax.set_title(name)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(*paths):
    merged = {}
    for path in paths:
        results = json.loads(Path(path).read_text())
        merged.update({(r["series"], r["n"], r["method"]): r for r in rows(results)})
    rs = sorted(merged.values(), key=lambda r: (r["series"], r["n"], r["method"]))
    cpu = results.get("machine_info", {}).get("cpu", {}).get("brand_raw", platform.processor())
    machine = f"{cpu}, {results.get('machine_info', {}).get('cpu', {}).get('count', '?')} cores"
    plot(rs, ROOT / "bench" / "results" / "scaling.png")
    doc = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{table(rs, machine)}\n{END}{tail}")
    print(table(rs, machine))


if __name__ == "__main__":
    main(*sys.argv[1:])
