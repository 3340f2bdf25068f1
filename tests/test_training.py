"""Training on tiny data: parity with the stream, distillation lowers its loss, export round trip,
and the exported student runs in `ppg-stream --replay` unchanged."""

import asyncio

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from ppg_stream.models.architectures import build, n_parameters  # noqa: E402
from ppg_stream.models.dataset import WindowSet, labelled_windows, subject_folds  # noqa: E402
from ppg_stream.models.export import export  # noqa: E402
from ppg_stream.models.losses import build_strategy  # noqa: E402
from ppg_stream.models.targets import TRAINING_SPEC  # noqa: E402
from ppg_stream.stream.core.student_spec import student_spec  # noqa: E402
from ppg_stream.models.train import TrainConfig, evaluate, train_model  # noqa: E402
from ppg_stream.replay.load import load_recording  # noqa: E402
from ppg_stream.stream.sources.replay import ReplaySource  # noqa: E402
from ppg_stream.stream.core.engine import InferenceEngine  # noqa: E402
from ppg_stream.stream.runtime.pipeline import Runtime, RuntimeConfig  # noqa: E402
from ppg_stream.stream.runtime.source_pump import pump  # noqa: E402
from tests.conftest import make_synthetic_file, run_cli  # noqa: E402

pytestmark = pytest.mark.slow  # see pyproject's markers: left out of the quick subset


class CapturingEngine(InferenceEngine):
    """The real engine, keeping a copy of every input it is given."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.inputs = []

    def run(self, x):
        self.inputs.append(x.copy())
        return super().run(x)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    sets = [labelled_windows(load_recording(make_synthetic_file(d, f"s{i}", 60.0, seed=20 + i).path), TRAINING_SPEC) for i in range(3)]
    return WindowSet.concat(sets), d


def test_stream_feeds_the_model_exactly_the_training_windows(tmp_path, synthetic_60s):
    rec = load_recording(synthetic_60s.path)
    train = labelled_windows(rec, TRAINING_SPEC)
    path = tmp_path / "m.onnx"
    export(build("resnet", TRAINING_SPEC, 8, 1), student_spec("parity", "0", "-", "-"), path)
    engine = CapturingEngine(path)
    served_k = []

    class Recorder:
        def publish(self, messages):
            served_k.extend(m["window"] for m in messages)

    async def replay():
        runtime = Runtime(engine, [Recorder()], RuntimeConfig(speed=None))
        task = asyncio.create_task(runtime.run())
        await pump(runtime, ReplaySource(rec, speed=None, chunk_s=3.0), "p", wait=True)
        runtime.stop()
        await task

    asyncio.run(replay())
    served = np.concatenate(engine.inputs)
    assert served_k == list(train.k)
    np.testing.assert_array_equal(served, train.x)  # bit for bit, even with other chunk sizes


def test_distillation_lowers_its_loss_and_beats_an_untrained_student(tiny_data):
    data, _ = tiny_data
    teacher = build("resnet", TRAINING_SPEC, 16, 2, seed=0)
    train_model(teacher, data, TrainConfig(epochs=4, batch_size=32, seed=1))
    for name in ("hard", "soft", "dkd", "feature"):
        student = build("resnet", TRAINING_SPEC, 8, 1, seed=0)
        # DKD's warm-up ramps its KD weight over the first epochs (the loss may rise meanwhile): full weight from epoch 1 here
        params = {"warmup_epochs": 1.0} if name == "dkd" else {}
        history = train_model(student, data, TrainConfig(epochs=3, batch_size=32, seed=2), build_strategy(name, **params), teacher)
        assert history[-1]["loss"] < history[0]["loss"], name
        assert teacher.training is False  # frozen in eval mode
    mlp = build("mlp", TRAINING_SPEC, 8, 1, seed=0)
    history = train_model(mlp, data, TrainConfig(epochs=3, batch_size=32, seed=2), build_strategy("feature"), teacher)
    assert history[-1]["loss"] < history[0]["loss"]


def test_training_is_reproducible(tiny_data):
    data, _ = tiny_data
    runs = []
    for _ in range(2):
        model = build("resnet", TRAINING_SPEC, 8, 1, seed=5)
        runs.append(train_model(model, data, TrainConfig(epochs=2, batch_size=32, seed=5))[-1]["loss"])
    assert runs[0] == runs[1]


def test_a_trained_student_learns_heart_rate_on_held_out_subjects(tiny_data):
    data, _ = tiny_data
    held = subject_folds(data.subject, 3)[0]
    test = np.isin(data.subject, held)
    model = build("resnet", TRAINING_SPEC, 16, 2)
    train_model(model, data.select(~test), TrainConfig(epochs=8, batch_size=32, seed=0))
    metrics = evaluate(model, data.select(test))
    assert metrics["mae"] < 5.0  # tiny synthetic data, held-out subject: the HR is learnt, not memorised


def test_export_round_trip_and_the_student_runs_in_ppg_stream(tiny_data, tmp_path, synthetic_60s):
    data, _ = tiny_data
    model = build("resnet", TRAINING_SPEC, 8, 2)
    train_model(model, data, TrainConfig(epochs=2, batch_size=32))
    path = tmp_path / "student.onnx"
    diff = export(model, student_spec("tiny", "0.1", "synthetic", "test student"), path, {"cv_mae_bpm": "n/a"}, data.x[:50])
    assert diff < 1e-3
    assert path.stat().st_size < 100_000
    import onnx

    domains = [o.domain for o in onnx.load(path).opset_import]
    assert len(domains) == len(set(domains))  # one opset per domain (quantisation tools insist)
    engine = InferenceEngine(path)
    assert engine.spec.name == "tiny" and engine.spec.extra["cv_mae_bpm"] == "n/a"
    result = run_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--model", str(path), "--stdout", "--no-mqtt")
    assert result.returncode == 0, result.stderr
    assert [m["window"] for m in result.messages] == list(range(synthetic_60s.n_windows))
    assert all(m["model"] == "tiny@0.1" for m in result.messages)


def test_parameter_counts_span_the_study_range():
    from ppg_stream.models.architectures import STUDENT_SIZES, TEACHER_SIZES

    for family, sizes in STUDENT_SIZES.items():
        counts = sorted(n_parameters(build(family, TRAINING_SPEC, w, d)) for w, d in sizes)  # appended sizes: not in order
        assert len(set(counts)) == len(counts) and counts[0] < 2_000 and 200_000 < counts[-1] < 1_000_000
    assert min(n_parameters(build("resnet", TRAINING_SPEC, w, d)) for w, d in TEACHER_SIZES.values()) >= 1_000_000


def test_offline_teacher_outputs_match_the_online_teacher(tiny_data):
    from ppg_stream.models.train import TeacherOutputs

    data, _ = tiny_data
    teacher = build("resnet", TRAINING_SPEC, 16, 2, seed=3).eval()
    cached = TeacherOutputs.compute(teacher, data.x, with_features=True, batch=7)
    with torch.no_grad():
        torch.testing.assert_close(cached.logits, teacher(torch.from_numpy(data.x)))
    student = build("resnet", TRAINING_SPEC, 8, 1, seed=0)
    history = train_model(student, data, TrainConfig(epochs=3, batch_size=32), build_strategy("feature"), cached)
    assert history[-1]["hint"] < history[0]["hint"]


def test_dalia_subjects_join_the_study_with_their_own_folds_and_teachers(tmp_path):
    from ppg_stream.models.study import load_study_data, teacher_path
    from ppg_stream.replay.synthetic import synthesize, write_synthetic_dalia

    dalia = tmp_path / "PPG_FieldStudy"
    for i in (1, 2):
        (dalia / f"S{i}").mkdir(parents=True)
        write_synthetic_dalia(dalia / f"S{i}" / f"S{i}.pkl", synthesize(40, seed=40 + i), subject=f"S{i}", with_chest=False)
    data = load_study_data(None, 2, tmp_path / "cache", dalia)
    assert data.name == "dalia" and sorted(set(data.labelled.subject)) == ["DaLiA-S1", "DaLiA-S2"]
    assert [len(f) for f in data.folds] == [1, 1] and len(data.labelled) == 2 * 17
    train, test = data.split(0)
    assert not set(train.subject) & set(test.subject)
    assert "teachers-dalia-k2" in str(teacher_path("T1", 0, data, tmp_path / "cache"))  # never the IEEE teachers


def test_synthetic_mix_joins_every_fold_and_runs_report_the_synthetic_error(tmp_path, monkeypatch):
    import ppg_stream.models.study as study
    from ppg_stream.replay.activity import ACTIVITIES
    from ppg_stream.replay.synthetic import synthesize, write_synthetic_dalia

    monkeypatch.setattr(study, "MIX_DURATION_S", 40.0)
    monkeypatch.setattr(study, "SYNTHETIC_TEST", (1, 40.0, 9999))
    monkeypatch.setattr(study, "SCENARIO_TEST", (1, 40.0, 8642))
    dalia = tmp_path / "dalia"
    dalia.mkdir()
    for i in (1, 2):
        write_synthetic_dalia(dalia / f"S{i}.pkl", synthesize(40, seed=60 + i), subject=f"S{i}", with_chest=False)
    data = study.load_study_data(None, 2, tmp_path / "cache", dalia)
    seen_sizes = []
    real_train = study.train_model
    monkeypatch.setattr(study, "train_model", lambda model, train_set, *a, **k: seen_sizes.append(len(train_set)) or real_train(model, train_set, *a, **k))
    run = study.RunConfig("scratch", "resnet", 8, 1, None, epochs=1, data=data.name, mix=3)
    row = study.run_cv(run, data, tmp_path / "cache")
    per_recording = len(data.labelled) // 2
    assert seen_sizes == [per_recording + 3 * per_recording] * 2  # each fold: its own subject + the 3 synthetic recordings
    assert row["key"].endswith("|dalia|mix3") and row["mix"] == 3
    assert np.isfinite(row["mae_synthetic"]) and np.isfinite(row["mae_synthetic_untracked"])
    # every activity scenario is scored, and the held-out confidence's calibration is recorded
    assert sorted(row["scenarios"]) == sorted(ACTIVITIES) and all(np.isfinite(m["mae"]) for m in row["scenarios"].values())
    assert 0 <= row["ece"] <= 1 and 0 <= row["ece_calibrated"] <= 1 and row["temperature"] > 0
    assert sum(row["reliability"]["count"]) == len(data.labelled)
