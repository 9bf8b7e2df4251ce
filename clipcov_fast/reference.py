"""Float64 NumPy reference of the ClipCov objective (docs/objective.md).

Small and slow on purpose: it holds each class's n_c x n_c similarity block and updates every gain
after every pick. The tests use it as the oracle for the fast engines; it is not an engine.
"""
import numpy as np

DEFAULT_WEIGHTS = {
    "clipcov": {"coverage": 1.0, "easiness": 2.0, "label": 0.5, "center": 1.0, "redundancy": 1.0},
    "xcov": {"easiness": 0.0, "label": 0.0, "center": 0.0},
}


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _prepare(A, B, labels, class_emb, normalize):
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    T = None if class_emb is None else np.asarray(class_emb, dtype=np.float64)
    if normalize:
        A, B = _unit(A), _unit(B)
        T = None if T is None else _unit(T)
    if labels is not None:
        y = np.asarray(labels, dtype=np.int64)
    elif T is not None:
        y = np.argmax(A @ T.T, axis=1)  # first maximum: ties go to the smallest class
    else:
        y = np.zeros(len(A), dtype=np.int64)
    return A, B, T, y


def terms(A, B, labels=None, class_emb=None, threshold=0.0, weights=None, normalize=True):
    """Per-example terms: coverage, easiness, label, center, utility (and the proxy labels)."""
    w = {**DEFAULT_WEIGHTS["clipcov"], **(weights or {})}
    A, B, T, y = _prepare(A, B, labels, class_emb, normalize)
    n = len(A)
    classes = np.unique(y)
    cov = np.zeros(n)
    for c in classes:
        idx = np.flatnonzero(y == c)
        s = A[idx] @ B[idx].T
        sp = np.where(s > threshold, s, 0.0)
        cov[idx] = (sp.sum(axis=1) + sp.sum(axis=0)) / len(idx)
    easy = np.einsum("ij,ij->i", A, B)
    label = np.einsum("ij,ij->i", B, T[y]) if T is not None else np.zeros(n)
    center = np.zeros(n)
    if len(classes) > 1:
        mu_img = np.stack([A[y == c].mean(axis=0) for c in classes])
        mu_txt = np.stack([B[y == c].mean(axis=0) for c in classes])
        for r, c in enumerate(classes):
            idx = np.flatnonzero(y == c)
            other_txt = (mu_txt.sum(axis=0) - mu_txt[r]) / (len(classes) - 1)
            other_img = (mu_img.sum(axis=0) - mu_img[r]) / (len(classes) - 1)
            center[idx] = A[idx] @ other_txt + B[idx] @ other_img
    util = w["coverage"] * cov + w["easiness"] * easy + w["label"] * label - w["center"] * center
    return {"coverage": cov, "easiness": easy, "label": label, "center": center, "utility": util,
            "labels": y}


def quotas(y, k, budget="proportional"):
    """Picks allowed per class: {class: quota}."""
    classes, counts = np.unique(y, return_counts=True)
    n = len(y)
    if budget == "global":
        return {int(c): int(m) for c, m in zip(classes, counts)}
    q = {int(c): k * int(m) // n for c, m in zip(classes, counts)}
    rem = {int(c): k * int(m) % n for c, m in zip(classes, counts)}
    left = k - sum(q.values())
    for c in sorted(rem, key=lambda c: (-rem[c], c))[:left]:
        q[c] += 1
    return q


def _xcov_parts(A, B, y, k, m_terms):
    """Initial xcov gains and the class index of each example."""
    n = len(A)
    g = np.empty(n)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        target = (k / n) * (A[idx].T @ B[idx])
        g[idx] = 2 * np.einsum("ij,jk,ik->i", A[idx], target, B[idx])
    g -= np.einsum("ij,ij->i", A, A) * np.einsum("ij,ij->i", B, B)
    return g + m_terms


def select(A, B, k, objective="clipcov", labels=None, class_emb=None, threshold=0.0, weights=None,
           budget="proportional", normalize=True):
    """Exact greedy of the contract. Returns (indices, gains, F(S), labels)."""
    w = {**DEFAULT_WEIGHTS[objective], **(weights or {})}
    t = terms(A, B, labels, class_emb, threshold if objective == "clipcov" else 0.0,
              {kk: w.get(kk, 0.0) for kk in ("coverage", "easiness", "label", "center")}, normalize)
    An, Bn, _, y = _prepare(A, B, labels, class_emb, normalize)
    n = len(An)
    if objective == "clipcov":
        gains = t["utility"].copy()
    else:
        m = w["easiness"] * t["easiness"] + w["label"] * t["label"] - w["center"] * t["center"]
        gains = _xcov_parts(An, Bn, y, k, m)
    quota = quotas(y, k, budget)
    members = {c: np.flatnonzero(y == c) for c in quota}
    picked = np.zeros(n, dtype=bool)
    order, got = [], []
    for _ in range(k):
        open_class = np.array([quota[int(c)] > 0 for c in y], dtype=bool)
        masked = np.where(~picked & open_class, gains, -np.inf)
        j = int(np.argmax(masked))  # first maximum: ties go to the smallest index
        order.append(j)
        got.append(gains[j])
        picked[j] = True
        c = int(y[j])
        quota[c] -= 1
        idx = members[c]
        if objective == "clipcov":
            s_ij = An[idx] @ Bn[j]  # <a_i, b_j>
            s_ji = Bn[idx] @ An[j]  # <a_j, b_i>
            wij = np.where(s_ij > threshold, s_ij, 0) + np.where(s_ji > threshold, s_ji, 0)
            gains[idx] -= w["redundancy"] / len(idx) * wij
        else:
            gains[idx] -= 2 * (An[idx] @ An[j]) * (Bn[idx] @ Bn[j])
    return np.array(order, dtype=np.int64), np.array(got), float(np.sum(got)), y


def set_value(S, A, B, k, objective="clipcov", labels=None, class_emb=None, threshold=0.0,
              weights=None, normalize=True):
    """F(S) straight from the set-function definition (for brute-force checks on tiny inputs)."""
    w = {**DEFAULT_WEIGHTS[objective], **(weights or {})}
    S = np.asarray(S, dtype=np.int64)
    t = terms(A, B, labels, class_emb, threshold if objective == "clipcov" else 0.0,
              {kk: w.get(kk, 0.0) for kk in ("coverage", "easiness", "label", "center")}, normalize)
    An, Bn, _, y = _prepare(A, B, labels, class_emb, normalize)
    n = len(An)
    if objective == "clipcov":
        value = t["utility"][S].sum()
        for c in np.unique(y):
            n_c = int(np.sum(y == c))
            mine = S[y[S] == c]
            s = An[mine] @ Bn[mine].T
            sp = np.where(s > threshold, s, 0.0)
            wmat = sp + sp.T
            value -= w["redundancy"] / n_c * (wmat.sum() - np.trace(wmat)) / 2  # unordered pairs i != j
        return float(value)
    m = w["easiness"] * t["easiness"] + w["label"] * t["label"] - w["center"] * t["center"]
    value = m[S].sum()
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        mine = S[y[S] == c]
        target = (k / n) * (An[idx].T @ Bn[idx])
        value += np.sum(target ** 2) - np.sum((target - An[mine].T @ Bn[mine]) ** 2)
    return float(value)
