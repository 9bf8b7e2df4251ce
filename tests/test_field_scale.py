"""The field's selectors on every source and engine: in process and on the local engine (and Ray) over
DataComp and clip-retrieval pools, the same picks; work directories resume and refuse like ClipCov's."""
import json

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="the pools are parquet: pip install 'clipcov-fast[scale]'")

from clipcov_fast import cli, inputs  # noqa: E402
from clipcov_fast.baselines import classic, datacomp, negclip  # noqa: E402
from clipcov_fast.scale import scores  # noqa: E402
from conftest import make_pool  # noqa: E402
from scale_util import write_clip_retrieval, write_datacomp  # noqa: E402

N, D = 900, 10
CHUNK = 128  # rows of a chunk while a test shrinks them (a job is two chunks): several jobs on a small pool


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    root = tmp_path_factory.mktemp("field")
    A, B, _ = make_pool(N, D, classes=5, seed=8)
    A, B = A.astype(np.float16), B.astype(np.float16)
    write_datacomp(root / "dc", A, B, parts=3)
    write_clip_retrieval(root / "cr", A, B, parts=2)
    np.save(root / "target.npy", A[:30].astype(np.float32) + 0.05)
    # captions are "caption {i}": entries that match some of them, with counts above and below t
    (root / "entries.txt").write_text("caption\ncaption 1\ncaption 12\ncaption 7\n")
    return root


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of CHUNK rows everywhere, and jobs of two chunks: the pool spans several jobs."""
    for mod in (inputs, classic, negclip, datacomp):
        monkeypatch.setattr(mod, "CHUNK_ROWS", CHUNK)
    monkeypatch.setattr(scores, "JOB_ROWS", 2 * CHUNK)


CASES = {
    "negclip_loss": ["--k", "10%", "--batch-size", "200", "--repeats", "3"],
    "normsim": ["--k", "10%", "--target", "{t}"],
    "normsim_inf": ["--k", "10%", "--target", "{t}", "--p", "inf"],
    "negclip_normsim": ["--k", "5%", "--target", "{t}", "--batch-size", "300", "--repeats", "2"],
    "image_based": ["--target", "{t}", "--n-clusters", "12"],
    "image_based_k": ["--k", "10%", "--target", "{t}", "--n-clusters", "12"],
    "image_based_clip_score": ["--k", "4%", "--target", "{t}", "--n-clusters", "12", "--fraction", "0.5"],
    "metaclip": ["--entries", "{e}", "--max-matches", "3"],
    "metaclip_k": ["--k", "10%", "--entries", "{e}", "--max-matches", "3"],
    "clip_score_fraction": ["--fraction", "0.3"],
    "clip_score_threshold": ["--k", "50", "--score-threshold", "0.6"],
}


def argv(pools, source, case, out, *extra):
    method = case.rsplit("_", 1)[0] if case.endswith(("_k", "_inf", "_fraction", "_threshold")) else case
    flags = [f.format(t=pools / "target.npy", e=pools / "entries.txt") for f in CASES[case]]
    return ["select", f"--{source.replace('_', '-')}", str(pools / ("dc" if source == "datacomp" else "cr")),
            "--method", method, *flags, "--out", str(out), *extra]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("source", ["datacomp", "clip_retrieval"])
def test_in_process_and_local_engine_pick_the_same(pools, tmp_path, small_chunks, source, case):
    assert cli.main(argv(pools, source, case, tmp_path / "in.npy")) == 0
    assert cli.main(argv(pools, source, case, tmp_path / "local.npy", "--engine", "local", "--workers", "1",
                         "--work-dir", str(tmp_path / "w"))) == 0
    want = np.load(tmp_path / "in.npy")
    assert len(want) > 0 and len(set(want.tolist())) == len(want)
    np.testing.assert_array_equal(np.load(tmp_path / "local.npy"), want)
    plan = scores.load_plan(tmp_path / "w")
    chunks = len([j for j in plan["jobs"] if "rows" in j[1]])
    assert chunks == (4 if plan["method"] in scores.CHUNKS else 0)  # 900 rows in jobs of 256


def test_several_jobs_really_ran(pools, tmp_path, small_chunks):
    assert cli.main(argv(pools, "datacomp", "negclip_normsim", tmp_path / "s.npy", "--engine", "local",
                         "--workers", "1", "--work-dir", str(tmp_path / "w"))) == 0
    plan = scores.load_plan(tmp_path / "w")
    kinds = [("rows" in spec, "repeat" in spec) for _, spec in plan["jobs"]]
    assert kinds.count((True, False)) == 4 and kinds.count((False, True)) == 2 * 3  # 4 chunks, 2 x 3 batches
    assert plan["rows"]["copied"]  # npz shards: the batches read rows from the work directory's copy


@pytest.mark.parametrize("source", ["datacomp", "clip_retrieval"])
def test_worker_processes_pick_the_same(pools, tmp_path, source):
    """Two spawned workers (no monkeypatch reaches them: the real chunk sizes)."""
    for case in ("negclip_loss", "image_based_clip_score", "metaclip_k"):
        assert cli.main(argv(pools, source, case, tmp_path / f"{case}.npy")) == 0
        assert cli.main(argv(pools, source, case, tmp_path / f"{case}-l.npy", "--engine", "local", "--workers", "2",
                             "--work-dir", str(tmp_path / f"w-{case}"))) == 0
        np.testing.assert_array_equal(np.load(tmp_path / f"{case}-l.npy"), np.load(tmp_path / f"{case}.npy"))


def test_datacomp_uid_file_and_parquet_with_scores(pools, tmp_path):
    import pyarrow.parquet as pq

    assert cli.main(argv(pools, "datacomp", "normsim", tmp_path / "u.npy", "--format", "datacomp", "--engine",
                         "local", "--workers", "1", "--work-dir", str(tmp_path / "w"))) == 0
    uids = np.load(tmp_path / "u.npy")
    assert uids.dtype == np.dtype("u8,u8") and len(uids) == 90 and np.array_equal(uids, np.sort(uids))
    assert cli.main(argv(pools, "datacomp", "normsim", tmp_path / "s.parquet")) == 0
    t = pq.read_table(tmp_path / "s.parquet").to_pydict()
    assert len(t["uid"]) == 90 and t["score"] == sorted(t["score"], reverse=True)


def test_a_killed_run_resumes_and_a_broken_scores_file_is_recomputed(pools, tmp_path, small_chunks):
    args = argv(pools, "clip_retrieval", "negclip_loss", tmp_path / "a.npy", "--engine", "local", "--workers", "1",
                "--work-dir", str(tmp_path / "w"))
    assert cli.main(args) == 0
    first = np.load(tmp_path / "a.npy")
    done = sorted((tmp_path / "w" / "scores").glob("*.npz"))
    done[0].unlink()  # as if killed before this job
    done[1].write_bytes(b"garbage")
    assert cli.main(args) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), first)


def test_a_score_work_directory_refuses_other_arguments_another_kind_and_changed_files(pools, tmp_path, capsys):
    import shutil

    shutil.copytree(pools / "cr", tmp_path / "cr")
    base = ["select", "--clip-retrieval", str(tmp_path / "cr"), "--method", "normsim", "--k", "10%", "--target",
            str(pools / "target.npy"), "--engine", "local", "--workers", "1", "--work-dir", str(tmp_path / "w"),
            "--out", str(tmp_path / "a.npy")]
    assert cli.main(base) == 0
    capsys.readouterr()
    assert cli.main(base + ["--p", "inf"]) == 2
    assert "they differ in p" in capsys.readouterr().err
    clipcov = ["select", "--clip-retrieval", str(tmp_path / "cr"), "--k", "5", "--engine", "local", "--workers", "1",
               "--work-dir", str(tmp_path / "w"), "--out", str(tmp_path / "c.npy")]
    assert cli.main(clipcov) == 2 and "holds a plan of a score-based selector" in capsys.readouterr().err
    f = tmp_path / "cr" / "img_emb" / "img_emb_1.npy"
    np.save(f, np.load(f)[::-1])
    assert cli.main(base) == 2 and "img_emb_1.npy changed" in capsys.readouterr().err


def test_a_method_that_lacks_its_input_stops_before_writing(pools, tmp_path, capsys):
    out = tmp_path / "x.npy"
    for extra, needs in ((["--method", "normsim", "--k", "5"], "--target"),
                         (["--method", "metaclip"], "--entries"),
                         (["--method", "negclip_loss"], "--k is required")):
        for engine in ("inprocess", "local"):
            code = cli.main(["select", "--datacomp", str(pools / "dc"), *extra, "--engine", engine, "--work-dir",
                             str(tmp_path / "w"), "--out", str(out)])
            assert code == 2 and needs in capsys.readouterr().err and not out.exists()
    np.save(tmp_path / "img.npy", np.ones((5, 3), np.float32))
    assert cli.main(["select", "--img", str(tmp_path / "img.npy"), "--txt", str(tmp_path / "img.npy"), "--method",
                     "metaclip", "--entries", str(pools / "entries.txt"), "--out", str(out)]) == 2
    assert "needs captions" in capsys.readouterr().err


def test_ray_engine_picks_the_same(pools, tmp_path):
    pytest.importorskip("ray")
    for case in ("negclip_loss", "image_based_clip_score", "metaclip_k"):
        assert cli.main(argv(pools, "datacomp", case, tmp_path / f"{case}.npy")) == 0
        assert cli.main(argv(pools, "datacomp", case, tmp_path / f"{case}-ray.npy", "--engine", "ray", "--work-dir",
                             str(tmp_path / f"w-{case}"))) == 0
        np.testing.assert_array_equal(np.load(tmp_path / f"{case}-ray.npy"), np.load(tmp_path / f"{case}.npy"))
    summary = json.loads((tmp_path / "negclip_loss-ray.json").read_text())
    assert summary["method"] == "negclip_loss" and summary["k"] == 90


def emb_folder(root, A, B):
    """An embedding folder of a table source (clipcov embed's layout): captions come from pairs.tsv."""
    emb = root / "emb"
    emb.mkdir(parents=True)
    np.save(emb / "img.npy", A)
    np.save(emb / "txt.npy", B)
    np.save(emb / "rows.npy", np.arange(len(A)))
    (root / "pairs.tsv").write_text("filepath\ttitle\n" + "".join(f"img/{i}.png\tcaption {i}\n" for i in range(len(A))))
    (emb / "manifest.json").write_text(json.dumps({"data": {"kind": "table", "path": str(root / "pairs.tsv"),
                                                            "img_key": "filepath", "caption_key": "title",
                                                            "sep": "\t"}}))
    return emb


@pytest.mark.parametrize("case", list(CASES))
def test_every_selector_on_an_embedding_folder_picks_as_on_the_arrays(pools, tmp_path, case):
    """--emb (captions from the source table) against --img/--txt of the same arrays (a .parquet out, so
    metaclip's captions are needed only on the --emb side)."""
    A, B, _ = make_pool(N, D, classes=5, seed=8)
    A, B = A.astype(np.float16), B.astype(np.float16)
    emb = emb_folder(tmp_path, A, B)
    args = argv(pools, "datacomp", case, tmp_path / "emb.tsv")
    flags = args[args.index("--method"):args.index("--out")]
    assert cli.main(["select", "--emb", str(emb), *flags, "--out", str(tmp_path / "emb.tsv")]) == 0
    picks = np.load(tmp_path / "emb.npy")
    lines = (tmp_path / "emb.tsv").read_text().splitlines()[1:]
    assert [int(x.split("\t")[1].split()[1]) for x in lines] == sorted(picks.tolist())  # the chosen table rows
    assert cli.main(["select", "--datacomp", str(pools / "dc"), *flags, "--out", str(tmp_path / "dc.npy")]) == 0
    np.testing.assert_array_equal(picks, np.load(tmp_path / "dc.npy"))  # the DataComp pool holds the same pairs
