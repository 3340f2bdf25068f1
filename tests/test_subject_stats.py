"""Statistics over subjects (models/subjects.py): Holm against a hand-worked example, the paired
bootstrap on synthetic subjects with known answers, and what a design can detect."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from ppg_stream.models.subjects import (  # noqa: E402
    bootstrap_difference, holm, holm_family, per_subject, subject_difference, subject_errors,
)


def test_holm_matches_a_hand_worked_example():
    # p sorted: 0.005·4 = 0.02; 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 → monotone: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1 and monotone
    assert holm([0.02]) == pytest.approx([0.02])  # one test: unchanged


def _subjects(values, windows=100):
    return {f"S{i:02d}": (float(v), windows) for i, v in enumerate(values)}


def test_a_constant_per_subject_difference_is_recovered_with_a_tight_interval():
    base = np.linspace(2.0, 6.0, 12)
    d = bootstrap_difference(_subjects(base - 0.5), _subjects(base))
    assert d.mean == pytest.approx(-0.5)
    assert d.low == pytest.approx(-0.5) and d.high == pytest.approx(-0.5)
    assert d.better == 12 and d.subjects == 12 and d.outcome == "lower"


def test_one_subject_carrying_the_whole_gain_is_not_a_win():
    base = np.full(12, 3.0)
    a = base.copy()
    a[9] -= 8.0  # the whole gain is one subject (like DATA_10), the others slightly worse
    a[:9] += 0.1
    a[10:] += 0.1
    d = bootstrap_difference(_subjects(a), _subjects(base))
    assert d.mean < 0 and d.better == 1
    assert d.low < 0 < d.high and d.outcome == "tie"


def test_bootstrap_is_window_weighted_and_deterministic():
    a = {"S1": (1.0, 300), "S2": (3.0, 100), "S3": (2.0, 100)}
    b = {"S1": (2.0, 300), "S2": (2.0, 100), "S3": (2.0, 100)}
    d = bootstrap_difference(a, b)
    assert d.mean == pytest.approx((300 * -1.0 + 100 * 1.0) / 500)
    assert bootstrap_difference(a, b) == d


def test_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    covered = 0
    trials = 200
    for _ in range(trials):
        base = rng.uniform(2, 6, 12)
        a = base + 0.3 + rng.normal(0, 0.5, 12)
        d = bootstrap_difference(_subjects(a), _subjects(base), n_boot=1000)
        covered += d.low <= 0.3 <= d.high
    assert 0.85 <= covered / trials <= 0.99  # the percentile bootstrap with 12 subjects runs a little narrow


def test_holm_family_adjusts_every_comparison_and_can_turn_a_win_into_a_tie():
    rng = np.random.default_rng(0)
    base = rng.uniform(2, 6, 12)
    strong = bootstrap_difference(_subjects(base - 1.0 + rng.normal(0, 0.2, 12)), _subjects(base))
    weak = bootstrap_difference(_subjects(base - 0.25 + rng.normal(0, 0.35, 12)), _subjects(base))
    assert weak.p < 0.05
    family = holm_family({"strong": strong, "weak": weak, **{f"null{i}": bootstrap_difference(_subjects(base + rng.normal(0, 0.3, 12)), _subjects(base)) for i in range(8)}, "none": None})
    assert family["none"] is None
    assert family["strong"].outcome == "lower"
    assert family["weak"].p_adjusted >= weak.p
    assert family["weak"].p_adjusted == pytest.approx(min(1.0, max(family["weak"].p_adjusted, weak.p)))
    assert strong.mdd(10) > strong.mdd(1) > 0


def _loso_run(seed, values, windows=100):
    return {"seed": seed, "folds": 12, "per_fold": [{"held_out": [f"S{i:02d}"], "windows": windows, "mae": float(v), "mae_untracked": float(v) + 1}
                                                       for i, v in enumerate(values)]}


def test_loso_rows_give_per_subject_errors_and_seeds_are_averaged_per_subject():
    r0, r1 = _loso_run(0, np.arange(12.0)), _loso_run(1, np.arange(12.0) + 2)
    assert subject_errors(r0)["S03"] == (3.0, 100)
    assert subject_errors(r0, "mae_untracked")["S03"] == (4.0, 100)
    assert per_subject([r0, r1])["S03"] == (4.0, 100)
    four_fold = {"per_fold": [{"held_out": ["S1", "S2", "S3"], "windows": 300, "mae": 2.0}]}
    assert subject_errors(four_fold) is None  # three subjects per fold: no per-subject errors
    stored = {"per_subject": {"S1": {"windows": 90, "mae": 2.5, "mae_untracked": 3.0}}}
    assert subject_errors(stored) == {"S1": (2.5, 90)}
    # paired on the seeds both sides ran: seed 1 of B has no partner in A, so it is left out
    d = subject_difference([r0], [_loso_run(0, np.arange(12.0) + 1), _loso_run(1, np.arange(12.0) + 5)])
    assert d.mean == pytest.approx(-1.0) and d.runs == (1, 1)
