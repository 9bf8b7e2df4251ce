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


# --- 6-8 and 16: outputs never replace an input or each other; the summary's name keeps the whole name ------

@pytest.fixture
def npy(tmp_path, arrays):
    A, B, y = arrays
    for name, arr in (("img", A), ("txt", B), ("labels", y)):
        np.save(tmp_path / f"{name}.npy", arr)
    return tmp_path


def select_args(d, *extra):
    return ["select", "--img", d / "img.npy", "--txt", d / "txt.npy", "--labels", d / "labels.npy", "--k", "10%",
            *extra]


def test_out_named_json_is_refused_before_anything_is_written(capsys, npy):
    code, _, err = run(capsys, *select_args(npy, "--out", npy / "res.json"))
    assert code == 2 and "--out: " in err and "ends in .json, the summary's name" in err
    assert not (npy / "res.json").exists()


@pytest.mark.parametrize("victim", ["img.npy", "txt.npy", "labels.npy"])
def test_out_equal_to_an_input_is_refused_and_the_input_kept(capsys, npy, victim):
    before = (npy / victim).read_bytes()
    code, _, err = run(capsys, *select_args(npy, "--out", npy / victim))
    assert code == 2 and "is the input" in err and err.count("\n") == 1
    assert (npy / victim).read_bytes() == before


def test_an_output_through_another_name_of_an_input_is_refused(capsys, npy):
    os.link(npy / "img.npy", npy / "hard.npy")  # a hard link: another path, the same file
    (npy / "sub").mkdir()
    code, _, err = run(capsys, *select_args(npy, "--out", npy / "sub" / ".." / "hard.npy"))
    assert code == 2 and "is the input --img" in err


def test_a_summary_that_would_replace_an_input_is_refused(capsys, npy):
    np.save(npy / "labels.json", np.zeros(3))  # (an odd name for an input, but a file all the same)
    code, _, err = run(capsys, "select", "--img", npy / "img.npy", "--txt", npy / "txt.npy",
                       "--labels", npy / "labels.json", "--k", "5", "--out", npy / "labels.npy")
    assert code == 2 and "is the input --labels" in err


def test_a_pool_file_is_never_an_output(capsys, tmp_path, arrays):
    A, B, y = arrays
    write_datacomp(tmp_path / "dc", A, B, parts=2)
    meta = tmp_path / "dc" / "00000000.parquet"
    before = meta.read_bytes()
    code, _, err = run(capsys, "select", "--datacomp", tmp_path / "dc", "--k", "5", "--out", meta)
    assert code == 2 and "is the input the pool file 00000000.parquet" in err
    assert meta.read_bytes() == before


def test_summaries_are_named_from_the_whole_output_name(capsys, npy):
    for name in ("sel_k0.1", "sel_k0.2"):
        assert run(capsys, *select_args(npy, "--out", npy / name))[0] == 0
    first, second = (json.loads((npy / f"sel_k0.{i}.json").read_text()) for i in (1, 2))
    assert not (npy / "sel_k0.json").exists()
    assert np.load(npy / "sel_k0.1").tolist() == np.load(npy / "sel_k0.2").tolist()
    assert first["k"] == second["k"] == N // 10


def test_a_table_from_npy_inputs_is_refused_not_written_as_npy(capsys, npy):
    code, _, err = run(capsys, *select_args(npy, "--out", npy / "s.tsv"))
    assert code == 2 and "--out: a .tsv subset is the source's own table" in err
    assert not (npy / "s.tsv").exists()


def test_class_prompts_for_a_method_without_classes_are_refused(capsys, npy):
    np.save(npy / "classes.npy", np.random.default_rng(0).normal(size=(3, D)))
    code, _, err = run(capsys, "select", "--img", npy / "img.npy", "--txt", npy / "txt.npy", "--class-emb",
                       npy / "classes.npy", "--k", "5", "--method", "semdedup", "--out", npy / "s.npy")
    assert code == 2 and "--class-emb: --method semdedup takes no classes" in err


def test_labels_and_class_prompts_together_mean_what_select_says(capsys, npy, arrays):
    A, B, y = arrays
    T = np.random.default_rng(0).normal(size=(6, D))
    np.save(npy / "classes.npy", T)
    assert run(capsys, *select_args(npy, "--class-emb", npy / "classes.npy", "--out", npy / "s.npy"))[0] == 0
    want = cc.select(A, B, 0.1, labels=y, class_emb=T)
    assert np.load(npy / "s.npy").tolist() == want.indices.tolist()
    assert want.indices.tolist() != cc.select(A, B, 0.1, labels=y).indices.tolist()  # the label term acts


def test_an_emb_folder_without_classes_says_so(capsys, caplog, tmp_path, arrays):
    A, B, _ = arrays
    (tmp_path / "emb").mkdir()
    np.save(tmp_path / "emb" / "img.npy", A)
    np.save(tmp_path / "emb" / "txt.npy", B)
    assert run(capsys, "select", "--emb", tmp_path / "emb", "--k", "5", "--out", tmp_path / "s.npy")[0] == 0
    assert "the whole pool is one class" in caplog.text


def test_k_zero_warns(capsys, caplog, npy):
    assert run(capsys, *select_args(npy, "--k", "0", "--out", npy / "s.npy"))[0] == 0
    assert "--k 0: the subset is empty" in caplog.text and len(np.load(npy / "s.npy")) == 0


@pytest.mark.parametrize("k, want", [("1e3", 1000), ("1200", 1200), ("1200.0", 1200), ("10%", 0.1),
                                     ("0.25", 0.25), ("0", 0)])
def test_k_as_typed(k, want):
    from clipcov_fast.cli.select import k_from_text

    got = k_from_text(k)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize("k", ["1.5", "-3", "nan", "inf", "150%", "ten", "1e400"])
def test_bad_k_is_named(k):
    from clipcov_fast.cli.select import k_from_text

    with pytest.raises(ValueError, match="--k must be a count"):
        k_from_text(k)


@pytest.mark.parametrize("argv", [["work", "--work-dir", "W", "--num-threads", "-3"],
                                  ["select", "--img", "a", "--txt", "b", "--k", "1", "--out", "o.npy",
                                   "--num-threads", "0"],
                                  ["select", "--img", "a", "--txt", "b", "--k", "1", "--out", "o.npy",
                                   "--workers", "x"]])
def test_counts_of_threads_and_workers_must_be_positive(capsys, argv):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and "must be a positive whole number" in capsys.readouterr().err


# --- OS errors are one-line messages that name the path ----------------------------------------------------

def test_out_an_existing_folder(capsys, npy):
    (npy / "dir.npy").mkdir()
    code, _, err = run(capsys, *select_args(npy, "--out", npy / "dir.npy"))
    assert code == 2 and err == f"clipcov select: error: {npy / 'dir.npy'}: is a folder; give a file name\n"


def test_out_under_a_regular_file(capsys, npy):
    code, _, err = run(capsys, *select_args(npy, "--out", npy / "img.npy" / "s.npy"))
    assert code == 2 and err.startswith(f"clipcov select: error: {npy / 'img.npy'}: is a file")


def test_a_work_directory_that_is_a_file(capsys, npy):
    code, _, err = run(capsys, *select_args(npy, "--engine", "local", "--work-dir", npy / "labels.npy",
                                            "--out", npy / "s.npy"))
    assert code == 2 and f"{npy / 'labels.npy'}" in err and "not a folder" in err and err.count("\n") == 1


@pytest.mark.parametrize("code_, text", [(28, "No space left on device"), (30, "Read-only file system")])
def test_a_failing_write_names_its_path(capsys, npy, monkeypatch, code_, text):
    import numpy

    def no(f, *a, **k):
        raise OSError(code_, text)  # what a write(2) raises: no file name

    monkeypatch.setattr(numpy, "save", no)
    code, _, err = run(capsys, *select_args(npy, "--out", npy / "s.npy"))
    assert code == 2 and err == f"clipcov select: error: {npy / 's.npy'}: {text}\n"
    assert [p.name for p in npy.iterdir() if p.name.startswith(".")] == []  # no temporary file left


# --- 1. a work directory knows what it was made from -------------------------------------------------------

def pool_select(tmp_path, cr, work, out, *extra):
    return ["select", "--clip-retrieval", cr, "--k", "10%", "--engine", "local", "--workers", "1",
            "--work-dir", work, "--out", out, *extra]


def test_a_pool_file_rewritten_after_the_plan_is_not_answered_from_the_old_work_directory(capsys, tmp_path,
                                                                                           arrays):
    A, B, _ = arrays
    cr = tmp_path / "cr"
    write_clip_retrieval(cr, A, B, parts=2)
    assert run(capsys, *pool_select(tmp_path, cr, tmp_path / "W1", tmp_path / "a.npy"))[0] == 0
    f = cr / "img_emb" / "img_emb_0.npy"
    st = f.stat()
    rows = np.load(f)
    np.save(f, rows[np.random.default_rng(0).permutation(len(rows))])  # same shape, same inode
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime: only the contents tell
    assert f.stat().st_size == st.st_size and f.stat().st_ino == st.st_ino
    code, _, err = run(capsys, *pool_select(tmp_path, cr, tmp_path / "W1", tmp_path / "b.npy"))
    assert code == 2 and f"was planned from other contents of the pool: {f} changed (contents)" in err
    assert not (tmp_path / "b.npy").exists()
    assert run(capsys, *pool_select(tmp_path, cr, tmp_path / "W2", tmp_path / "b.npy"))[0] == 0
    A2 = np.concatenate([np.load(f), np.load(cr / "img_emb" / "img_emb_1.npy")])
    B2 = np.concatenate([np.load(cr / "text_emb" / "text_emb_0.npy"), np.load(cr / "text_emb" / "text_emb_1.npy")])
    assert np.load(tmp_path / "b.npy").tolist() == cc.select(A2, B2, 0.1).indices.tolist()


def test_the_same_relative_path_from_another_folder_is_another_pool(capsys, tmp_path, arrays, monkeypatch):
    A, B, _ = arrays
    for folder, scale in (("one", 1.0), ("two", -1.0)):
        write_clip_retrieval(tmp_path / folder / "cr", A * scale, B, parts=2)
    monkeypatch.chdir(tmp_path / "one")
    assert run(capsys, *pool_select(tmp_path, "cr", tmp_path / "W", tmp_path / "a.npy"))[0] == 0
    monkeypatch.chdir(tmp_path / "two")
    code, _, err = run(capsys, *pool_select(tmp_path, "cr", tmp_path / "W", tmp_path / "b.npy"))
    assert code == 2 and "holds a plan made with other arguments (they differ in pool)" in err


def test_a_rows_file_replaced_between_plan_and_work_is_caught_by_the_work_step(tmp_path, arrays):
    from clipcov_fast.scale import plan as plan_mod, work

    A, B, y = arrays
    write_clip_retrieval(tmp_path / "cr", A, B, parts=2)
    plan_mod.plan(open_pool(clip_retrieval=tmp_path / "cr"), tmp_path / "W", 0.1, labels=y)
    f = tmp_path / "cr" / "text_emb" / "text_emb_1.npy"
    np.save(f, np.load(f)[::-1])  # a new mtime
    with pytest.raises(ValueError, match="text_emb_1.npy changed after the plan"):
        for job in work.task_jobs(plan_mod.load_plan(tmp_path / "W")):
            work.run_job(tmp_path / "W", job)


# --- 9. the local engine's workers die with their driver -----------------------------------------------------

def test_kill_9_of_the_driver_takes_its_workers_along(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")
    driver = subprocess.Popen([sys.executable, "-c", (
        "import time; from clipcov_fast.scale.engines.local import LocalEngine\n"
        "with LocalEngine(2) as e:\n"
        "    print('up', flush=True); time.sleep(300)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout.readline().strip() == "up"
        deadline = time.monotonic() + 60
        while len(psutil.Process(driver.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = psutil.Process(driver.pid).children(recursive=True)
        assert len(children) >= 2  # the two workers (and the resource tracker)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        gone, alive = psutil.wait_procs(children, timeout=20)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        driver.kill()


# --- 10. two runs planning one work directory at once ----------------------------------------------------------

def test_two_plans_at_once_both_answer_and_leave_a_sound_work_directory(tmp_path):
    import subprocess
    import sys

    A, B, y = make_pool(200_000, 32, classes=8, seed=4)  # big enough that the two plans overlap (about 1 s)
    write_clip_retrieval(tmp_path / "cr", A.astype(np.float16), B.astype(np.float16), parts=8)
    np.save(tmp_path / "labels.npy", y)
    argv = lambda out: [sys.executable, "-m", "clipcov_fast.cli", "select", "--clip-retrieval",  # noqa: E731
                        str(tmp_path / "cr"), "--labels", str(tmp_path / "labels.npy"), "--k", "1%",
                        "--engine", "local", "--workers", "1", "--copy-rows", "--work-dir", str(tmp_path / "W"),
                        "--out", str(tmp_path / out)]
    runs = [subprocess.Popen(argv(f"{i}.npy"), stderr=subprocess.PIPE, text=True) for i in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], errs
    assert "Traceback" not in "".join(errs)
    want = cc.select(A.astype(np.float16), B.astype(np.float16), 0.01, labels=y).indices.tolist()
    assert np.load(tmp_path / "0.npy").tolist() == np.load(tmp_path / "1.npy").tolist() == want
    assert not list((tmp_path / "W").glob(".plan-*"))
    later = subprocess.run(argv("2.npy"), capture_output=True, text=True, timeout=600)
    assert later.returncode == 0 and np.load(tmp_path / "2.npy").tolist() == want


def test_a_second_plan_waits_for_the_lock_of_the_first(tmp_path):
    import threading

    from clipcov_fast.scale.plan import locked

    order = []
    with locked(tmp_path):
        t = threading.Thread(target=lambda: (locked(tmp_path).__enter__(), order.append("second")))
        t.start()
        t.join(0.5)
        order.append("first done")
    t.join(10)
    assert order == ["first done", "second"]


# --- 11. a failed plan leaves nothing behind; broken files are named or recomputed ------------------------------

def test_enospc_during_a_plan_leaves_no_temporary_folder(capsys, tmp_path, arrays, monkeypatch):
    from clipcov_fast.scale import plan as plan_mod

    A, B, _ = arrays
    write_clip_retrieval(tmp_path / "cr", A, B, parts=2)
    calls = []

    def full(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second block: the first one's buckets are written
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    real = plan_mod._plan_block
    monkeypatch.setattr(plan_mod, "_plan_block", full)
    monkeypatch.setattr(plan_mod, "BLOCK_ROWS", 100)
    code, _, err = run(capsys, *pool_select(tmp_path, tmp_path / "cr", tmp_path / "W", tmp_path / "a.npy",
                                            "--copy-rows"))
    assert code == 2 and "No space left on device" in err and str(tmp_path / "W" / ".plan-") in err
    assert sorted(p.name for p in (tmp_path / "W").iterdir()) == [".lock"]
    monkeypatch.setattr(plan_mod, "_plan_block", real)
    assert run(capsys, *pool_select(tmp_path, tmp_path / "cr", tmp_path / "W", tmp_path / "a.npy"))[0] == 0


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_broken_picks_file_is_recomputed(capsys, tmp_path, arrays, damage):
    A, B, y = arrays
    write_clip_retrieval(tmp_path / "cr", A, B, parts=2)
    np.save(tmp_path / "labels.npy", y)
    argv = pool_select(tmp_path, tmp_path / "cr", tmp_path / "W", tmp_path / "a.npy", "--labels",
                       tmp_path / "labels.npy", "--budget", "global")
    assert run(capsys, *argv)[0] == 0
    first = np.load(tmp_path / "a.npy")
    for p in (tmp_path / "W" / "picks").glob("*.npz"):
        data = p.read_bytes()
        p.write_bytes({"truncate": data[:len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    assert run(capsys, *argv)[0] == 0
    assert np.load(tmp_path / "a.npy").tolist() == first.tolist() == cc.select(A, B, 0.1, labels=y,
                                                                                   budget="global").indices.tolist()


def test_a_garbage_plan_is_named(capsys, tmp_path, arrays):
    A, B, _ = arrays
    write_clip_retrieval(tmp_path / "cr", A, B, parts=2)
    assert run(capsys, *pool_select(tmp_path, tmp_path / "cr", tmp_path / "W", tmp_path / "a.npy"))[0] == 0
    (tmp_path / "W" / "plan.json").write_text("{not json")
    code, _, err = run(capsys, *pool_select(tmp_path, tmp_path / "cr", tmp_path / "W", tmp_path / "a.npy"))
    assert code == 2 and f"{tmp_path / 'W' / 'plan.json'} is not a readable plan" in err
    (tmp_path / "W" / "plan.json").write_text("[]")
    code, _, err = run(capsys, *pool_select(tmp_path, tmp_path / "cr", tmp_path / "W", tmp_path / "a.npy"))
    assert code == 2 and "plan.json is not a plan of this version" in err
    (tmp_path / "W" / "sums.npz").write_bytes(b"x")
    (tmp_path / "W" / "plan.json").unlink()  # replanned: the broken sums are replaced
    assert run(capsys, *pool_select(tmp_path, tmp_path / "cr", tmp_path / "W", tmp_path / "a.npy"))[0] == 0


# --- 12. a Ray address where nothing answers ------------------------------------------------------------------

def test_a_ray_address_with_nothing_listening_fails_at_once(capsys, npy):
    import time

    pytest.importorskip("ray")
    t0 = time.monotonic()
    code, _, err = run(capsys, *select_args(npy, "--engine", "ray", "--ray-address", "127.0.0.1:1",
                                            "--work-dir", npy / "W", "--out", npy / "s.npy"))
    assert code == 2 and "--ray-address: nothing answers at 127.0.0.1:1 within 10 s" in err
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize("address", ["nohost", "host:port", "ray://h"])
def test_a_malformed_ray_address_is_named(address):
    pytest.importorskip("ray")
    from clipcov_fast.scale.engines.ray import check_reachable

    with pytest.raises(ValueError, match="--ray-address must look like HOST:PORT"):
        check_reachable(address)


# --- 17, 18: what a newcomer reads ------------------------------------------------------------------------------

def test_every_help_text_reads_clean(capsys):
    from clipcov_fast.cli import COMMANDS

    for name in [c.__name__.rsplit(".", 1)[1] for c in COMMANDS]:
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        text = capsys.readouterr().out
        assert "%%" not in text and "usage: clipcov " + name in text, name
    with pytest.raises(SystemExit):
        cli.main(["select", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--method", "clipcov (default)"), ("--budget", "proportional (default)"),
                          ("--device", "auto (default"), ("--num-threads", "(default: this process's CPUs)")):
        assert default in text, flag
    assert "--datacomp DIR a DataComp pool" in text and "(the [scale] extra)" in text


@pytest.mark.parametrize("command", ["experiment", "study", "sweep"])
def test_the_run_commands_write_under_runs_not_docs_by_default(command):
    args = cli.build_parser().parse_args([command])
    assert args.out.startswith("runs/")


def test_no_gpu_reads_as_no_gpu_not_as_a_broken_driver():
    from clipcov_fast import gpu

    pytest.importorskip("clipcov_fast._cuda", reason="built without CUDA")
    if gpu._nvidia_driver_loaded():
        pytest.skip("this machine has an NVIDIA driver")
    usable, why = gpu.available()
    assert not usable and why == "this machine has no NVIDIA GPU (no NVIDIA driver is loaded)"
