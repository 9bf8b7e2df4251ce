"""The package's shape, read from its source with ast (nothing imported): no import cycles, imports flow
one way (cli -> experiment -> training, scale -> pipeline -> the selection library), only cli/ parses
flags; and the core works on an install without the [clip] extra."""
import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

PKG = Path(__file__).resolve().parents[1] / "clipcov_fast"
# rank of each layer: a module may import its own subpackage and any layer of lower rank
LAYERS = {"library": 0, "pipeline": 1, "scale": 2, "training": 2, "experiment": 3, "cli": 4}


def modules():
    out = {}
    for path in PKG.rglob("*.py"):
        parts = ("clipcov_fast",) + path.relative_to(PKG).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name, path, known):
    """Package modules that `name` imports (relative or absolute, at top level or inside functions)."""
    base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    got = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base.split(".")[: len(base.split(".")) - node.level + 1]
                mod = ".".join(parent + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            candidates = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for c in candidates:
            while c and c not in known:
                c = c.rpartition(".")[0]
            if c and c != name and not c.startswith(name + "."):  # a package's own children are not a cycle
                got.add(c)
    return got


def layer(name):
    """The stage of a module; the library's own subpackages (baselines/) are the library."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "library"


def graph():
    mods = modules()
    return mods, {m: imports(m, p, mods) for m, p in mods.items()}


def cycles(g):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_cycles_and_upward_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert layer("clipcov_fast.api") == "library" and layer("clipcov_fast.cli") == "cli"
    assert layer("clipcov_fast.pipeline.sources.table") == "pipeline"
    assert layer("clipcov_fast.baselines.negclip") == "library" and layer("clipcov_fast.baselines") == "library"


def test_no_import_cycles():
    _, g = graph()
    assert cycles(g) == []


def test_imports_flow_one_way():
    _, g = graph()
    upward = [f"{m} -> {t}" for m, targets in g.items() for t in targets
              if layer(t) != layer(m) and LAYERS[layer(t)] >= LAYERS[layer(m)]]
    assert upward == []


def test_only_the_cli_parses_flags():
    mods = modules()
    parsing = sorted(m for m, p in mods.items() if layer(m) != "cli" and "argparse" in {
        a.name for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.Import) for a in node.names})
    assert parsing == []


def test_top_level_holds_at_most_ten_modules():
    top = [p for p in PKG.glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= 10, sorted(p.name for p in top)


# --- the core install: nothing beyond the core dependencies ------------------------------------------

def core_modules():
    """Top-level modules of the distributions that `pip install clipcov-fast` brings (its dependencies
    without an extra marker, and theirs, transitively), read from the installed metadata."""
    from importlib import metadata

    by_dist = {}
    for module, dists in metadata.packages_distributions().items():
        for dist in dists:
            by_dist.setdefault(_canonical(dist), set()).add(module)
    todo, seen = ["clipcov-fast"], set()
    while todo:
        name = _canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [re.split(r"[<>=!~;\[ (]", r, maxsplit=1)[0] for r in requires if "extra" not in r]
    return sorted(set().union(*(by_dist.get(d, set()) for d in seen)) | {"clipcov_fast"})


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


# blocks every module that is neither in the standard library nor in a core distribution
BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    ALLOWED = set({core_modules()!r}) | set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top not in ALLOWED and not top.startswith("_"):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, Block())
""")


def run_without_extra(code, *args):
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("module", ["torch", "scipy", "pyarrow", "ray", "open_clip"])
def test_the_blocker_blocks_what_the_core_does_not_install(module):
    r = run_without_extra(f"import {module}")
    assert r.returncode != 0 and f"No module named '{module}'" in r.stderr


def test_the_command_line_starts_on_the_core_install(tmp_path):
    """`clipcov --help` and each command's help, on nothing but the core dependencies."""
    from clipcov_fast.cli import COMMANDS

    names = [c.__name__.rsplit(".", 1)[1] for c in COMMANDS]
    r = run_without_extra("""
        import contextlib, io, sys
        from clipcov_fast.cli import main
        for argv in [["--help"]] + [[name, "--help"] for name in sys.argv[1:]]:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    main(argv)
                except SystemExit as e:
                    assert e.code == 0, (argv, e.code)
            assert "usage: clipcov" in out.getvalue(), argv
    """, *names)
    assert r.returncode == 0, r.stderr


def _emb_folder(root, n=12, d=8, source=None):
    rng = np.random.default_rng(0)
    emb = root / "emb"
    emb.mkdir(parents=True)
    np.save(emb / "img.npy", rng.normal(size=(n, d)).astype(np.float16))
    np.save(emb / "txt.npy", rng.normal(size=(n, d)).astype(np.float16))
    np.save(emb / "labels.npy", np.arange(n) % 3)
    np.save(emb / "rows.npy", np.arange(n))
    if source is None:
        (root / "pairs.tsv").write_text("filepath\ttitle\n" + "".join(f"img/{i}.png\tcaption {i}\n" for i in range(n)))
        source = {"kind": "table", "path": str(root / "pairs.tsv"), "img_key": "filepath",
                  "caption_key": "title", "sep": "\t"}
    (emb / "manifest.json").write_text(json.dumps({"data": source}))
    return emb


def test_core_works_without_the_clip_extra(tmp_path):
    import clipcov_fast

    emb = _emb_folder(tmp_path)
    r = run_without_extra("""
        import sys, numpy as np, clipcov_fast as cc
        from clipcov_fast.cli import main
        img, txt = np.load(sys.argv[1] + "/img.npy"), np.load(sys.argv[1] + "/txt.npy")
        sel = cc.select(img, txt, 4, labels=np.arange(len(img)) % 3)
        np.save(sys.argv[2] + "/api.npy", sel.indices)
        cc.terms(img, txt)
        cc.baselines.semdedup(img, 4)
        code = main(["select", "--emb", sys.argv[1], "--k", "4", "--out", sys.argv[2] + "/s.tsv"])
        code |= main(["select", "--img", sys.argv[1] + "/img.npy", "--txt", sys.argv[1] + "/txt.npy",
                      "--k", "25%", "--method", "semdedup", "--out", sys.argv[2] + "/b.npy"])
        sys.exit(code)
    """, str(emb), str(tmp_path))
    assert r.returncode == 0, r.stderr
    img, txt = np.load(emb / "img.npy"), np.load(emb / "txt.npy")
    want = clipcov_fast.select(img, txt, 4, labels=np.arange(12) % 3).indices
    assert np.load(tmp_path / "api.npy").tolist() == want.tolist()
    assert np.load(tmp_path / "s.npy").tolist() == want.tolist()
    lines = (tmp_path / "s.tsv").read_text().splitlines()
    assert lines[1:] == [f"img/{i}.png\tcaption {i}" for i in sorted(want)]
    assert len(np.load(tmp_path / "b.npy")) == 3


def test_a_missing_extra_is_named(tmp_path):
    emb = _emb_folder(tmp_path, source={"kind": "webdataset", "path": str(tmp_path / "shards")})
    r = run_without_extra("""
        import sys
        from clipcov_fast.cli import main
        sys.exit(main(["select", "--emb", sys.argv[1], "--k", "4", "--out", sys.argv[2] + "/sub"]))
    """, str(emb), str(tmp_path))
    assert r.returncode == 2
    assert "webdataset" in r.stderr and "pip install 'clipcov-fast[clip]'" in r.stderr
