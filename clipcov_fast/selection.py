"""The result of a selection, shared by every backend and every baseline."""
from dataclasses import dataclass, field

import numpy as np


@dataclass(repr=False)
class Selection:
    """The chosen subset, in pick order, with the gain of each pick when it was made."""

    indices: np.ndarray  # int64, pick order
    gains: np.ndarray  # float64, marginal gain at pick time
    objective: float  # F(S) = sum of the gains
    labels: np.ndarray  # int64 proxy class of every input row
    k: int
    n: int
    method: str = "clipcov"
    budget: str = "proportional"
    timings: dict = field(default_factory=dict)
    scores: np.ndarray = None  # a score-ranked baseline's score of every input row (float64), else None

    def class_counts(self):
        """{class: (members in the pool, members in the subset)} for every non-empty class."""
        classes, pool = np.unique(self.labels, return_counts=True)
        chosen = np.bincount(np.searchsorted(classes, self.labels[self.indices]), minlength=len(classes))
        return {int(c): (int(p), int(s)) for c, p, s in zip(classes, pool, chosen)}

    def __len__(self):
        return len(self.indices)

    def __repr__(self):
        head = ", ".join(map(str, self.indices[:5])) + (", ..." if self.k > 5 else "")
        return (f"Selection(method={self.method!r}, budget={self.budget!r}, k={self.k}, n={self.n}, "
                f"classes={len(np.unique(self.labels))}, objective={self.objective:.6g}, indices=[{head}])")
