"""`clipcov report`: the aggregation against hand-computed cases, the page on an embedding folder's, a DataComp
pool's and a uid file's selection, bad input, and the page in a real browser (headless Chromium)."""
import base64
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from clipcov_fast import cli
from clipcov_fast.pipeline.report import aggregate
from conftest import make_pool
from pipeline_util import image

# --- the aggregation -------------------------------------------------------------------------------------------

LABELS = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2])  # classes of 4, 2 and 6 rows
PICKS = np.array([6, 0, 7, 4, 1])  # pick order: class 2, 0, 2, 1, 0


def test_counts_and_composition():
    classes, pool, kept = aggregate.counts(LABELS, PICKS)
    assert classes.tolist() == [0, 1, 2] and pool.tolist() == [4, 2, 6] and kept.tolist() == [2, 1, 2]
    comp = aggregate.composition(LABELS, PICKS)
    assert comp["classes"].tolist() == [2, 0, 1] and not comp["truncated"]  # largest first
    assert np.allclose(comp["kept_fraction"], [0.5, 0.5, 1 / 3])
    many = np.repeat(np.arange(50), np.arange(1, 51))  # 50 classes of 1..50 rows
    comp = aggregate.composition(many, np.arange(100), top=20)
    assert comp["truncated"] and comp["all_classes"] == 50
    assert comp["classes"].tolist() == list(range(49, 29, -1)) + list(range(19, -1, -1))


def test_histograms_split_kept_and_dropped():
    scores = np.r_[np.arange(9) / 8, np.nan]  # 0, 1/8, ..., 1: exact edges at quarters
    kept = np.zeros(10, bool)
    kept[[7, 8]] = True
    h = aggregate.histograms(scores, kept, bins=4)
    assert h["edges"].tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert h["kept"].tolist() == [0, 0, 0, 2] and h["dropped"].tolist() == [2, 2, 2, 1]  # the NaN left out


def test_classes_and_examples_chosen():
    """Kept fractions: class 0 2/4, class 1 1/2, class 2 2/6. The largest is 2; the most cut of the others is a
    tie at 1/2, to the larger class, 0; the random one is what is left, 1."""
    assert aggregate.choose_classes(LABELS, PICKS, seed=0) == [
        ("the largest class", 2), ("the most cut class", 0), ("a random class", 1)]
    rank = np.arange(12, dtype=float)  # the larger row, the better
    ex = aggregate.examples(LABELS, PICKS, rank, 2, per=1, seed=3)
    assert ex["top kept"] == [6] and ex["last kept"] == [7]
    assert ex["first dropped"] == [11]  # dropped members of class 2: 8, 9, 10, 11; best rank 11
    assert len(ex["random dropped"]) == 1 and ex["random dropped"][0] in (8, 9, 10, 11)
    ex = aggregate.examples(LABELS, PICKS, rank, 0, per=4)
    assert ex["top kept"] == [0, 1] and ex["last kept"] == []  # no overlap with the top group
    assert ex["first dropped"] == [3, 2]


def test_compare_two_selections():
    cmp = aggregate.compare(LABELS, PICKS, np.array([6, 8, 0, 11]))
    assert (cmp["both"], cmp["only_a"], cmp["only_b"]) == (2, 3, 2)
    assert cmp["kept_a"].tolist() == [2, 1, 2] and cmp["kept_b"].tolist() == [1, 0, 3]
    assert cmp["a_not_b"] == [7, 4, 1] and cmp["b_not_a"] == [8, 11]


def test_records_shares():
    noise = np.array(["clean"] * 6 + ["misaligned"] * 4 + ["generic"] * 2)
    assert aggregate.records(noise, np.array([0, 1, 6])) == {
        "clean": (0.5, pytest.approx(2 / 3)), "generic": (pytest.approx(1 / 6), 0.0),
        "misaligned": (pytest.approx(1 / 3), pytest.approx(1 / 3))}


# --- pages ------------------------------------------------------------------------------------------------------

N, D = 120, 8


def emb_folder(root, bad_row=None):
    """A built-in-like pool: images on disk, pairs.tsv with label and noise, and its embedding folder."""
    A, B, y = make_pool(N, D, classes=4, seed=2)
    (root / "images").mkdir(parents=True)
    lines = ["filepath\ttitle\tlabel\tnoise\tsource"]
    for i in range(N):
        image(i, size=(28, 28)).save(root / "images" / f"{i}.png")
        lines.append(f"images/{i}.png\tcaption {i}\t{y[i]}\t{'misaligned' if i % 5 == 0 else 'clean'}\ttest")
    if bad_row is not None:
        (root / "images" / f"{bad_row}.png").write_bytes(b"not a png")
    (root / "pairs.tsv").write_text("\n".join(lines) + "\n")
    emb = root / "emb"
    emb.mkdir()
    np.save(emb / "img.npy", A.astype(np.float16))
    np.save(emb / "txt.npy", B.astype(np.float16))
    np.save(emb / "labels.npy", y)
    np.save(emb / "rows.npy", np.arange(N))
    (emb / "manifest.json").write_text(json.dumps({"data": {"kind": "table", "path": str(root / "pairs.tsv"),
                                                            "img_key": "filepath", "caption_key": "title",
                                                            "sep": "\t"}}))
    return emb


def images_in(page):
    """Every embedded image of a page, decoded (a broken one raises)."""
    out = []
    for kind, data in re.findall(r'src="data:image/(png|jpeg);base64,([^"]+)"', page):
        im = Image.open(io.BytesIO(base64.b64decode(data)))
        im.load()
        out.append((kind, im.size))
    return out


def select(*argv):
    assert cli.main(["select", *map(str, argv)]) == 0


@pytest.fixture(scope="module")
def selections(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    emb = emb_folder(root / "pool", bad_row=None)
    select("--emb", emb, "--k", "20%", "--out", root / "cc.tsv")
    select("--emb", emb, "--k", "20%", "--method", "clip_score", "--out", root / "cs.tsv")
    return root


def test_report_of_an_embedding_folders_selection_against_another(selections, tmp_path):
    out = tmp_path / "r.html"
    assert cli.main(["report", str(selections / "cc.tsv"), "--against", str(selections / "cs.tsv"), "--out",
                     str(out)]) == 0
    html = out.read_text()
    for section in ("summary", "composition", "scores", "examples", "compare"):
        assert f'<section id="{section}">' in html
    pics = images_in(html)
    thumbs = [p for p in pics if p[0] == "jpeg"]
    assert len([p for p in pics if p[0] == "png"]) == 3  # composition, scores, comparison plots
    assert len(thumbs) >= 24 and all(max(size) <= 96 for _, size in thumbs)
    assert "own records: noise" in html and "<td>misaligned</td>" in html
    assert "<script" not in html and "http" not in html.split("</style>")[0]  # no script, nothing fetched
    cc = np.load(selections / "cc.npy")
    assert f"k = {len(cc)} of n = {N}" in html
    kept_rows = {int(r) for r in re.findall(r"row (\d+) · kept", html)}
    assert kept_rows <= set(cc.tolist()) | set(np.load(selections / "cs.npy").tolist())


def test_an_unreadable_image_is_a_placeholder_and_listed(tmp_path):
    emb = emb_folder(tmp_path / "pool")
    select("--emb", emb, "--k", "20%", "--out", tmp_path / "s.tsv")
    picks, labels = np.load(tmp_path / "s.npy"), np.load(emb / "labels.npy")
    largest = aggregate.choose_classes(labels, picks)[0][1]
    row = int(picks[labels[picks] == largest][0])  # the first example the page shows
    (tmp_path / "pool" / "images" / f"{row}.png").write_bytes(b"not a png")
    out = tmp_path / "r.html"
    assert cli.main(["report", str(tmp_path / "s.tsv"), "--out", str(out)]) == 0
    html = out.read_text()
    assert '<div class="none">unreadable</div>' in html
    assert '<section id="unreadable">' in html and f"<td>{row}</td>" in html
    images_in(html)  # the rest decode


def test_report_of_a_datacomp_pools_selection_shows_captions_and_links(tmp_path):
    pytest.importorskip("pyarrow")
    from scale_util import write_datacomp

    A, B, y = make_pool(300, D, classes=3, seed=5)
    write_datacomp(tmp_path / "dc", A, B, parts=2)
    np.save(tmp_path / "labels.npy", y)
    select("--datacomp", tmp_path / "dc", "--labels", tmp_path / "labels.npy", "--k", "10%", "--out", tmp_path / "a.npy")
    select("--datacomp", tmp_path / "dc", "--labels", tmp_path / "labels.npy", "--k", "10%", "--method", "clip_score",
           "--format", "datacomp", "--out", tmp_path / "uids.npy")
    for argv in ([str(tmp_path / "a.npy")], [str(tmp_path / "a.npy"), "--against", str(tmp_path / "uids.npy")]):
        out = tmp_path / "r.html"
        assert cli.main(["report", *argv, "--out", str(out)]) == 0
        html = out.read_text()
        assert "no image" in html and re.search(r'<a href="http://x/\d+\.jpg">caption \d+</a>', html)
        assert all(kind == "png" for kind, _ in images_in(html))  # plots only: no thumbnails
    assert '<section id="compare">' in html


def test_the_scores_shown_are_the_selections_own(selections, tmp_path):
    from clipcov_fast.pipeline.report import write_report

    got = write_report(selections / "cc.tsv", tmp_path / "a.html")
    assert got["scores"] == ["CLIP score", "coverage", "center", "utility"]
    emb = selections / "pool" / "emb"
    np.save(emb / "class_emb.npy", np.random.default_rng(0).normal(size=(4, D)))  # the label term joins in
    select("--emb", emb, "--k", "10%", "--out", tmp_path / "withlabel.npy")
    assert write_report(tmp_path / "withlabel.npy", tmp_path / "b.html")["scores"][-2:] == ["label", "utility"]
    (emb / "class_emb.npy").unlink()
    np.save(tmp_path / "target.npy", np.load(emb / "img.npy")[:10])
    for method, extra, want in (("normsim", ["--target", tmp_path / "target.npy"], ["CLIP score", "NormSim"]),
                                ("negclip_loss", [], ["CLIP score", "negCLIPLoss"]), ("random", [], ["CLIP score"])):
        select("--emb", emb, "--k", "10%", "--method", method, *extra, "--out", tmp_path / f"{method}.npy")
        assert write_report(tmp_path / f"{method}.npy", tmp_path / "c.html")["scores"] == want


def test_bad_input_is_named(selections, tmp_path, capsys):
    other = emb_folder(tmp_path / "other")
    np.save(other / "img.npy", np.load(other / "img.npy")[:100])
    np.save(other / "txt.npy", np.load(other / "txt.npy")[:100])
    np.save(other / "rows.npy", np.arange(100))
    np.save(other / "labels.npy", np.load(other / "labels.npy")[:100])
    select("--emb", other, "--k", "10", "--out", tmp_path / "o.npy")
    cases = [
        ([str(selections / "cc.tsv"), "--against", str(tmp_path / "o.npy")], "comes from another pool"),
        ([str(tmp_path / "nothing.npy")], "no summary nothing.json beside it"),
    ]
    shutil.copy(selections / "cc.npy", tmp_path / "lost.npy")
    cases.append(([str(tmp_path / "lost.npy")], "no summary lost.json"))
    summary = json.loads((selections / "cc.json").read_text())
    summary["n"] = 99
    (tmp_path / "shifted.json").write_text(json.dumps(summary))
    shutil.copy(selections / "cc.npy", tmp_path / "shifted.npy")
    cases.append(([str(tmp_path / "shifted.npy")], "the subset comes from another pool"))
    for argv, match in cases:
        assert cli.main(["report", *argv, "--out", str(tmp_path / "r.html")]) == 2
        assert match in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


# --- in a browser --------------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# test-only: counts the images the browser could not decode (the page itself has no script)
PROBE = ("<script>window.addEventListener('load', () => { const bad = [...document.images].filter("
         "i => !(i.complete && i.naturalWidth > 0)).length; document.body.setAttribute('data-broken', bad); "
         "document.body.setAttribute('data-images', document.images.length); });</script>")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian's chromium package; .ci/run "
                                             "installs it): the browser test skips")
def test_the_page_in_headless_chromium(selections, tmp_path):
    out = tmp_path / "report.html"
    assert cli.main(["report", str(selections / "cc.tsv"), "--against", str(selections / "cs.tsv"), "--out",
                     str(out)]) == 0
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'ud1'}", "--virtual-time-budget=5000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'data-broken="(\d+)" data-images="(\d+)"', dom.stdout)
    assert m, dom.stdout[:500]
    assert int(m.group(1)) == 0 and int(m.group(2)) >= 28  # every image decoded in the browser
    for section in ("summary", "composition", "scores", "examples", "compare"):
        assert f'id="{section}"' in dom.stdout
    shot = tmp_path / "shot.png"
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'ud2'}", "--window-size=1280,2400",
                          f"--screenshot={shot}", out.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), np.float64)
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.02  # not a blank page
    assert "Uncaught" not in run.stderr and "Uncaught" not in dom.stderr
