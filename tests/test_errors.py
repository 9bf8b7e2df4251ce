"""Bad input: a clear error naming the argument, never a crash or a silent answer."""
import numpy as np
import pytest

import clipcov_fast as cc

rng = np.random.default_rng(0)
A = rng.normal(size=(30, 8))
B = rng.normal(size=(30, 8))


def bad(row, col, value, X=A):
    X = X.copy()
    X[row, col] = value
    return X


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(emb_img=A[:20]), ValueError, "same shape"),
    (dict(emb_img=A[:, 0]), ValueError, "emb_img must be a 2-D"),
    (dict(emb_txt=B[None]), ValueError, "emb_txt must be a 2-D"),
    (dict(emb_img=A.astype(int)), TypeError, "emb_img must hold float"),
    (dict(emb_img="abc"), TypeError, "emb_img"),
    (dict(emb_img=bad(7, 2, np.nan)), ValueError, "emb_img has a NaN or Inf in row 7"),
    (dict(emb_txt=bad(11, 0, np.inf, B)), ValueError, "emb_txt has a NaN or Inf in row 11"),
    (dict(emb_img=bad(4, slice(None), 0.0)), ValueError, "emb_img has an all-zero row.* 4"),
    (dict(emb_txt=bad(5, slice(None), 0.0, B)), ValueError, "emb_txt has an all-zero row.* 5"),
    (dict(k=31), ValueError, "k must be between 0 and n = 30"),
    (dict(k=-1), ValueError, "k must be between"),
    (dict(k=1.5), ValueError, "fraction in"),
    (dict(k="3"), TypeError, "k must be an int"),
    (dict(k=True), TypeError, "k must be an int"),
    (dict(labels=np.zeros(29, int)), ValueError, "labels must be a 1-D array of length n = 30"),
    (dict(labels=-np.ones(30, int)), ValueError, "labels must be >= 0"),
    (dict(labels=np.zeros(30)), TypeError, "labels must hold integers"),
    (dict(class_emb=rng.normal(size=(4, 5))), ValueError, "class_emb must have d = 8"),
    (dict(class_emb=rng.normal(size=(4, 8)), labels=np.full(30, 4)), ValueError, "class_emb has only 4"),
    (dict(objective="nope"), ValueError, "objective must be one of"),
    (dict(budget="nope"), ValueError, "budget must be one of"),
    (dict(device="tpu"), ValueError, "device must be one of"),
    (dict(weights={"coverag": 1}), ValueError, "unknown key"),
    (dict(weights={"redundancy": -1}), ValueError, "redundancy.*>= 0"),
    (dict(weights={"easiness": float("nan")}), ValueError, "finite"),
    (dict(threshold=-0.1), ValueError, "threshold must be >= 0"),
    (dict(objective="xcov", weights={"coverage": 1}), ValueError, "do not apply to objective='xcov'"),
    (dict(objective="xcov", threshold=0.2), ValueError, "threshold does not apply"),
    (dict(num_threads=0), ValueError, "num_threads"),
])
def test_bad_input(kwargs, exc, match):
    args = dict(emb_img=A, emb_txt=B, k=5)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        cc.select(args.pop("emb_img"), args.pop("emb_txt"), args.pop("k"), **args)


def test_empty_input_with_positive_k():
    with pytest.raises(ValueError, match="k must be between 0 and n = 0"):
        cc.select(np.zeros((0, 4)), np.zeros((0, 4)), 1)


def test_cuda_without_gpu_is_a_clear_error():
    from clipcov_fast import api
    try:
        usable = api._backend("cuda") == "cuda"
    except ValueError as e:
        assert "device='cuda'" in str(e)
        usable = False
    if not usable:
        with pytest.raises(ValueError, match="device='cuda'"):
            cc.select(A, B, 5, device="cuda")


def test_zero_rows_allowed_without_normalization():
    sel = cc.select(bad(4, slice(None), 0.0), B, 5, normalize=False)
    assert len(sel.indices) == 5
