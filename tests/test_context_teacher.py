"""Privileged-context teachers (models/context_teacher.py) on tiny data: names, the neighbour index,
the label-consistent frequency stretch, the forward-backward smoother, a few training steps, the
checkpoint round trip, and distillation from one through the study's run."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from ppg_stream.models.context_teacher import (  # noqa: E402
    ContextConfig, ContextTeacher, forward_backward, load_context_teacher, neighbour_index, parse_context_teacher,
    save_context_teacher, stretch_features, train_context_teacher,
)
from ppg_stream.models.dataset import WindowSet  # noqa: E402
from ppg_stream.models.targets import TRAINING_SPEC, gaussian_targets  # noqa: E402
from ppg_stream.stream.core.student_spec import BINS_BPM  # noqa: E402


def test_names():
    assert parse_context_teacher("C64").members == 1 and parse_context_teacher("C64").radius == 8
    kind = parse_context_teacher("R32x3e3+fb")
    assert (kind.base, kind.members, kind.smooth) == ("R32x3", 3, True)
    assert parse_context_teacher("R32x3") is None  # a per-window ResNet alone has no privileged context
    assert parse_context_teacher("T1") is None and parse_context_teacher("C7") is None


def test_neighbours_stay_in_their_recording_and_fill_gaps_with_the_nearest_window():
    subject = np.array(["a"] * 5 + ["b"] * 3)
    k = np.array([0, 1, 2, 4, 5, 0, 1, 2])  # a's window 3 was dropped
    idx = neighbour_index(subject, k, 2)
    assert idx.shape == (8, 5)
    assert list(idx[0]) == [0, 0, 0, 1, 2]  # before the start: the first window
    assert idx[2, 3] in (2, 3)  # k=3 is missing: window 2 or 4 (equally near) stands in
    assert set(idx[5:].ravel()) <= {5, 6, 7}  # never a window of another recording


def test_stretching_the_spectrum_moves_a_peak_with_the_label():
    feats = gaussian_targets(np.array([100.0]))[:, None, :].astype(np.float32)  # (1, 1, K) a peak at 100 bpm
    out = stretch_features(feats, np.array([1.1]))
    assert BINS_BPM[np.argmax(out[0, 0])] == pytest.approx(110, abs=1)


def test_forward_backward_uses_the_future_and_rows_are_distributions():
    rng = np.random.default_rng(0)
    n = 40
    probs = gaussian_targets(np.full(n, 120.0)) * 0.5 + gaussian_targets(rng.uniform(60, 180, n)) * 0.5
    probs[0] = gaussian_targets(np.array([75.0]))[0]  # the first window alone points elsewhere
    post = forward_backward(probs, np.array(["s"] * n), np.arange(n))
    assert np.allclose(post.sum(axis=1), 1)
    assert abs(BINS_BPM[np.argmax(post[0])] - 120) <= 2  # the windows after it decide: non-causal
    assert np.mean(np.abs(BINS_BPM[np.argmax(post, axis=1)] - 120)) < np.mean(np.abs(BINS_BPM[np.argmax(probs, axis=1)] - 120))


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(1)
    n, t = 48, TRAINING_SPEC.window_samples
    hr = np.r_[np.linspace(90, 110, 24), np.linspace(130, 120, 24)].astype(np.float32)
    x = rng.standard_normal((n, 4, t)).astype(np.float32)
    return WindowSet(x, hr, np.array(["a"] * 24 + ["b"] * 24), np.r_[np.arange(24), np.arange(24)])


@pytest.mark.parametrize("name", ["C32", "R16x2e2+fb"])
def test_a_few_training_steps_and_the_checkpoint_round_trip(tiny, tmp_path, name):
    teacher = ContextTeacher(TRAINING_SPEC, name)
    cost = train_context_teacher(teacher, tiny, ContextConfig(epochs=1, batch_size=16))
    assert cost["train_s"] >= 0 and np.isfinite(cost["history"]).all()
    logits = teacher.logits(tiny)
    assert logits.shape == (len(tiny), len(BINS_BPM)) and np.isfinite(logits).all()
    save_context_teacher(tmp_path / "t.pt", teacher, {"fold": 0})
    loaded, info = load_context_teacher(tmp_path / "t.pt")
    assert info == {"fold": 0}
    np.testing.assert_allclose(loaded.logits(tiny), logits, atol=1e-5)


def test_a_student_distils_from_a_context_teacher_through_the_study(tiny, tmp_path):
    from ppg_stream.models.study import RunConfig, StudyData, run_cv, teacher_path

    data = StudyData(tiny, [np.array(["a"]), np.array(["b"])], "ieee")
    for fold in range(2):
        teacher = ContextTeacher(TRAINING_SPEC, "R16x2+fb")
        train_context_teacher(teacher, data.split(fold)[0], ContextConfig(epochs=1, batch_size=16))
        save_context_teacher(teacher_path("R16x2+fb", fold, data, tmp_path), teacher, {})
    row = run_cv(RunConfig("dkd", "resnet", 4, 1, "R16x2+fb", epochs=1), data, tmp_path, threads=1)
    assert row["teacher"] == "R16x2+fb" and np.isfinite(row["mae_untracked"])
    assert set(row["per_subject"]) == {"a", "b"} and row["per_subject"]["a"]["windows"] == 24
