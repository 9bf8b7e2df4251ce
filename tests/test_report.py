"""The experiment's report: the time estimate and the statistics, against hand-computed answers."""
import pytest

from clipcov_fast.experiment import report


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
