"""clipcov-fast: ClipCov data selection for CLIP training (Joshi et al., AISTATS 2024).

    sel = clipcov_fast.select(emb_img, emb_txt, k=0.1, labels=labels)
    sel.indices  # the chosen rows, in pick order
"""
__version__ = "0.1.0"

from .api import Selection, select, terms  # noqa: E402
from . import baselines, reference  # noqa: E402

__all__ = ["select", "terms", "Selection", "baselines", "reference", "__version__"]
