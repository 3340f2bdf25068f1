"""The characterisation study: data, teachers per fold, cross-validated students, and what each run costs.

Subject-wise k-fold cross-validation (k = 4 by default: 3 IEEE subjects held out per fold; k = 12 is
leave-one-subject-out). A teacher is pre-trained once on the synthetic corpus, then fine-tuned per
fold on that fold's training subjects only, so no evaluation subject ever reaches a teacher.
Results are JSON lines, one run per line with its whole configuration, appended as runs finish, so
a sweep resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .architectures import TEACHER_SIZES, build, n_parameters
from .checkpoint import load_checkpoint, save_checkpoint
from .context_teacher import is_context_teacher, load_context_teacher
from .calibration import confidence_and_correct, cross_fitted, expected_calibration_error
from .dataset import WindowSet, activity_windows, dalia_windows, ieee_windows, synthetic_windows, subject_folds
from .losses import build_strategy
from .targets import TRAINING_SPEC, training_spec
from ..stream.core.student_spec import student_spec
from .train import TeacherOutputs, TrainConfig, evaluate, evaluate_probabilities, pool_folds, predict_logits, train_model
from .held_out import per_subject_errors, subject_units
from ..replay.activity import ACTIVITIES
from ..stream.core.decode import softmax

DEFAULT_CACHE = Path(".cache/ppg-distill")


@dataclass(frozen=True)
class StudyData:
    labelled: WindowSet
    folds: list[np.ndarray]  # held-out subjects per fold
    name: str = "ieee"  # which data sets: "ieee", "dalia", "ieee+dalia" or "wrist" (keys caches and results)

    def teacher_dir(self, cache: Path) -> Path:
        """Teachers are fine-tuned per data set and fold split: never reuse one across a different split."""
        if self.name == "ieee" and len(self.folds) == 4:
            return cache / "teachers"  # the default study
        return cache / f"teachers-{self.name}-k{len(self.folds)}"

    def split(self, fold: int) -> tuple[WindowSet, WindowSet]:
        test = np.isin(self.labelled.subject, self.folds[fold])
        return self.labelled.select(~test), self.labelled.select(test)


def data_signature(directory: Path, pattern: str) -> str:
    """A short digest of a data folder's files (names, sizes, times): caches follow the data they came from."""
    files = sorted(Path(directory).rglob(pattern))
    text = "|".join(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in files)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def load_study_data(ieee_dir: Path | None, n_folds: int, cache: Path = DEFAULT_CACHE, dalia_dir: Path | None = None,
                    wrist_dir: Path | None = None) -> StudyData:
    """Labelled windows from IEEE SPC 2015 and/or PPG-DaLiA; folds are by subject across both. With
    `wrist_dir`, wrist-ppg-exercise alone: a 'subject' of its windows is one recording (each is tracked on
    its own), and its folds hold out every recording of a person together (`wrist_folds`)."""
    cache.mkdir(parents=True, exist_ok=True)
    if wrist_dir is not None:
        if ieee_dir is not None or dalia_dir is not None:
            raise ValueError("wrist-ppg-exercise is a study of its own: give --wrist DIR with --ieee none and no --dalia")
        from .cross_data import wrist_folds, wrist_windows

        signature = data_signature(wrist_dir, "*.csv") + data_signature(wrist_dir, "reference_bpm.json")[:4]
        windows = _cached(cache / f"wrist_windows_{signature}.npz", lambda: wrist_windows(wrist_dir))
        return StudyData(windows, wrist_folds(windows.subject, n_folds), "wrist")
    sets = []
    if ieee_dir is not None:
        sets.append(_cached(cache / "ieee_windows.npz", lambda: ieee_windows(ieee_dir, TRAINING_SPEC)))
    if dalia_dir is not None:
        signature = data_signature(dalia_dir, "S*.pkl")
        sets.append(_cached(cache / f"dalia_windows_{signature}.npz", lambda: dalia_windows(dalia_dir, TRAINING_SPEC)))
    if not sets:
        raise ValueError("no training data: give the IEEE SPC 2015 folder and/or a PPG-DaLiA folder")
    labelled = WindowSet.concat(sets)
    name = "ieee" if dalia_dir is None else ("ieee+dalia" if ieee_dir is not None else "dalia")
    return StudyData(labelled, subject_folds(labelled.subject, n_folds), name)


def _cached(path: Path, make) -> WindowSet:
    if path.exists():
        return WindowSet.load(path)
    windows = make()
    windows.save(path)
    return windows


def pretraining_corpus(n_recordings: int, duration_s: float, cache: Path = DEFAULT_CACHE) -> WindowSet:
    path = cache / f"synthetic_{n_recordings}x{int(duration_s)}.npz"
    if path.exists():
        return WindowSet.load(path)
    corpus = synthetic_windows(TRAINING_SPEC, n_recordings, duration_s, seed=1234)
    cache.mkdir(parents=True, exist_ok=True)
    corpus.save(path)
    return corpus


MIX_DURATION_S = 300.0
MIX_SEED = 5678  # not the pre-training corpus's seed: a student never sees the teacher's exact recordings
SYNTHETIC_TEST = (8, 300.0, 9999)  # recordings, seconds, seed: a fixed held-out synthetic test set


def synthetic_mix(n_recordings: int, cache: Path = DEFAULT_CACHE) -> WindowSet:
    """Synthetic windows added to a student's training set: HR 45-185 bpm and motion the 12 IEEE
    subjects do not cover (their reference HR is 69-177 bpm, all running)."""
    path = cache / f"synthetic_mix_{n_recordings}x{int(MIX_DURATION_S)}_s{MIX_SEED}.npz"
    return _cached_synthetic(path, n_recordings, MIX_DURATION_S, MIX_SEED)


def synthetic_test(cache: Path = DEFAULT_CACHE) -> WindowSet:
    n, duration, seed = SYNTHETIC_TEST
    return _cached_synthetic(cache / f"synthetic_test_{n}x{int(duration)}_s{seed}.npz", n, duration, seed)


ACTIVITY_DURATION_S = 240.0
ACTIVITY_SEED = 4321  # the activity recordings a student may train with
SCENARIO_TEST = (2, 240.0, 8642)  # recordings per activity, seconds, seed: the held-out scenario sets


def activity_mix(per_kind: int, cache: Path = DEFAULT_CACHE) -> WindowSet:
    """Activity scenarios added to a student's training set: motion at and around the HR, irregular beats."""
    path = cache / f"activity_mix_{per_kind}x{int(ACTIVITY_DURATION_S)}_s{ACTIVITY_SEED}.npz"
    return _cached(path, lambda: activity_windows(TRAINING_SPEC, per_kind, ACTIVITY_DURATION_S, ACTIVITY_SEED))


def training_extras(mix: int, activities: int, cache: Path = DEFAULT_CACHE) -> list[WindowSet]:
    """The generated windows a student trains with besides the real subjects: `mix` synthetic recordings
    and `activities` recordings per activity scenario (none where 0)."""
    return ([synthetic_mix(mix, cache)] if mix else []) + ([activity_mix(activities, cache)] if activities else [])


def scenario_test(cache: Path = DEFAULT_CACHE) -> WindowSet:
    """Held-out recordings of every activity (never trained on: another seed), scored per activity."""
    n, duration, seed = SCENARIO_TEST
    cache.mkdir(parents=True, exist_ok=True)
    return _cached(cache / f"scenario_test_{n}x{int(duration)}_s{seed}.npz", lambda: activity_windows(TRAINING_SPEC, n, duration, seed))


def activity_of(subject: np.ndarray) -> np.ndarray:
    """`act-boxing-1` → `boxing`."""
    return np.array([s[4:].rsplit("-", 1)[0] for s in subject.astype(str)])


def _cached_synthetic(path: Path, n: int, duration_s: float, seed: int) -> WindowSet:
    if path.exists():
        return WindowSet.load(path)
    windows = synthetic_windows(TRAINING_SPEC, n, duration_s, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    windows.save(path)
    return windows


def teacher_path(size: str, fold: int | str, data: "StudyData", cache: Path = DEFAULT_CACHE) -> Path:
    return data.teacher_dir(cache) / f"{size}-fold{fold}.pt"


def train_teacher(size: str, data: StudyData, pretrain: WindowSet, pretrain_epochs: int, finetune_epochs: int,
                  folds: list[int | str], cache: Path = DEFAULT_CACHE, progress: bool = True, threads: int = 2) -> None:
    """Pre-train on the synthetic corpus once, then fine-tune per fold ('all' = every subject)."""
    width, depth = TEACHER_SIZES[size]
    base = cache / "teachers" / f"{size}-pretrained.pt"  # synthetic pre-training is shared by every data set
    if base.exists():
        model, _ = load_checkpoint(base)
    else:
        model = build("resnet", TRAINING_SPEC, width, depth, seed=0)
        history = train_model(model, pretrain, TrainConfig(epochs=pretrain_epochs, lr=2e-3, threads=threads), progress=progress)
        save_checkpoint(base, model, {"stage": "pretrained", "windows": len(pretrain), "history": history})
    for fold in folds:
        out = teacher_path(size, fold, data, cache)
        if out.exists():
            continue
        tuned, _ = load_checkpoint(base)
        train_set = data.labelled if fold == "all" else data.split(int(fold))[0]
        history = train_model(tuned, train_set, TrainConfig(epochs=finetune_epochs, lr=1e-3, threads=threads), progress=progress)
        info = {"stage": "fine-tuned", "fold": str(fold), "subjects": sorted(set(train_set.subject.tolist())), "history": history}
        if fold != "all":
            info["held_out"] = evaluate(tuned, data.split(int(fold))[1])
        save_checkpoint(out, tuned, info)


def teacher_row(size: str, data: StudyData, cache: Path = DEFAULT_CACHE) -> dict:
    """The teacher's own cross-validated figures (each fold's checkpoint on its held-out subjects)."""
    estimates = []
    model = None
    for fold in range(len(data.folds)):
        model, _ = load_checkpoint(teacher_path(size, fold, data, cache))
        test_set = data.split(fold)[1]
        estimates.append((evaluate(model, test_set), len(test_set)))
    total, metrics = pool_folds(estimates)
    width, depth = TEACHER_SIZES[size]
    suffix = "" if data.name == "ieee" else f"|{data.name}"
    return {"key": f"teacher|{size}|folds{len(data.folds)}{suffix}", "data": data.name, "strategy": "teacher", "family": "resnet", "width": width,
            "depth": depth, "teacher": size, "folds": len(data.folds), "windows": total, "params": n_parameters(model),
            **metrics, **onnx_costs(model)}


@dataclass(frozen=True)
class RunConfig:
    strategy: str
    family: str
    width: int
    depth: int
    teacher: str | None  # teacher size name, None for scratch
    epochs: int = 30
    seed: int = 0
    params: tuple[tuple[str, float], ...] = ()
    data: str = "ieee"
    mix: int = 0  # synthetic recordings (300 s each) added to every fold's training set
    folds: int = 4  # subject-wise folds of the evaluation (12 = leave one subject out)
    taper: str = "hann"  # the spectral front end's window (hann, rect)
    activities: int = 0  # activity recordings (240 s) per activity added to every fold's training set

    @property
    def key(self) -> str:
        p = ",".join(f"{k}={v:g}" for k, v in self.params)
        split = "" if self.folds == 4 else f"|k{self.folds}"  # the default split keeps the keys of earlier results
        suffix = split + ("" if self.data == "ieee" else f"|{self.data}") + (f"|mix{self.mix}" if self.mix else "")
        suffix += ("" if self.taper == "hann" else f"|{self.taper}") + (f"|act{self.activities}" if self.activities else "")
        return f"{self.strategy}|{self.family}:{self.width}x{self.depth}|{self.teacher or '-'}|e{self.epochs}|s{self.seed}|{p}{suffix}"


class HeldOutScores:
    """What a cross-validated recipe is judged on, fold by fold: its held-out real windows, the held-out synthetic
    recordings and activity scenarios (never trained on: other seeds), and the calibration of its confidence.
    `row()` pools the folds into the metrics of a CV row: the results file's, and the `cv` an exported student
    carries (`models/metadata.py`). One scorer for `run_cv` and `ppg-distill devices-train --cv`."""

    def __init__(self, cache: Path = DEFAULT_CACHE) -> None:
        self.synthetic_held_out = synthetic_test(cache)
        self.scenarios = scenario_test(cache)
        self.scenario_kind = activity_of(self.scenarios.subject)
        self.estimates: list[tuple[dict, int]] = []  # per fold: metrics on its held-out windows, their count
        self.synthetic_estimates: list[tuple[dict, int]] = []
        self.held_logits: list[np.ndarray] = []
        self.held_sets: list[WindowSet] = []
        self.scenario_estimates: dict[str, list] = {kind: [] for kind in ACTIVITIES}
        self.scenario_calibration = {kind: ([], []) for kind in ACTIVITIES}  # confidence, within ±5 bpm
        self.subjects: dict[str, dict] = {}  # per held-out subject: its windows and errors (the unit of the subject-level statistics)
        self.model = None

    def add(self, model, test_set: WindowSet) -> np.ndarray:
        """One fold's model and its held-out windows; returns their softmax rows."""
        logits = predict_logits(model, test_set.x)
        probs = softmax(logits)
        self.model = model
        self.held_logits.append(logits)
        self.held_sets.append(test_set)
        self.estimates.append((evaluate_probabilities(probs, test_set), len(test_set)))
        self.subjects.update(per_subject_errors(probs, test_set))
        self.synthetic_estimates.append((evaluate(model, self.synthetic_held_out), 1))
        scenario_probs = softmax(predict_logits(model, self.scenarios.x))
        for kind in ACTIVITIES:
            sel = self.scenario_kind == kind
            self.scenario_estimates[kind].append((evaluate_probabilities(scenario_probs[sel], self.scenarios.select(sel)), 1))
            for into, values in zip(self.scenario_calibration[kind], confidence_and_correct(scenario_probs[sel], self.scenarios.hr_bpm[sel])):
                into.append(values)
        return probs

    def row(self) -> dict:
        total, metrics = pool_folds(self.estimates)
        _, synthetic = pool_folds(self.synthetic_estimates)
        per_scenario = {kind: {**{k: v for k, v in pool_folds(e)[1].items() if k in ("mae", "mae_untracked")},
                               "ece": expected_calibration_error(*(np.concatenate(a) for a in self.scenario_calibration[kind]))}
                        for kind, e in self.scenario_estimates.items()}
        return {
            "mae_synthetic": synthetic["mae"], "mae_synthetic_untracked": synthetic["mae_untracked"],
            "scenarios": per_scenario,
            "mae_scenarios": float(np.mean([m["mae"] for m in per_scenario.values()])),
            "mae_scenarios_untracked": float(np.mean([m["mae_untracked"] for m in per_scenario.values()])),
            "folds": len(self.estimates), "windows": total, "params": n_parameters(self.model), **metrics,
        }


def run_cv(run: RunConfig, data: StudyData, cache: Path = DEFAULT_CACHE, progress: bool = False, threads: int = 2) -> dict:
    """Cross-validate one student configuration; returns the result row (metrics + costs + config).

    Besides the metrics pooled over every held-out window, the row keeps each fold's MAE (`per_fold`),
    so the report can show the spread over folds as well as over seeds; the held-out activity
    scenarios per activity (`scenarios`); and the calibration of the held-out confidence (ECE and
    reliability before and after a cross-fitted temperature, `ppg_stream.models.calibration.cross_fitted`)."""
    run = replace(run, folds=len(data.folds), data=data.name)  # the key names the split and data set the data really has
    strategy_params = dict(run.params)
    started = time.perf_counter()
    extras = training_extras(run.mix, run.activities, cache)
    scores = HeldOutScores(cache)
    for fold in range(len(data.folds)):
        train_set, test_set = data.split(fold)
        if extras:
            train_set = WindowSet.concat([train_set, *extras])
        strategy = build_strategy(run.strategy, **strategy_params)
        teacher = None
        if strategy.needs_teacher and is_context_teacher(run.teacher):  # privileged context: its outputs on whole recordings
            import torch

            context_teacher, _ = load_context_teacher(teacher_path(run.teacher, fold, data, cache))
            teacher = TeacherOutputs(torch.from_numpy(context_teacher.logits(train_set)).float())
        elif strategy.needs_teacher:
            teacher_model, _ = load_checkpoint(teacher_path(run.teacher, fold, data, cache))
            teacher = TeacherOutputs.compute(teacher_model, train_set.x, with_features=strategy.needs_features)
        model = build(run.family, training_spec(run.taper), run.width, run.depth, seed=run.seed + fold)
        train_model(model, train_set, TrainConfig(epochs=run.epochs, seed=run.seed + fold, threads=threads), strategy, teacher, progress=progress)
        scores.add(model, test_set)
    pooled = scores.row()
    costs = onnx_costs(scores.model)
    return {
        "key": run.key, "data": data.name, "strategy": run.strategy, "family": run.family, "width": run.width, "depth": run.depth,
        "teacher": run.teacher, "epochs": run.epochs, "seed": run.seed, "mix": run.mix, "taper": run.taper, "activities": run.activities,
        "strategy_params": {**build_strategy(run.strategy, **strategy_params).params}, **pooled, **costs,
        **cross_fitted(scores.held_logits, scores.held_sets),
        "per_fold": [{"held_out": [str(s) for s in data.folds[f]], "windows": n, "mae": m["mae"], "mae_untracked": m["mae_untracked"]}
                     for f, (m, n) in enumerate(scores.estimates)],
        **subject_units(scores.subjects, data.name),
        "train_s": round(time.perf_counter() - started, 1),
    }


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def onnx_costs(model) -> dict:
    """ONNX size, single-window latency in onnxruntime on one thread (median of 300), session memory."""
    from .export import export

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export(model, student_spec("probe", "0", "-", "-", taper=model.front.taper), path)
        return onnx_file_costs(path)


def onnx_file_costs(path: Path) -> dict:
    from ..stream.core.engine import InferenceEngine

    before = _rss_kib()
    engine = InferenceEngine(path)
    x = np.random.default_rng(0).standard_normal((1, 4, TRAINING_SPEC.window_samples)).astype(np.float32)
    for _ in range(20):
        engine.run(x)
    times = []
    for _ in range(300):
        t = time.perf_counter()
        engine.run(x)
        times.append(time.perf_counter() - t)
    after = _rss_kib()
    return {"onnx_bytes": path.stat().st_size, "latency_us": float(np.median(times) * 1e6), "session_rss_kib": after - before}


def completed_keys(results: Path) -> set[str]:
    if not results.exists():
        return set()
    return {json.loads(line)["key"] for line in results.read_text().splitlines() if line.strip()}


def append_result(results: Path, row: dict) -> None:
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
