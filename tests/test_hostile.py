"""What an adversarial probe found (issue 19), case by case, from its reproductions: hand-built pools and
files that once gave a wrong subset with exit code 0, destroyed a file, or left a broken work directory."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="the pools are parquet: pip install 'clipcov-fast[scale]'")

import clipcov_fast as cc  # noqa: E402
from clipcov_fast import _core, cli  # noqa: E402
from clipcov_fast.pipeline.sources import open_pool  # noqa: E402
from clipcov_fast.pipeline.sources.pool import check_uids, uid_pairs  # noqa: E402
from clipcov_fast.scale import select_pool  # noqa: E402
from conftest import make_pool  # noqa: E402
from scale_util import uids_for, write_clip_retrieval, write_datacomp  # noqa: E402

N, D = 600, 8


@pytest.fixture(scope="module")
def arrays():
    A, B, y = make_pool(N, D, classes=6, seed=19)
    return A.astype(np.float32), B.astype(np.float32), y


def run(capsys, *argv):
    """clipcov ARGV: (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- 2. uids: exactly 32 characters of [0-9a-fA-F] ---------------------------------------------------

@pytest.mark.parametrize("bad", ["0x" + "ab" * 15, " " + "a" * 31, "a" * 16 + "_" + "a" * 15,
                                 "+" + "a" * 31, "１" + "a" * 31, "a" * 31 + "g", "a" * 33, "a" * 31])
def test_a_malformed_uid_is_named_not_made_up(bad):
    uids = uids_for(5) + [bad]
    with pytest.raises(ValueError, match=r"uid .* in row 5 is not 32 hex characters"):
        uid_pairs(uids, "pool.parquet")
    with pytest.raises(ValueError, match="row 5"):
        check_uids(uids, "pool.parquet")


def test_uids_of_either_case_give_their_own_bits():
    u = "0123456789abcdefFEDCBA9876543210"
    pair = uid_pairs([u, u.upper()])
    assert int(pair["f0"][0]) == int(u[:16], 16) and int(pair["f1"][0]) == int(u[16:], 16)
    assert pair[0] == pair[1]


def test_a_datacomp_pool_with_a_malformed_uid_is_refused(tmp_path, arrays):
    A, B, _ = arrays
    uids = uids_for(N)
    uids[7] = "0x" + uids[7][2:]
    write_datacomp(tmp_path / "dc", A, B, parts=2, uids=uids)
    with pytest.raises(ValueError, match=r"00000000.parquet: uid '0x.*' in row 7 is not 32 hex"):
        open_pool(datacomp=tmp_path / "dc")


# --- 3. byte order ------------------------------------------------------------------------------------

def big_endian(x):
    return x.astype(x.dtype.newbyteorder(">"))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_big_endian_arrays_give_the_native_answer(arrays, dtype):
    A, B, y = arrays
    A, B = A.astype(dtype), B.astype(dtype)
    want = cc.select(A, B, 60, labels=y)
    got = cc.select(big_endian(A), big_endian(B), 60, labels=y)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.gains, want.gains)


def test_the_engine_refuses_a_foreign_byte_order_naming_it(arrays):
    A, B, _ = arrays
    eng = _core.Engine(np.arange(N, dtype=np.int64), np.array([0, N], np.int64), D, True, 1)
    with pytest.raises(TypeError, match="emb_img is in big-endian byte order"):
        eng.load(0, big_endian(A), B)


def test_a_big_endian_pool_gives_the_in_process_answer_on_every_engine(tmp_path, arrays):
    A, B, y = arrays
    write_clip_retrieval(tmp_path / "cr", big_endian(A), big_endian(B), parts=2, dtype=np.dtype(">f4"))
    assert np.load(tmp_path / "cr/img_emb/img_emb_0.npy").dtype.byteorder == ">"
    want = cc.select(A, B, 0.1, labels=y)
    pool = open_pool(clip_retrieval=tmp_path / "cr")
    for engine, copy in (("inprocess", None), ("local", None), ("local", True)):
        got = select_pool(pool, 0.1, labels=y, engine=engine, work_dir=tmp_path / f"w-{engine}-{copy}",
                          workers=1, copy_rows=copy)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.gains, want.gains)


# --- 4. a clip-retrieval partition missing from one folder ---------------------------------------------

@pytest.mark.parametrize("missing", ["img_emb/img_emb_1.npy", "text_emb/text_emb_1.npy",
                                     "metadata/metadata_1.parquet"])
def test_a_partition_missing_from_one_folder_is_named(tmp_path, arrays, missing):
    A, B, _ = arrays
    write_clip_retrieval(tmp_path / "cr", A, B, parts=3)
    (tmp_path / "cr" / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f"partition 1 has .* but no .*{missing}"):
        open_pool(clip_retrieval=tmp_path / "cr")


def test_partition_numbers_may_skip_where_clip_retrieval_wrote_nothing(tmp_path, arrays):
    A, B, y = arrays
    write_clip_retrieval(tmp_path / "cr", A, B, parts=3)
    for sub, stem, suffix in (("img_emb", "img_emb", "npy"), ("text_emb", "text_emb", "npy"),
                              ("metadata", "metadata", "parquet")):  # partition 2 becomes 10: after 0, not 1
        os.rename(tmp_path / f"cr/{sub}/{stem}_2.{suffix}", tmp_path / f"cr/{sub}/{stem}_10.{suffix}")
    pool = open_pool(clip_retrieval=tmp_path / "cr")
    assert pool.n == N and [s.rows for s in pool.shards] == [200, 200, 200]


# --- 5. labels beyond int64 ------------------------------------------------------------------------------

def test_uint64_labels_beyond_int64_are_refused_in_process_and_by_the_engines(tmp_path, arrays):
    A, B, _ = arrays
    y = np.zeros(N, np.uint64)
    y[9] = 2**63 + 5
    with pytest.raises(ValueError, match=r"labels has class 9223372036854775813 at row 9, beyond the int64"):
        cc.select(A, B, 10, labels=y)
    with pytest.raises(ValueError, match="beyond the int64"):
        select_pool(open_pool(**_npy_pair(tmp_path, A, B)), 10, labels=y, engine="local",
                    work_dir=tmp_path / "w")


def test_uint64_labels_within_int64_are_their_classes(arrays):
    A, B, y = arrays
    want = cc.select(A, B, 30, labels=y)
    got = cc.select(A, B, 30, labels=(y + 2**40).astype(np.uint64))
    np.testing.assert_array_equal(got.indices, want.indices)


def _npy_pair(tmp_path, A, B):
    np.save(tmp_path / "img.npy", A)
    np.save(tmp_path / "txt.npy", B)
    return {"img": str(tmp_path / "img.npy"), "txt": str(tmp_path / "txt.npy")}


# --- dtypes and ranges -----------------------------------------------------------------------------------

def test_fp32_captions_beside_fp16_images_keep_their_range(tmp_path, arrays):
    A, B, y = arrays
    B = B * 1e5  # finite in float32, Inf in float16
    write_datacomp(tmp_path / "dc", A, B, parts=2, dtype=np.float16)
    for p in sorted((tmp_path / "dc").glob("*.npz")):  # captions rewritten in float32
        rows = np.arange(300) + (300 if p.stem.endswith("1") else 0)
        with np.load(p) as z:
            img = z["b32_img"]
        np.savez(p, b32_img=img, b32_txt=B[rows].astype(np.float32))
    want = cc.select(A.astype(np.float16), B.astype(np.float32), 0.1, labels=y)
    pool = open_pool(datacomp=tmp_path / "dc")
    assert pool.dtype == np.float32
    for engine in ("inprocess", "local"):
        got = select_pool(pool, 0.1, labels=y, engine=engine, work_dir=tmp_path / "w", workers=1)
        np.testing.assert_array_equal(got.indices, want.indices)


def test_fp64_inputs_near_the_top_and_bottom_of_the_range_normalize(arrays):
    A, B, y = arrays
    A, B = A.astype(np.float64), B.astype(np.float64)
    T = np.random.default_rng(1).normal(size=(4, D))
    want = cc.select(A, B, 60, class_emb=T, threshold=0.2)
    for scale in (2.0**660, 2.0**-660):  # powers of two: the normalized rows are the same numbers
        got = cc.select(A * scale, B * scale, 60, class_emb=T, threshold=0.2)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_allclose(got.gains, want.gains, rtol=1e-12)


def test_rows_beyond_float32_without_normalization_are_named(arrays):
    A, B, _ = arrays
    A = A.astype(np.float64).copy()
    A[13] *= 1e30
    with pytest.raises(ValueError, match="emb_img has a row too large for float32 .* in row 13"):
        cc.select(A, B, 10, normalize=False)
    A[13] = np.nan
    with pytest.raises(ValueError, match="emb_img has a NaN or Inf in row 13"):
        cc.select(A, B, 10)
