"""The experiment's report: the time estimate and the statistics, against hand-computed answers."""
import pytest

from clipcov_fast.experiment import report, stats


def test_time_estimate_scales_students_by_steps_and_batch():
    """Hand-computed: data stages 10 + 5 + 20 + 4 s double with their sizes (78 s); a student (3 s train,
    1 s eval) costs 3 x (20 x 16) / (10 x 8) + 1 x 40 / 20 = 14 s; 2 seeds x (2 budgets x 2 methods + full)
    = 10 students, 2 at a time: 70 s. Total 148 s."""
    mine = {"pool": 100, "proxy_pairs": 50, "steps": 10, "batch_size": 8, "test": 20, "proxy_eval": 10}
    run = {"config": mine, "stage_seconds": {"pools": 10, "proxy": 5, "embed+labels": 20, "proxy-eval": 4},
           "students": [{"train_s": 3.0, "eval_s": 1.0}, {"train_s": 3.0, "eval_s": 1.0}]}
    target = {"pool": 200, "proxy_pairs": 100, "steps": 20, "batch_size": 16, "test": 40, "proxy_eval": 20,
              "seeds": (0, 1), "budgets": (0.1, 0.2), "methods": ("random", "clipcov", "full"), "jobs": 2}
    assert report.estimate_seconds(run, target) == pytest.approx(148.0)


def test_paired_t_known_answer():
    """d = (0.1, 0.15, 0.1): mean 0.11667, sd 0.028868, se 1/60; t = 7 on 2 degrees of freedom. The 95%
    critical value for 2 df is 4.302653 (t tables), so the interval is 0.11667 +- 0.071711; with 2 df the
    two-sided p is exactly 1 - t / sqrt(2 + t^2) = 1 - 7 / sqrt(51) = 0.019804."""
    r = stats.paired_t([0.1, 0.15, 0.1])
    assert r["n"] == 3 and r["mean"] == pytest.approx(0.116667, abs=1e-6)
    assert (r["low"], r["high"]) == (pytest.approx(0.116667 - 0.071711, abs=1e-5),
                                     pytest.approx(0.116667 + 0.071711, abs=1e-5))
    assert r["p"] == pytest.approx(1 - 7 / 51 ** 0.5, rel=1e-9)
    assert stats.paired_t([0.2])["low"] is None and stats.paired_t([0.2])["p"] == 1.0
    assert stats.paired_t([0.1, 0.1])["p"] == 0.0 and stats.paired_t([0.0, 0.0])["p"] == 1.0


def test_holm_known_answer():
    """p = (0.01, 0.04, 0.03): sorted 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> running max
    0.03, 0.06, 0.06; back in input order 0.03, 0.06, 0.06. A large p caps at 1."""
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.6, 0.01]) == pytest.approx([0.6, 0.02])
    assert stats.holm([0.7, 0.8]) == pytest.approx([1.0, 1.0])


def test_compare_pairs_by_seed_and_corrects_over_methods():
    """Two methods against clipcov at one budget over seeds 0-2, plus the full pool (budget 1.0). 'a' is
    0.1, 0.15, 0.1 above clipcov (p 0.019804), 'full' is 0.1, 0.1, 0.1 above it (no spread: p 0), 'b' is
    +0.2, -0.2, 0 (mean 0, p 1). Holm over 3: p 0 -> 0, 0.019804 x 2 = 0.039608, 1 -> 1: a and full are
    resolved at 95%, b is not."""
    ref = {0: 0.5, 1: 0.4, 2: 0.6}
    students = [{"method": "clipcov", "budget": 0.1, "seed": s, "top1": v} for s, v in ref.items()]
    students += [{"method": "a", "budget": 0.1, "seed": s, "top1": ref[s] + d} for s, d in zip(ref, (.1, .15, .1))]
    students += [{"method": "b", "budget": 0.1, "seed": s, "top1": ref[s] + d} for s, d in zip(ref, (.2, -.2, 0))]
    students += [{"method": "full", "budget": 1.0, "seed": s, "top1": ref[s] + 0.1} for s in ref]
    students.append({"method": "a", "budget": 0.1, "seed": 7, "top1": 0.0})  # no clipcov seed 7: not paired
    got = {r["method"]: r for r in stats.compare(students)}
    assert got["a"]["n"] == 3 and got["a"]["p_holm"] == pytest.approx(2 * (1 - 7 / 51 ** 0.5))
    assert got["full"]["p_holm"] == 0.0 and got["b"]["p_holm"] == pytest.approx(1.0)
    assert [got[m]["resolved"] for m in ("a", "b", "full")] == [True, False, True]


def test_the_headline_reads_the_paired_comparison():
    """The same students as above (with the fields summarize reads): clipcov 50.0 ± 10.0 (0.5, 0.4, 0.6), random 61.7 ± 7.6 (0.6, 0.55, 0.7),
    'random' +11.7 [+4.5, +18.8] resolved (the 'a' case: 0.116667 +- 0.071711, Holm over 2 methods), the
    full pool +10.0 with no spread (interval +10.0 to +10.0, p 0: resolved)."""
    def student(method, budget, seed, top1):
        return {"method": method, "budget": budget, "seed": seed, "top1": top1, "class_counts": [1],
                "fractions": dict.fromkeys(report.KINDS, 0.25), "distinct_images": 1, "pairs": 10}

    ref = {0: 0.5, 1: 0.4, 2: 0.6}
    students = [student("clipcov", 0.1, s, v) for s, v in ref.items()]
    students += [student("random", 0.1, s, ref[s] + d) for s, d in zip(ref, (.1, .15, .1))]
    students += [student("full", 1.0, s, ref[s] + 0.1) for s in ref]
    lines = report.headline({"students": students}).splitlines()
    assert lines[0].startswith("10% subsets")
    assert lines[1].split() == ["random", "61.7", "±", "7.6", "+11.7", "[+4.5,", "+18.8]", "resolved", "above"]
    assert lines[2].split() == ["full", "pool", "60.0", "±", "10.0", "+10.0", "[+10.0,", "+10.0]", "resolved", "above"]
    assert lines[3].split()[:5] == ["ClipCov", "(proportional)", "50.0", "±", "10.0"] and "reference" in lines[3]
