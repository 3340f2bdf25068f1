"""The teacher screen beside the best student (models/screen.py) and the second data set's table
(models/cross_data.py), from synthetic rows with known answers."""

import pytest

pytest.importorskip("scipy")

from ppg_stream.models.cross_data import activity, cross_data_section  # noqa: E402
from ppg_stream.models.results import Results  # noqa: E402
from ppg_stream.models.screen import latest_screen_rows, screen_summary  # noqa: E402


def _student(strategy, errors, seed=0):
    return {"key": f"{strategy}|k12|s{seed}", "strategy": strategy, "family": "resnet", "width": 16, "depth": 2, "params": 3489,
            "teacher": None if strategy == "scratch" else "T1", "epochs": 30, "seed": seed, "folds": 12, "mae": 1.0,
            "mae_untracked": sum(errors) / len(errors),
            "per_fold": [{"held_out": [f"DATA_{i + 1:02d}"], "windows": 100, "mae": 1.0, "mae_untracked": e} for i, e in enumerate(errors)]}


def _screen(fold, mae, teacher="R32x3+fb", train_s=60.0):
    return {"teacher": teacher, "fold": fold, "held_out": [f"DATA_{fold + 1:02d}"], "windows": 100, "params": 19393, "epochs": 30,
            "synthetic": 10, "mae": mae, "mae_untracked": mae, "mae_untracked_raw": 4.0, "train_s": train_s, "folds": 12, "seed": 0}


def test_a_teacher_is_set_beside_the_best_student_on_the_same_subjects():
    rows = [_student("scratch", [4.0] * 12), _student("dkd", [3.0] * 11 + [9.0])]
    screen = [_screen(f, 1.0) for f in range(12)] + [_screen(0, 5.0, train_s=1.0)]  # a rerun of fold 0, later in the file, replaces it
    results = Results(rows, latest_screen_rows(screen))
    (item,) = screen_summary(results)
    assert item["folds"] == 12 and item["student"].startswith("dkd resnet 16x2")  # pooled 3.5 (one bad subject) below scratch's 4.0
    assert item["student_mae"] == pytest.approx(3.5)
    assert item["mae"] == pytest.approx((5.0 + 11 * 1.0) / 12)  # fold 0's later row (5.0) replaced its earlier one
    assert item["train_s"] == pytest.approx(1.0 + 11 * 60.0)


def test_best_student_and_reduction_are_computed_on_the_subjects_scored():
    rows = [_student("scratch", [4.0] * 12), _student("dkd", [2.0] * 12)]
    results = Results(rows, latest_screen_rows([_screen(0, 1.0), _screen(1, 1.0), _screen(2, 1.0)]))
    (item,) = screen_summary(results)
    assert item["student"].startswith("dkd resnet 16x2") and item["student_mae"] == pytest.approx(2.0)
    assert item["reduction"] == pytest.approx(0.5) and item["subjects"] == ["DATA_01", "DATA_02", "DATA_03"]
    assert item["difference"].mean == pytest.approx(-1.0) and item["raw"] == pytest.approx(4.0)
    assert item["train_s"] == pytest.approx(180.0)


def test_cross_data_table_pools_windows_per_activity():
    rows = [{"model": "m", "recording": "s2_walk", "activity": activity("s2_walk"), "windows": 100, "mae": 2.0, "mae_untracked": 4.0},
            {"model": "m", "recording": "s3_walk", "activity": "walk", "windows": 300, "mae": 6.0, "mae_untracked": 8.0},
            {"model": "m", "recording": "s3_run", "activity": "run", "windows": 100, "mae": 1.0, "mae_untracked": 1.0}]
    text = cross_data_section(rows)
    assert activity("s2_high_resistance_bike") == "high_resistance_bike"
    assert "| m | 4.20 / 5.80 | 1.00 / 1.00 | 5.00 / 7.00 |" in text
    assert cross_data_section([]) == ""


def test_students_of_another_teacher_are_compared_with_scratch_and_the_reference_teacher_over_subjects():
    from ppg_stream.models.report import other_teacher_section

    rows = [_student("scratch", [4.0 + 0.1 * i for i in range(12)]), _student("dkd", [3.5 + 0.1 * i for i in range(12)]),
            _student("soft", [3.9 + 0.1 * i for i in range(12)])]
    context = _student("dkd", [3.0 + 0.1 * i for i in range(12)])
    rows.append({**context, "key": "dkd|ctx", "teacher": "R32x3+fb"})
    results = Results(rows)
    assert results.reference_teacher == "T1"
    text = other_teacher_section(results)
    assert "| R32x3+fb | resnet | 16x2 (3,489) | dkd | 3.55 (1) | **−1.00 [−1.00, −1.00]**, 12/12" in text
    assert "**−0.50 [−0.50, −0.50]**, 12/12" in text  # against DKD from T1
    assert other_teacher_section(Results(rows[:3])) == ""
