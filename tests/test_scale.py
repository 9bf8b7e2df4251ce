"""Scale-out: pools (DataComp, clip-retrieval, .npy pairs), the plan/work/merge protocol and its local
engine give select()'s picks exactly; bad input is refused before anything is written."""
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="the scale tests read parquet: pip install 'clipcov-fast[scale]'")

import clipcov_fast as cc  # noqa: E402
from clipcov_fast import cli  # noqa: E402
from clipcov_fast.pipeline.sources import open_pool  # noqa: E402
from clipcov_fast.pipeline.sources.pool import ArrayPool  # noqa: E402
from clipcov_fast.pipeline.subsets import datacomp_uids  # noqa: E402
from clipcov_fast.scale import select_pool  # noqa: E402
from clipcov_fast.scale.plan import load_plan  # noqa: E402
from conftest import make_pool  # noqa: E402
from scale_util import write_clip_retrieval, write_datacomp  # noqa: E402

N, D = 1500, 12


@pytest.fixture(scope="module")
def arrays():
    A, B, y = make_pool(N, D, classes=25, zipf=0.8, seed=3)
    return A.astype(np.float16), B.astype(np.float16), y


@pytest.fixture(scope="module")
def datacomp(tmp_path_factory, arrays):
    A, B, y = arrays
    folder = tmp_path_factory.mktemp("dc")
    uids = write_datacomp(folder, A, B, parts=3)
    return folder, uids


def same(sel, ref):
    np.testing.assert_array_equal(sel.indices, ref.indices)
    np.testing.assert_array_equal(sel.gains, ref.gains)  # bit-identical: the merge compares gains


@pytest.mark.parametrize("objective", ["clipcov", "xcov"])
@pytest.mark.parametrize("budget", ["proportional", "global"])
def test_local_engine_matches_select_on_datacomp(tmp_path, arrays, datacomp, objective, budget, monkeypatch):
    from clipcov_fast.scale import plan as plan_mod

    monkeypatch.setattr(plan_mod, "BLOCK_ROWS", 128)  # shards of 500 rows read in blocks
    A, B, y = arrays
    ref = cc.select(A, B, 0.1, labels=y, objective=objective, budget=budget)
    pool = open_pool(datacomp=datacomp[0])
    sel = select_pool(pool, 0.1, labels=y, objective=objective, budget=budget, engine="local",
                      work_dir=tmp_path / "w", workers=2, batch_rows=200)
    same(sel, ref)
    assert len(load_plan(tmp_path / "w")["tasks"]) > 2  # several jobs really ran


@pytest.mark.parametrize("budget", ["proportional", "global"])
def test_clip_retrieval_with_class_prompts_matches_select(tmp_path, arrays, budget):
    A, B, _ = arrays
    write_clip_retrieval(tmp_path / "cr", A, B, parts=4)
    T = np.random.default_rng(0).normal(size=(9, D))
    ref = cc.select(A, B, 0.08, class_emb=T, budget=budget)
    pool = open_pool(clip_retrieval=tmp_path / "cr")
    assert pool.key_name == "uid" and pool.n == N
    same(select_pool(pool, 0.08, class_emb=T, budget=budget, engine="local", work_dir=tmp_path / "w",
                     workers=1, batch_rows=300), ref)
    same(select_pool(pool, 0.08, class_emb=T, budget=budget), ref)  # in-process on the concatenated pool


@pytest.mark.parametrize("budget", ["proportional", "global"])
def test_npy_rows_read_in_place_or_copied_give_the_same_picks(tmp_path, arrays, datacomp, budget):
    A, B, y = arrays
    write_clip_retrieval(tmp_path / "cr", A, B, parts=3)
    ref = cc.select(A, B, 0.1, labels=y, budget=budget)
    pool = open_pool(clip_retrieval=tmp_path / "cr")
    for copy in (None, True):
        w = tmp_path / f"w-{copy}"
        same(select_pool(pool, 0.1, labels=y, budget=budget, engine="local", work_dir=w, workers=2,
                         batch_rows=200, copy_rows=copy), ref)
        copied = load_plan(w)["rows"]["copied"]
        assert copied == bool(copy)
        assert any((w / "buckets").glob("*.img")) == copied  # in place: only indices in the buckets
    with pytest.raises(ValueError, match="npy"):
        select_pool(open_pool(datacomp=datacomp[0]), 0.1, labels=y, engine="local", work_dir=tmp_path / "dc",
                    copy_rows=False)
    # a pool file replaced between plan and work is named, not read
    from clipcov_fast.scale import plan as plan_mod, work

    plan_mod.plan(pool, tmp_path / "later", 0.1, labels=y)
    jobs = work.task_jobs(load_plan(tmp_path / "later"))
    txt = tmp_path / "cr" / "text_emb" / "text_emb_2.npy"
    txt.write_bytes(txt.read_bytes()[:-100])  # truncated: the header promises more rows than it holds
    with pytest.raises(ValueError, match="text_emb_2.npy changed after the plan"):
        for job in jobs:
            work.run_job(tmp_path / "later", job)
    np.save(tmp_path / "cr" / "img_emb" / "img_emb_1.npy", A[:10])
    with pytest.raises(ValueError, match="(text_emb_2|img_emb_1).npy changed after the plan.*plan again"):
        for job in jobs:
            work.run_job(tmp_path / "later", job)


def test_global_budget_extends_classes_past_their_guess(tmp_path):
    # captions far noisier outside class 3: the global greedy takes many more picks there than its share
    A, B, y = make_pool(1200, 8, classes=6, seed=5)
    other = y != 3
    B[other] = A[other] + 3 * np.random.default_rng(0).normal(size=(int(other.sum()), 8))
    ref = cc.select(A, B, 300, labels=y, budget="global")
    assert np.bincount(y[ref.indices], minlength=6)[3] > 2 * 300 * np.mean(y == 3)
    work = tmp_path / "w"
    same(select_pool(ArrayPool(A, B), 300, labels=y, budget="global", engine="local", work_dir=work,
                     workers=1, batch_rows=100), ref)
    assert any(p.name.startswith("class") for p in (work / "picks").iterdir())  # an extension ran


@pytest.mark.parametrize("objective", ["clipcov", "xcov"])
def test_global_budget_from_one_pick_per_class_guesses(tmp_path, arrays, monkeypatch, objective):
    from clipcov_fast.scale import plan as plan_mod

    A, B, y = arrays
    monkeypatch.setattr(plan_mod, "targets_for", lambda counts, quotas, k, budget: np.minimum(counts, 1))
    ref = cc.select(A, B, 0.1, labels=y, objective=objective, budget="global")
    same(select_pool(ArrayPool(A, B), 0.1, labels=y, objective=objective, budget="global", engine="local",
                     work_dir=tmp_path, workers=2, batch_rows=200), ref)
    assert len(list((tmp_path / "picks").glob("class*"))) >= 20  # most classes were extended


def test_work_command_resumes_and_a_killed_job_changes_nothing(tmp_path, arrays):
    A, B, y = arrays
    np.save(tmp_path / "img.npy", A)
    np.save(tmp_path / "txt.npy", B)
    np.save(tmp_path / "labels.npy", y)
    ref = cc.select(A, B, 0.1, labels=y)
    w = tmp_path / "w"
    pool = ArrayPool(tmp_path / "img.npy", tmp_path / "txt.npy")
    from clipcov_fast.scale import plan as plan_mod
    p = plan_mod.plan(pool, w, 0.1, labels=y, batch_rows=150)
    # a work step killed mid-run: half the jobs done, one job's file left half written
    code = ("import os, sys; from clipcov_fast.scale import work; p = work.load_plan(sys.argv[1]);"
            "jobs = work.task_jobs(p); [work.run_job(sys.argv[1], j) for j in jobs[:len(jobs) // 2]];"
            "os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code, str(w)])
    assert proc.returncode == -9
    done = sorted((w / "picks").glob("*.npz"))
    assert 0 < len(done) < len(p["tasks"])
    (w / "picks" / ".task999.npz.tmp").write_bytes(b"partial")  # what an interrupted atomic write leaves
    assert cli.main(["work", "--work-dir", str(w), "--shard", "0/2"]) == 0
    assert cli.main(["work", "--work-dir", str(w), "--shard", "1/2"]) == 0
    out = tmp_path / "s.npy"
    assert cli.main(["select", "--img", str(tmp_path / "img.npy"), "--txt", str(tmp_path / "txt.npy"),
                     "--labels", str(tmp_path / "labels.npy"), "--k", "10%", "--engine", "local",
                     "--work-dir", str(w), "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), ref.indices)


def test_rerun_with_other_arguments_is_refused(tmp_path, arrays):
    A, B, y = arrays
    select_pool(ArrayPool(A, B), 0.1, labels=y, engine="local", work_dir=tmp_path, workers=1)
    with pytest.raises(ValueError, match="other arguments.*k"):
        select_pool(ArrayPool(A, B), 0.2, labels=y, engine="local", work_dir=tmp_path, workers=1)
    with pytest.raises(ValueError, match="labels"):
        select_pool(ArrayPool(A, B), 0.1, labels=(y + 1) % 25, engine="local", work_dir=tmp_path, workers=1)


def test_cli_datacomp_to_uid_file_and_parquet(tmp_path, arrays, datacomp):
    A, B, y = arrays
    folder, uids = datacomp
    np.save(tmp_path / "labels.npy", y)
    ref = cc.select(A, B, 0.1, labels=y)
    out = tmp_path / "subset.npy"
    assert cli.main(["select", "--datacomp", str(folder), "--labels", str(tmp_path / "labels.npy"), "--k", "10%",
                     "--engine", "local", "--work-dir", str(tmp_path / "w"), "--format", "datacomp",
                     "--out", str(out)]) == 0
    got = np.load(out)
    assert got.dtype == np.dtype("u8,u8") and len(got) == len(ref.indices)
    np.testing.assert_array_equal(np.sort(got), got)  # sorted, as the resharder's searchsorted needs
    pool_uids = np.sort(np.array([(int(u[:16], 16), int(u[16:], 16)) for u in uids], dtype="u8,u8"))
    pos = np.searchsorted(pool_uids, got)
    assert np.all(pool_uids[pos] == got)  # every uid found, the way DataComp's resharder looks them up
    want = np.sort(np.array([(int(uids[i][:16], 16), int(uids[i][16:], 16)) for i in ref.indices], dtype="u8,u8"))
    np.testing.assert_array_equal(got, want)
    import pyarrow.parquet as pq
    assert cli.main(["select", "--datacomp", str(folder), "--labels", str(tmp_path / "labels.npy"), "--k", "10%",
                     "--out", str(tmp_path / "s.parquet")]) == 0
    t = pq.read_table(tmp_path / "s.parquet").to_pydict()
    assert t["uid"] == [uids[i] for i in ref.indices] and t["rank"] == list(range(len(ref.indices)))
    assert t["caption"][0] == f"caption {ref.indices[0]}" and t["class"] == y[ref.indices].tolist()
    np.testing.assert_array_equal(t["gain"], ref.gains)


def test_labels_command_on_a_clip_retrieval_pool(tmp_path, arrays):
    A, B, _ = arrays
    write_clip_retrieval(tmp_path / "cr", A, B, parts=2, key=None)
    T = np.random.default_rng(1).normal(size=(5, D)).astype(np.float32)
    np.save(tmp_path / "T.npy", T)
    assert cli.main(["labels", "--clip-retrieval", str(tmp_path / "cr"), "--class-emb", str(tmp_path / "T.npy"),
                     "--out", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.argmax(A.astype(np.float32) @ T.T, axis=1))
    assert open_pool(clip_retrieval=tmp_path / "cr").key_name == "image_path"


def test_uid_pairs_match_python_int_parsing():
    from clipcov_fast.pipeline.sources.pool import check_unique_uids, uid_pairs
    from scale_util import uids_for

    uids = uids_for(500, seed=4) + ["FFFFFFFFFFFFFFFF0000000000000001", "0" * 32]
    got = uid_pairs(uids)
    assert [(int(a), int(b)) for a, b in got] == [(int(u[:16], 16), int(u[16:], 16)) for u in uids]
    check_unique_uids([got[:200], got[200:]], ["a", "b"])  # all distinct: no error
    with pytest.raises(ValueError, match=r"^b: duplicate uid '0{32}' in row 1 \(also in a\)"):
        check_unique_uids([got[[-1, 3]], got[[5, -1]], got[[-1]]], ["a", "b", "c"])  # the first repeat


def test_bad_pools_name_the_file(tmp_path, arrays):
    A, B, y = arrays
    def fresh(name, **kw):
        folder = tmp_path / name
        write_datacomp(folder, A[:300], B[:300], parts=2, **kw)
        return folder
    f = fresh("missing")
    (f / "00000001.npz").unlink()
    with pytest.raises(FileNotFoundError, match="00000001.npz"):
        open_pool(datacomp=f)
    f = fresh("truncated")
    data = (f / "00000001.npz").read_bytes()
    (f / "00000001.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="00000001.npz.*truncated"):
        open_pool(datacomp=f)
    f = fresh("keys", arch="l14")
    with pytest.raises(ValueError, match="00000000.npz: has no array 'b32_img'"):
        open_pool(datacomp=f)
    f = fresh("rows")
    np.savez(f / "00000001.npz", b32_img=A[:10].astype(np.float16), b32_txt=B[:10].astype(np.float16))
    with pytest.raises(ValueError, match="00000001.npz: has 10 rows, but .*00000001.parquet has 150"):
        open_pool(datacomp=f)
    f = fresh("width")
    np.savez(f / "00000001.npz", b32_img=np.ones((150, 5), np.float16), b32_txt=np.ones((150, 5), np.float16))
    with pytest.raises(ValueError, match="00000001.npz: embeddings have width 5"):
        open_pool(datacomp=f)
    from scale_util import uids_for
    bad = uids_for(300)
    bad[7] = "xyz"
    with pytest.raises(ValueError, match="00000000.parquet: uid 'xyz' in row 7 is not 32 hex"):
        open_pool(datacomp=fresh("uid", uids=bad))
    dup = uids_for(300)
    dup[200] = dup[3]
    with pytest.raises(ValueError, match="00000001.parquet: duplicate uid"):
        open_pool(datacomp=fresh("dup", uids=dup))
    np.save(tmp_path / "short.npy", y[:10])
    w = tmp_path / "w"
    assert cli.main(["select", "--datacomp", str(fresh("ok")), "--labels", str(tmp_path / "short.npy"),
                     "--k", "10", "--engine", "local", "--work-dir", str(w), "--out", str(tmp_path / "o.npy")]) == 2
    assert not w.exists() and not (tmp_path / "o.npy").exists()  # nothing written
    np.save(tmp_path / "img.npy", A[:100])
    with open(tmp_path / "img.npy", "r+b") as fh:
        fh.truncate(2000)
    with pytest.raises(ValueError, match="img.npy: truncated"):
        open_pool(img=tmp_path / "img.npy", txt=tmp_path / "img.npy")


def test_a_class_too_big_for_memory_is_named_by_plan(tmp_path, arrays):
    A, B, y = arrays
    big = int(np.bincount(y).argmax())
    with pytest.raises(ValueError, match=f"class {big} has {np.bincount(y)[big]} rows; its work step needs"):
        select_pool(ArrayPool(A, B), 0.1, labels=y, engine="local", work_dir=tmp_path / "w", memory_limit=10_000)
    assert not (tmp_path / "w" / "plan.json").exists()
