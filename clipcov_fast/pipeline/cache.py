"""Built-in data and fitted proxy heads, made on first use and kept in one cache folder.

The folder is $CLIPCOV_CACHE, or ~/.cache/clipcov_fast. Nothing in it is downloaded: pools are built
from Debian packages (clipcov data build), proxy heads are fitted locally.
"""
import json
import logging
import os
from pathlib import Path

log = logging.getLogger("clipcov_fast.cache")


def folder():
    return Path(os.environ.get("CLIPCOV_CACHE") or Path.home() / ".cache" / "clipcov_fast")


def pool(name, limit=None, seed=0, root=None, **options):
    """Folder of built-in pool `name` (pairs.tsv, images/, manifest.json), built unless a build with
    the same limit, seed and options is there."""
    from . import pools

    tag = name + (f"-{limit}" if limit else "") + (f"-s{seed}" if seed else "") + \
        "".join(f"-{k}{v}" for k, v in sorted(options.items()))
    out = Path(root or folder() / "pools") / tag
    manifest = out / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        if m.get("limit") == limit and m.get("seed") == seed:
            return out
    log.info("building the %s pool into %s", name, out)
    pools.build(name, out, limit=limit, seed=seed, **options)
    return out


def proxy_heads(proxy_pairs=None):
    """The default lite0-minilm heads: fitted on all of fashion-proxy (10,000 clean pairs) once."""
    from . import towers

    pairs = proxy_pairs or pool("fashion-proxy") / "pairs.tsv"
    return towers.fit(pairs, folder() / towers.NAME)
