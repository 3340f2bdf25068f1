"""The study within wrist-ppg-exercise: `--wrist DIR` is checked in one line, a folder in the data set's
format is loaded with its folds by subject and trains a teacher and a student, and the report gives the
wrist rows a section and verdict rows of their own, saying that three subjects can detect nothing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from ppg_stream.models.cross_data import per_person, person, wrist_folds  # noqa: E402
from ppg_stream.models.dataset import WindowSet  # noqa: E402
from ppg_stream.models.targets import TRAINING_SPEC  # noqa: E402
from ppg_stream.models.wrist_study import breakdown, wrist_section, wrist_verdict  # noqa: E402
from ppg_stream.replay.csv_file import write_csv  # noqa: E402
from ppg_stream.replay.recording import window_count  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

FS = 256.0
RECORDINGS = {"s1_walk": 80.0, "s1_high_resistance_bike": 120.0, "s2_run": 150.0, "s3_walk": 95.0}  # name → HR (bpm)


def _cli(*args, data):
    env = dict(os.environ, PPG_STREAM_DATA=str(data))
    return subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)


def _wrist_folder(folder, seconds=24.0, recordings=RECORDINGS):
    """Recordings in the data set's format: a PPG pulse at a known rate, still accelerometer, 256 Hz."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * FS)) / FS
    reference = {}
    for name, bpm in recordings.items():
        ppg = np.sin(2 * np.pi * bpm / 60 * t) + 0.3 * np.sin(4 * np.pi * bpm / 60 * t)
        write_csv(folder / f"{name}.csv", t, ppg, np.tile([0.0, 0.0, 1.0], (len(t), 1)))
        labels = [bpm] * window_count(seconds)
        labels[1] = None  # an implausible reference: that window is left out
        reference[name] = labels
    (folder / "reference_bpm.json").write_text(json.dumps(reference))
    return folder


@pytest.mark.parametrize("args, message", [
    (["sweep", "--wrist", "{tmp}/missing", "--ieee", "none"], "--wrist {tmp}/missing: no such folder"),
    (["sweep", "--wrist", "{tmp}/no-reference", "--ieee", "none"], "no Wrist PPG During Exercise recordings (*.csv and reference_bpm.json)"),
    (["sweep", "--wrist", "{tmp}/wrist"], "add --ieee none"),
    (["teacher-screen", "--wrist", "{tmp}/wrist", "--ieee", "none", "--only", "0,3"], "--only: 3 folds, numbered 0-2"),
    (["sweep", "--wrist", "{tmp}/wrist", "--ieee", "none", "--folds", "4", "--cache", "{tmp}/cache"], "has 3 subjects (s1, s2, s3): 2-3 folds"),
    (["export", "--wrist", "{tmp}/wrist", "--ieee", "none", "--out", "{tmp}/s.onnx"], "--wrist is for the study's commands"),
])
def test_wrist_options_are_one_line(tmp_path, args, message):
    _wrist_folder(tmp_path / "wrist", seconds=12.0)
    (tmp_path / "no-reference").mkdir()
    write_csv(tmp_path / "no-reference" / "s1_walk.csv", np.arange(10) / FS, np.zeros(10))
    out = _cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], data=tmp_path / "no-data")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppg-distill: error:") and message.replace("{tmp}", str(tmp_path)) in lines[0], out.stderr


def test_folds_hold_out_every_recording_of_a_subject_together():
    names = np.array(["s3_walk", "s1_walk", "s2_run", "s1_bike", "s1_walk"])
    assert [f.tolist() for f in wrist_folds(names, 3)] == [["s1_bike", "s1_walk"], ["s2_run"], ["s3_walk"]]
    assert [f.tolist() for f in wrist_folds(names, 2)] == [["s1_bike", "s1_walk", "s3_walk"], ["s2_run"]]
    with pytest.raises(ValueError, match="3 subjects"):
        wrist_folds(names, 4)


def test_recordings_pool_per_subject_and_activity_window_weighted():
    rec = {"s1_walk": {"windows": 10, "mae": 2.0, "mae_untracked": 4.0}, "s1_run": {"windows": 30, "mae": 6.0, "mae_untracked": 8.0},
           "s2_walk": {"windows": 20, "mae": 5.0, "mae_untracked": 5.0}}
    assert per_person(rec) == {"s1": {"windows": 40, "mae": 5.0, "mae_untracked": 7.0}, "s2": {"windows": 20, "mae": 5.0, "mae_untracked": 5.0}}
    everything, people, kinds = breakdown({k: (v["mae"], v["windows"]) for k, v in rec.items()})
    assert everything == pytest.approx((20 + 180 + 100) / 60) and people == {"s1": 5.0, "s2": 5.0}
    assert kinds == {"walk": pytest.approx(120 / 30), "run": 6.0} and list(kinds) == ["walk", "run"]  # the data set's order
    assert person("s2_high_resistance_bike") == "s2"


def _tiny_held_out_sets(monkeypatch):
    """The study's synthetic and activity test sets shrunk to a window each (they are generated otherwise: minutes)."""
    from ppg_stream.models import study
    from ppg_stream.replay.activity import ACTIVITIES

    def tiny(names):
        n = len(names)
        x = np.random.default_rng(0).standard_normal((n, 4, TRAINING_SPEC.window_samples)).astype(np.float32)
        return WindowSet(x, np.full(n, 100.0, np.float32), np.array(names), np.zeros(n, int))

    monkeypatch.setattr(study, "synthetic_test", lambda cache: tiny(["syn-0"]))
    monkeypatch.setattr(study, "scenario_test", lambda cache: tiny([f"act-{kind}-0" for kind in ACTIVITIES]))


def test_a_wrist_folder_loads_folds_by_subject_and_trains_a_teacher_and_a_student(tmp_path, monkeypatch):
    from ppg_stream.models.context_teacher import ContextConfig, screen
    from ppg_stream.models.study import RunConfig, load_study_data, run_cv, teacher_path

    folder = _wrist_folder(tmp_path / "wrist")
    data = load_study_data(None, 3, tmp_path / "cache", wrist_dir=folder)
    assert data.name == "wrist" and data.teacher_dir(tmp_path / "cache").name == "teachers-wrist-k3"
    per_recording = window_count(24.0) - 1  # the null reference is left out
    assert len(data.labelled) == len(RECORDINGS) * per_recording
    for name, bpm in RECORDINGS.items():
        assert np.allclose(data.labelled.hr_bpm[data.labelled.subject == name], bpm)
    train, test = data.split(0)
    assert set(test.subject) == {"s1_walk", "s1_high_resistance_bike"} and not {person(s) for s in train.subject} & {"s1"}
    assert len(list((tmp_path / "cache").glob("wrist_windows_*.npz"))) == 1  # windows cached per data set

    rows = screen(["R16x2+fb"], data, [0, 1, 2], config=ContextConfig(epochs=1, batch_size=16, threads=1), log=lambda *_: None,
                  path_of=lambda name, fold: teacher_path(name, fold, data, tmp_path / "cache"))
    assert [r["held_out"] for r in rows] == [["s1_high_resistance_bike", "s1_walk"], ["s2_run"], ["s3_walk"]]
    assert set(rows[0]["per_subject"]) == {"s1"} and set(rows[0]["per_recording"]) == {"s1_walk", "s1_high_resistance_bike"}

    _tiny_held_out_sets(monkeypatch)
    row = run_cv(RunConfig("dkd", "resnet", 4, 1, "R16x2+fb", epochs=1), data, tmp_path / "cache", threads=1)
    assert row["data"] == "wrist" and row["folds"] == 3 and row["key"].endswith("|k3|wrist")
    assert set(row["per_subject"]) == {"s1", "s2", "s3"} and set(row["per_recording"]) == set(RECORDINGS)
    assert row["per_subject"]["s1"]["windows"] == 2 * per_recording and np.isfinite(row["mae_untracked"])


def _wrist_rows(dkd_gain=0.5):
    """Wrist sweep rows: DKD below scratch by `dkd_gain` on every recording of every subject."""
    rows = []
    base = {"s2_walk": 3.0, "s2_high_resistance_bike": 9.0, "s3_walk": 4.0, "s3_run": 6.0, "s4_run": 2.0}
    for w, d, p in ((8, 2, 977), (16, 2, 3489)):
        for strategy, offset in (("scratch", 0.0), ("soft", -dkd_gain / 2), ("dkd", -dkd_gain)):
            per_recording = {rec: {"windows": 100, "mae": v + offset, "mae_untracked": v + offset + 1} for rec, v in base.items()}
            rows.append({"key": f"{strategy}{w}", "data": "wrist", "strategy": strategy, "family": "resnet", "width": w, "depth": d, "params": p,
                         "teacher": None if strategy == "scratch" else "R32x3+fb", "epochs": 30, "seed": 0, "folds": 3,
                         "mae": float(np.mean([v["mae"] for v in per_recording.values()])), "latency_us": 30.0,
                         "mae_untracked": float(np.mean([v["mae_untracked"] for v in per_recording.values()])),
                         "per_recording": per_recording, "per_subject": per_person(per_recording)})
    return rows


def test_the_report_gives_the_wrist_rows_a_section_and_verdict_rows_that_say_three_subjects_detect_nothing(tmp_path):
    pytest.importorskip("matplotlib", reason="the [train] extra (matplotlib) is not installed")
    from ppg_stream.models.report import README_BEGIN, README_END, paper_section_of, render, update_readme
    from tests.test_report import _study

    teacher = [{"teacher": "R32x3+fb", "data": "wrist", "fold": f, "folds": 3, "held_out": [s], "windows": 100, "params": 19393,
                "mae": 1.0, "mae_untracked": 1.5, "per_recording": {s: {"windows": 100, "mae": 1.0, "mae_untracked": 1.5}}}
               for f, s in enumerate(("s2_walk", "s3_run", "s4_run"))]
    constant = {"key": "baseline|constant|wrist|k3", "strategy": "baseline", "family": "constant", "data": "wrist", "folds": 3,
                "mae": 5.4, "mae_untracked": 5.4, "per_recording": {"s2_walk": {"windows": 100, "mae": 5.4, "mae_untracked": 5.4}}}
    verdict = wrist_verdict(_wrist_rows() + [constant])  # DKD (5.30 window by window) is below 5.40 at both sizes
    assert "constant guess of the training subjects' median HR scores 5.40 bpm window by window; 2 of 6 student runs are below it" in verdict
    assert "Jarchi & Casson" in verdict and verdict.count("| Distilled students beat") == 2
    assert "nothing: 3 subjects give 10 distinct bootstrap resamples and no p-value" in verdict
    assert "3/3 subjects lower" in verdict and "**tie**" in verdict and "reproduced" not in verdict  # a 3/3 gain is still no test
    section = wrist_section(_wrist_rows() + [constant], teacher)
    assert "| constant guess: the training subjects' median HR (a student below it has learnt more than a prior) | - | 5.40 / 5.40 | 5.40 / 5.40 |" in section
    assert "| model | runs | all | s2 | s3 | s4 | walk | run | high resistance bike |" in section
    assert "| teacher R32x3+fb (19,393 parameters; non-causal) | 1 | 1.00 / 1.50 |" in section
    assert "| dkd resnet 8x2 (977) | 1 | 4.30 / 5.30 | 5.50 / 6.50 | 4.50 / 5.50 | 1.50 / 2.50 | 3.00 / 4.00 |" in section

    ieee = [r for r in _study(seeds=2) if r["family"] == "resnet" and r["width"] <= 16]  # two sizes: the scaling fits take minutes otherwise
    summary = render(ieee, tmp_path, wrist=_wrist_rows(), wrist_screen=teacher).read_text()
    paper = paper_section_of(summary)
    assert "Second data set, leave one subject out within wrist-ppg-exercise" in paper and "as a leave-one-subject-out study of its own" in paper
    assert "## wrist-ppg-exercise, leave one subject out" in summary.split(paper)[1]  # its own section, after the paper's
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_BEGIN}\nold\n{README_END}\n")
    update_readme(readme, summary)
    assert "Second data set, leave one subject out" in readme.read_text()
    without = render(ieee, tmp_path / "plain").read_text()
    assert "wrist-ppg-exercise, leave one subject out" not in without and "not yet for a leave-one-subject-out study" in without
