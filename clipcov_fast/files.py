"""Atomic file output: write to a temporary name in the same folder, then rename."""
import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; renames it to `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_npy(path, array):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(array))


def save_json(path, obj):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_plain) + "\n")


def save_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_png(path, fig, dpi=110):
    """A matplotlib figure as a PNG (atomic), then closed."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def save_report(out, stem, data, markdown, plot):
    """OUT/STEM.json (data), STEM.md (the text markdown(data)) and STEM.png (plot(path, data)), each
    written atomically; returns the three paths."""
    out = Path(out)
    paths = out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.png"
    save_json(paths[0], data)
    save_text(paths[1], markdown(data))
    plot(paths[2], data)
    return paths


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"cannot write {type(x).__name__} as JSON")
