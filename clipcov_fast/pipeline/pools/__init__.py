"""Built-in pools made from installed Debian packages (and scikit-learn's digits); nothing is downloaded.

    build("fashion-web", "pool")  ->  pool/images/..., pool/pairs.tsv, pool/skipped.tsv, pool/manifest.json
"""
import numpy as np

from .writer import PoolWriter


def build(name, out, limit=None, seed=0, **options):
    """Build pool `name` into `out`; returns its manifest."""
    from . import drawings, fashion  # imported here: they read Debian packages

    builders = {"fashion-web": fashion.build_web, "fashion-proxy": fashion.build_proxy, "fashion-val": fashion.build_val,
                "fashion-mnist-shifted": fashion.build_shifted,
                "fashion-mnist-test": fashion.build_test, "digits": fashion.build_digits,
                "clipart": drawings.build_clipart, "stamps": drawings.build_stamps, "emoji": drawings.build_emoji}
    if name not in builders:
        raise ValueError(f"NAME must be one of {sorted(builders)}, got {name!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    writer = PoolWriter(out, name)
    info = builders[name](writer, limit=limit, rng=np.random.default_rng(seed), **options)
    return writer.finish(seed=seed, limit=limit, **info)


NAMES = ("fashion-web", "fashion-proxy", "fashion-val", "fashion-mnist-test", "fashion-mnist-shifted", "digits", "clipart", "stamps", "emoji")
