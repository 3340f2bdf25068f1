"""`ppg-distill`: train teachers, distil students, sweep, report, export — one thin command per step.

  ppg-distill train-teacher --size T1
  ppg-distill distill --strategy soft --student resnet:16x2 --teacher T1
  ppg-distill sweep --strategies scratch,hard,soft,dkd,feature --families resnet,mlp --teachers T1
  ppg-distill report --results results/sweep.jsonl --out results/report --readme docs/distillation.md
  ppg-distill export --strategy soft --student resnet:16x2 --teacher T1 --out stream/core/student.onnx
  ppg-distill accuracy --out results/accuracy.md
  ppg-distill devices --out results/devices.md
  ppg-distill devices-train --train ieee --copies 2 --out /tmp/ieee-devices.onnx   # then devices --model it
  ppg-distill teacher-screen --candidates R32x3+fb,C32 --only 0,4,9 --out results/teacher_screen.jsonl
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

from ..replay.data_sets import DATA_ENV, IEEE_SPC2015, PPG_DALIA, WRIST_PPG_EXERCISE, data_dir, where_to_get

DEFAULT_RESULTS = Path("results/sweep.jsonl")
# what each command needs of the [train] extra (torch, tqdm, matplotlib), checked before anything is read or written
NEEDS = {"cross-data": ("torch",), "devices-train": ("torch",), "baseline": ("torch",), "teacher-screen": ("torch",), "train-teacher": ("torch",), "distill": ("torch",), "sweep": ("torch", "tqdm"), "export": ("torch",),
         "accuracy": ("torch",), "report": ("matplotlib",), "latency": ("torch",)}
TRAIN_EXTRA = frozenset({"torch", "tqdm", "matplotlib"})
INSTALL_TRAIN = "pip install -e '.[train]' in the checkout (CPU torch first: pip install torch==2.13.0)"


class UsageError(Exception):
    pass


class ExportFailed(Exception):
    """The command ran but its product is wrong (exit status 1, not a usage mistake's 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise UsageError(f"{message} (see ppg-distill --help)")


def parse_student(text: str) -> tuple[str, int, int]:
    """`resnet:16x2` → ("resnet", 16, 2)."""
    try:
        family, size = text.split(":")
        width, depth = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"student {text!r}: expected FAMILY:WIDTHxDEPTH, e.g. resnet:16x2 or mlp:32x1") from None
    if family not in ("resnet", "mlp") or width < 1 or depth < 1:
        raise argparse.ArgumentTypeError(f"student {text!r}: family is resnet or mlp, width and depth ≥ 1")
    return family, width, depth


def parse_folds(text: str) -> list[int]:
    """`0,3,11` → [0, 3, 11] (leave-one-subject-out folds of the 12 IEEE subjects)."""
    try:
        folds = sorted({int(v) for v in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"folds {text!r}: expected a comma-separated list of fold numbers, e.g. 0,3") from None
    if not folds or folds[0] < 0:
        raise argparse.ArgumentTypeError(f"folds {text!r}: fold numbers are 0 or more")
    return folds


def parse_params(items: list[str]) -> tuple[tuple[str, float], ...]:
    out = []
    for item in items or []:
        try:
            key, value = item.split("=")
            out.append((key, float(value)))
        except ValueError:
            raise UsageError(f"--set {item!r}: expected NAME=NUMBER, e.g. alpha=0.5") from None
    return tuple(sorted(out))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ppg-distill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    ieee_default = str(data_dir(IEEE_SPC2015))
    ieee_help = f"IEEE SPC 2015 folder (default: ${DATA_ENV}/ieee-spc2015, else ../shared/data/ieee-spc2015 beside the checkout: now {ieee_default})"
    common.add_argument("--ieee", default=ieee_default, help=f"{ieee_help}, or 'none'")
    common.add_argument("--dalia", type=Path, default=None, help="PPG-DaLiA folder with S*.pkl subjects, added to the study")
    common.add_argument("--wrist", type=Path, default=None, metavar="DIR",
                        help="wrist-ppg-exercise folder (*.csv + reference_bpm.json): the study within it, folds by subject (needs --ieee none)")
    common.add_argument("--folds", type=int, default=None,
                        help="subject-wise folds (12 = leave one subject out; default 4, with --wrist 3 = one per subject)")
    common.add_argument("--cache", type=Path, default=Path(".cache/ppg-distill"), help="windows and teacher checkpoints")
    common.add_argument("--threads", type=int, default=2, help="torch threads for training (default 2)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train-teacher", parents=[common], help="pre-train a 1D-ResNet teacher on synthetic data, fine-tune it per fold")
    t.add_argument("--size", default="T1", choices=["T1", "T2", "T3"])
    t.add_argument("--pretrain-recordings", type=int, default=40)
    t.add_argument("--pretrain-duration", type=float, default=300.0)
    t.add_argument("--pretrain-epochs", type=int, default=4)
    t.add_argument("--finetune-epochs", type=int, default=12)
    t.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="where the teacher's CV row goes")

    for name, help_text in (("distill", "cross-validate one student"), ("export", "train a student on all subjects and export it to ONNX")):
        d = sub.add_parser(name, parents=[common], help=help_text)
        d.add_argument("--strategy", default="scratch", help="scratch, hard, soft, dkd, feature")
        d.add_argument("--student", type=parse_student, default=("resnet", 16, 2), help="FAMILY:WIDTHxDEPTH (default resnet:16x2)")
        d.add_argument("--teacher", default="T1", help="teacher size (T1, T2, T3) for strategies that need one")
        d.add_argument("--epochs", type=int, default=30)
        d.add_argument("--seed", type=int, default=0)
        d.add_argument("--set", action="append", metavar="NAME=VALUE", help="strategy hyperparameter, e.g. --set temperature=2")
        d.add_argument("--mix-synthetic", type=int, default=0, metavar="N", help="add N synthetic 300 s recordings to the student's training data (default 0)")
        d.add_argument("--taper", choices=["hann", "rect"], default="hann", help="the spectral front end's window (default hann)")
        d.add_argument("--activities", type=int, default=0, metavar="N",
                       help="add N synthetic 240 s recordings of each activity scenario (arm exercise, boxing, ...) to the training data")
        d.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
        if name == "export":
            d.add_argument("--calibrate", action="store_true",
                           help="divide the logits by the temperature fitted on the held-out windows of this configuration's CV row")
            d.add_argument("--out", type=Path, required=True)
            d.add_argument("--name", default="student")
            d.add_argument("--version", default="1.0")

    s = sub.add_parser("sweep", parents=[common], help="strategies × student sizes × teachers, resumable")
    s.add_argument("--strategies", default="scratch,hard,soft,dkd,feature")
    s.add_argument("--families", default="resnet,mlp")
    s.add_argument("--teachers", default="T1")
    s.add_argument("--sizes", default="all", help="indices into each family's size list, e.g. 0,2,4 (default all)")
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--mix-synthetic", type=int, default=0, metavar="N", help="add N synthetic 300 s recordings to every student's training data")
    s.add_argument("--taper", choices=["hann", "rect"], default="hann", help="the spectral front end's window (default hann)")
    s.add_argument("--activities", type=int, default=0, metavar="N", help="add N synthetic recordings of each activity scenario")
    s.add_argument("--results", type=Path, default=DEFAULT_RESULTS)

    a = sub.add_parser("accuracy", help="tracker variants before/after per failure class: leave-one-subject-out + synthetic scenarios")
    a.add_argument("--ieee", default=ieee_default, help=ieee_help)
    a.add_argument("--cache", type=Path, default=Path(".cache/ppg-distill"), help="windows and per-fold probabilities")
    a.add_argument("--threads", type=int, default=1, help="torch threads for training (default 1)")
    a.add_argument("--folds", type=parse_folds, default=None, metavar="LIST", help="leave-one-subject-out folds to use, e.g. 0,3 (default all 12)")
    a.add_argument("--student", type=parse_student, default=("resnet", 16, 2), help="FAMILY:WIDTHxDEPTH (default resnet:16x2, the shipped student)")
    a.add_argument("--epochs", type=int, default=30)
    a.add_argument("--mix-synthetic", type=int, default=20, metavar="N", help="synthetic recordings added to each fold's training set (default 20)")
    a.add_argument("--taper", choices=["hann", "rect"], default="rect", help="the spectral front end's window (default rect, the shipped student's)")
    a.add_argument("--activities", type=int, default=12, metavar="N",
                   help="synthetic recordings of each activity scenario added to each fold's training set (default 12, the shipped student's)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--scenarios", type=int, default=6, metavar="N", help="recordings per synthetic scenario set (default 6; 0: none)")
    a.add_argument("--scenario-model", default="student", metavar="PATH", help="model giving the scenario sets' probabilities (default: the shipped student)")
    a.add_argument("--out", type=Path, default=None, help="also write the markdown tables to this file")

    v = sub.add_parser("devices", help="accuracy per data set and activity (other devices too), beside a beat and a spectral baseline, with the confidence check")
    v.add_argument("--model", default="student", metavar="PATH", help="ONNX model under the contract (default: the shipped student)")
    v.add_argument("--wrist", default=str(data_dir(WRIST_PPG_EXERCISE)), metavar="DIR",
                   help=f"Wrist PPG During Exercise folder, or 'none' (default: now {data_dir(WRIST_PPG_EXERCISE)})")
    v.add_argument("--ieee", default=ieee_default, help=f"{ieee_help}, or 'none'")
    v.add_argument("--scenarios", type=int, default=4, metavar="N", help="recordings per synthetic scenario set (default 4; 0: none)")
    v.add_argument("--variants", type=int, default=0, metavar="N",
                   help="also N device variants of each Wrist PPG During Exercise recording (another sampling rate, pulse shape, "
                        "noise, a turned accelerometer; models/augment.py), a data set of their own (default 0: none)")
    v.add_argument("--out", type=Path, default=None, help="also write the markdown table to this file")
    v.add_argument("--heartpy", choices=["auto", "yes", "no"], default="auto",
                   help="a HeartPy column on the same windows (the [bench] extra; default auto: where HeartPy imports)")

    d = sub.add_parser("devices-train", help="train the shipped recipe with device augmentation (leave-one-dataset-out: --train ieee, measure on the other)")
    d.add_argument("--train", choices=["ieee", "wrist", "both"], default="ieee", help="the real recordings to train on (default ieee)")
    d.add_argument("--ieee", default=ieee_default, help=ieee_help)
    d.add_argument("--wrist", default=str(data_dir(WRIST_PPG_EXERCISE)), metavar="DIR", help="Wrist PPG During Exercise folder")
    d.add_argument("--copies", type=int, default=2, metavar="N", help="device variants of every real recording (models/augment.py; default 2, 0: none)")
    d.add_argument("--variant-share", type=float, default=1.0, metavar="S",
                   help="share of each device variant's windows kept, at random (0 < S ≤ 1; default 1: all)")
    d.add_argument("--grip-share", type=float, default=None, metavar="G",
                   help="share of device variants with grip-type motion (0 ≤ G ≤ 1; default models/augment.py's GRIP_SHARE, 0.6)")
    d.add_argument("--walk-share", type=float, default=0.0, metavar="W",
                   help="share of device variants with a walking arm swing, its step line near the HR (0 ≤ W ≤ 1; default 0; "
                        "drawn first, --grip-share applies to the others)")
    d.add_argument("--walk-slow", action="store_true",
                   help="slow each walking variant first so its heart rate lies in a walker's range (70-120 bpm), labels scaled with it")
    d.add_argument("--epochs", type=int, default=30)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    d.add_argument("--mix-synthetic", type=int, default=20, metavar="N", help="synthetic recordings added (default 20, the shipped student's)")
    d.add_argument("--activities", type=int, default=12, metavar="N", help="activity recordings per scenario added (default 12)")
    d.add_argument("--cache", type=Path, default=Path(".cache/ppg-distill"), help="the generated windows")
    d.add_argument("--name", default="ppg-student")
    d.add_argument("--version", default="1.4")
    d.add_argument("--cv", type=int, default=0, metavar="FOLDS",
                   help="cross-validate subject-wise over the chosen recordings first (4: the model card's IEEE CV) and print it; with --out the "
                        "student then trained on all of them carries it (metadata `cv`, model card), as a shipped student must")
    d.add_argument("--cv-on", choices=["ieee", "wrist"], default="ieee",
                   help="with --cv and --train both: the data set whose recordings are held out (wrist: leave one subject out)")
    d.add_argument("--cv-probs", type=Path, default=None, metavar="DIR", help="with --cv: keep each held-out recording's probabilities (<subject>.npy)")
    d.add_argument("--out", type=Path, default=None, help="the ONNX file to write, its model card beside it (required unless --cv)")
    d.add_argument("--calibrate", nargs="?", const="nll", default=None, choices=["nll", "confidence"],
                   help="with --cv and --out: divide the student's logits by a temperature fitted on the CV's held-out windows, to their "
                        "cross-entropy (nll, the default) or to the published confidence's Brier score (confidence)")

    q = sub.add_parser("calibrate-confidence",
                       help="fit a map of the published confidence on a CV's held-out probabilities and write it into a model's metadata "
                            "(weights and bpm untouched)")
    q.add_argument("--model", type=Path, required=True, metavar="PATH", help="the ONNX model the CV's recipe trained")
    q.add_argument("--cv-probs", type=Path, required=True, metavar="DIR", help="its held-out probabilities (devices-train --cv K --cv-probs DIR)")
    q.add_argument("--out", type=Path, default=None, metavar="PATH",
                   help="write the calibrated model here (may be --model itself); without it nothing is written: the figures say whether to")
    q.add_argument("--folds", type=int, default=4, help="the CV's folds over IEEE SPC 2015 (the model card's: 4), to cross-fit over")
    q.add_argument("--ieee", default=ieee_default, help=ieee_help)
    q.add_argument("--wrist", default=str(data_dir(WRIST_PPG_EXERCISE)), metavar="DIR",
                   help="Wrist PPG During Exercise folder: the off-device check (a model that never trained on it), or --fit-on-wrist")
    q.add_argument("--fit-on-wrist", action="store_true",
                   help="also fit on the model's own outputs on Wrist PPG During Exercise (it must never have trained on it), one subject "
                        "per fold: a map that has seen another device")

    c = sub.add_parser("teacher-screen", parents=[common],
                       help="privileged-context teachers (neighbouring windows, non-causal) trained and scored on a few leave-one-subject-out folds")
    c.add_argument("--candidates", default="R32x3+fb",
                   help="privileged-context teachers: context nets C32,C64,C64r5,C64r12,C128; per-window ResNets with the non-causal "
                        "smoother R16x2+fb,R32x3+fb,R64x4+fb; eM for an ensemble of M seeds, e.g. C64e3 (default R32x3+fb)")
    c.add_argument("--only", type=parse_folds, default=None, metavar="LIST", help="folds to train and score (default 0,4,9; with --wrist all 3)")
    c.add_argument("--epochs", type=int, default=20)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--synthetic", type=int, default=40, metavar="N",
                   help="synthetic 300 s recordings of the teachers' pre-training corpus added to each fold's training set (default 40; 0: none)")
    c.add_argument("--out", type=Path, default=Path("results/teacher_screen.jsonl"), help="one JSON line per candidate and fold (appended)")
    c.set_defaults(default_folds=12)

    b = sub.add_parser("baseline", parents=[common], help="score the non-learned spectral estimator on the study's windows (the report's 'did it learn' line)")
    b.add_argument("--results", type=Path, default=DEFAULT_RESULTS)

    y = sub.add_parser("latency", help="every architecture's single-window latency in one session (read by the report's latency plot)")
    y.add_argument("--out", type=Path, default=Path("results/latency.jsonl"), help="one JSON line per architecture (replaced: one session)")
    y.add_argument("--rounds", type=int, default=5, help="timing rounds over every architecture; the best is kept (default 5)")
    y.add_argument("--only", default=None, metavar="NAMES", help="comma-separated architectures, e.g. 'resnet 16x2,T1' (default: all)")

    x = sub.add_parser("cross-data", help="models trained on IEEE SPC 2015 scored on wrist-ppg-exercise (another device), per recording")
    x.add_argument("--wrist", type=Path, default=None, help="wrist-ppg-exercise folder (default: $PPG_STREAM_DATA/wrist-ppg-exercise)")
    x.add_argument("--models", default="spectral,student", help="models under the contract: built-in names or .onnx files (default spectral,student)")
    x.add_argument("--teachers", default="", help="context teachers whose 12 leave-one-subject-out checkpoints are averaged (e.g. R32x3+fb)")
    x.add_argument("--cache", type=Path, default=Path(".cache/ppg-distill"), help="windows and teacher checkpoints")
    x.add_argument("--out", type=Path, default=Path("results/cross_data.jsonl"), help="one JSON line per model and recording (appended)")

    r = sub.add_parser("report", parents=[common], help="scaling-law fits, plots and a markdown summary of a results file")
    r.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    r.add_argument("--out", type=Path, default=Path("results/report"))
    r.add_argument("--readme", type=Path, default=None, help="also write the 'Against the paper' section into this README, between its markers")
    r.add_argument("--screen", type=Path, default=None,
                   help="teacher-screen rows to report beside the study (default: teacher_screen.jsonl beside --results, if there)")
    return p


def missing_extra(command: str) -> list[str]:
    """The modules of the [train] extra this command needs that are not installed."""
    return [name for name in NEEDS.get(command, ()) if importlib.util.find_spec(name) is None]


def _check_common(args) -> None:
    """The options every data command shares, checked before any data is read."""
    if args.wrist is not None:
        _check_wrist(args)
    if args.folds is None:  # leave one subject out within wrist-ppg-exercise; else the command's own default
        args.folds = 3 if args.wrist is not None else getattr(args, "default_folds", 4)
    if args.folds < 2:
        raise UsageError(f"--folds {args.folds}: at least 2 (12 = leave one subject out of IEEE SPC 2015)")
    if args.threads < 1:
        raise UsageError(f"--threads {args.threads}: at least 1")
    if args.ieee == "none" and args.dalia is None and args.wrist is None:
        raise UsageError("no training data: --ieee none needs --dalia DIR or --wrist DIR")


def _check_wrist(args) -> None:
    """--wrist DIR: a folder of the data set's recordings and their reference, studied on its own."""
    from ..replay.wrist_exercise import wrist_exercise_paths

    if args.ieee != "none" or args.dalia is not None:
        raise UsageError("--wrist is a study of its own (leave one subject out within wrist-ppg-exercise): add --ieee none, drop --dalia")
    if not args.wrist.is_dir():
        raise UsageError(f"--wrist {args.wrist}: no such folder")
    try:
        wrist_exercise_paths(args.wrist)
    except FileNotFoundError as e:
        raise UsageError(f"--wrist {args.wrist}: {e}") from None


def _check_run(args, strategy: str, teacher: str | None) -> bool:
    """A run's own options (strategy, its hyperparameters, the training mix), before any data is read;
    whether the strategy needs a teacher."""
    from .architectures import TEACHER_SIZES
    from .context_teacher import parse_context_teacher
    from .losses import build_strategy

    try:
        built = build_strategy(strategy, **dict(parse_params(getattr(args, "set", None))))
    except ValueError as e:
        raise UsageError(str(e)) from None
    needs_teacher = built.needs_teacher
    context = parse_context_teacher(teacher) is not None
    if needs_teacher and teacher not in TEACHER_SIZES and not context:
        raise UsageError(f"teacher {teacher!r}: one of {', '.join(TEACHER_SIZES)}, or a privileged-context teacher such as R32x3+fb (ppg-distill teacher-screen)")
    if needs_teacher and context and built.needs_features:
        raise UsageError(f"strategy {strategy!r} needs the teacher's features; the context teacher {teacher} gives only its outputs")
    if args.epochs < 1:
        raise UsageError(f"--epochs {args.epochs}: at least 1")
    if args.mix_synthetic < 0:
        raise UsageError("--mix-synthetic must be 0 or more")
    if args.activities < 0:
        raise UsageError("--activities must be 0 or more")
    return needs_teacher


def _data(args):
    from .study import load_study_data

    if getattr(args, "wrist", None) is not None:
        return load_study_data(None, args.folds, args.cache, wrist_dir=args.wrist)
    ieee = None if args.ieee == "none" else Path(args.ieee)
    if ieee is not None and not any(ieee.glob("DATA_*_TYPE*.mat")):
        raise UsageError(f"--ieee {ieee}: no IEEE SPC 2015 recordings (DATA_*_TYPE*.mat) there; {where_to_get(IEEE_SPC2015)} (or give --ieee DIR)")
    if args.dalia is not None and not any(args.dalia.rglob("S*.pkl")):
        raise UsageError(f"--dalia {args.dalia}: no PPG-DaLiA subjects (S*.pkl) there; get them from {PPG_DALIA.source}")
    if ieee is None and args.dalia is None:
        raise UsageError("no training data: --ieee none needs --dalia DIR")
    return load_study_data(ieee, args.folds, args.cache, args.dalia)


def _run_config(args, data, family, width, depth, strategy, teacher):
    from .study import RunConfig

    needs_teacher = _check_run(args, strategy, teacher)
    return RunConfig(strategy, family, width, depth, teacher if needs_teacher else None, args.epochs, args.seed,
                     parse_params(getattr(args, "set", None)), data.name, args.mix_synthetic, len(data.folds), args.taper, args.activities)


def cmd_train_teacher(args) -> int:
    from .study import append_result, completed_keys, pretraining_corpus, teacher_row, train_teacher

    _check_common(args)
    for option in ("pretrain_recordings", "pretrain_epochs", "finetune_epochs"):
        if getattr(args, option) < 1:
            raise UsageError(f"--{option.replace('_', '-')} {getattr(args, option)}: at least 1")
    if args.pretrain_duration < 30:
        raise UsageError(f"--pretrain-duration {args.pretrain_duration:g}: at least 30 s")
    data = _data(args)
    corpus = pretraining_corpus(args.pretrain_recordings, args.pretrain_duration, args.cache)
    train_teacher(args.size, data, corpus, args.pretrain_epochs, args.finetune_epochs, [*range(args.folds), "all"], args.cache, threads=args.threads)
    row = teacher_row(args.size, data, args.cache)
    if row["key"] not in completed_keys(args.results):
        append_result(args.results, row)
    print(f"teacher {args.size}: {row['params']:,} parameters, CV MAE {row['mae']:.2f} bpm tracked "
          f"({row['mae_untracked']:.2f} window by window); checkpoints in {args.cache / 'teachers'}")
    return 0


def cmd_distill(args) -> int:
    from .study import append_result, run_cv

    _check_common(args)
    _check_run(args, args.strategy, args.teacher)
    data = _data(args)
    run = _run_config(args, data, *args.student, args.strategy, args.teacher)
    row = run_cv(run, data, args.cache, progress=True, threads=args.threads)
    append_result(args.results, row)
    print(json.dumps(row))
    return 0


def cmd_sweep(args) -> int:
    from tqdm import tqdm

    from .architectures import STUDENT_SIZES
    from .study import append_result, completed_keys, run_cv

    _check_common(args)
    plan = []  # (family, width, depth, strategy, teacher), every option checked before the data is read
    for family in args.families.split(","):
        if family not in STUDENT_SIZES:
            raise UsageError(f"--families: unknown family {family!r} (resnet, mlp)")
        try:
            sizes = STUDENT_SIZES[family] if args.sizes == "all" else [STUDENT_SIZES[family][int(i)] for i in args.sizes.split(",")]
        except (ValueError, IndexError):
            raise UsageError(f"--sizes {args.sizes!r}: indices 0-{len(STUDENT_SIZES[family]) - 1} into the {family} sizes, or 'all'") from None
        for width, depth in sizes:
            for strategy in args.strategies.split(","):
                teachers = [None] if strategy == "scratch" else args.teachers.split(",")
                for teacher in teachers:
                    _check_run(args, strategy, teacher)
                    plan.append((family, width, depth, strategy, teacher))
    data = _data(args)
    runs = [_run_config(args, data, *entry) for entry in plan]
    done = completed_keys(args.results)
    todo = [r for r in runs if r.key not in done]
    print(f"{len(runs)} runs, {len(runs) - len(todo)} already in {args.results}")
    for run in tqdm(todo, desc="sweep"):
        append_result(args.results, run_cv(run, data, args.cache, threads=args.threads))
    return 0


def cmd_report(args) -> int:
    from .report import load_results, render, update_readme

    if not args.results.exists():
        raise UsageError(f"--results {args.results}: no such file (run ppg-distill sweep first)")
    if args.readme is not None:
        from .report import README_BEGIN, README_END

        text = args.readme.read_text() if args.readme.is_file() else ""
        if README_BEGIN not in text or README_END not in text:  # said before the report is written, not after
            raise UsageError(f"--readme {args.readme}: no '{README_BEGIN}' … '{README_END}' markers to write the section between")
    screen = args.screen if args.screen is not None else args.results.with_name("teacher_screen.jsonl")
    if args.screen is not None and not screen.exists():
        raise UsageError(f"--screen {screen}: no such file (run ppg-distill teacher-screen first)")
    beside = {name: args.results.with_name(f"{name}.jsonl") for name in ("cross_data", "wrist_sweep", "wrist_teacher_screen", "latency")}
    found = {name: load_results(path) if path.exists() else None for name, path in beside.items()}  # each read when there
    summary = render(load_results(args.results), args.out, screen=load_results(screen) if screen.exists() else None,
                     cross=found["cross_data"], wrist=found["wrist_sweep"], wrist_screen=found["wrist_teacher_screen"],
                     latency=found["latency"])
    text = summary.read_text()
    if args.readme is not None:
        update_readme(args.readme, text)
    print(text)
    return 0


def cmd_export(args) -> int:
    from .architectures import build, n_parameters
    from .checkpoint import load_checkpoint
    from .export import ExportMismatch, export
    from .losses import build_strategy
    from .dataset import WindowSet
    from .calibration import apply_temperature
    from .metadata import trained_metadata
    from .study import ACTIVITY_DURATION_S, MIX_DURATION_S, completed_keys, onnx_file_costs, teacher_path, training_extras
    from .targets import training_spec
    from ..stream.core.student_spec import student_spec
    from .train import TeacherOutputs, TrainConfig, train_model

    _check_common(args)
    if args.wrist is not None:
        raise UsageError("export ships a student trained on IEEE SPC 2015 / PPG-DaLiA; --wrist is for the study's commands")
    _check_run(args, args.strategy, args.teacher)
    data = _data(args)
    run = _run_config(args, data, *args.student, args.strategy, args.teacher)
    strategy = build_strategy(run.strategy, **dict(run.params))
    extras = training_extras(run.mix, run.activities, args.cache)
    train_set = WindowSet.concat([data.labelled, *extras])
    cv = {}
    if run.key in completed_keys(args.results):
        from .report import load_results

        cv = next(r for r in load_results(args.results) if r["key"] == run.key)
    if args.calibrate and "temperature" not in cv:
        raise UsageError(f"--calibrate needs this configuration's CV row with a temperature in {args.results}: run ppg-distill distill with the same options first")
    teacher = None
    if strategy.needs_teacher:
        teacher_model, _ = load_checkpoint(teacher_path(run.teacher, "all", data, args.cache))
        teacher = TeacherOutputs.compute(teacher_model, train_set.x, strategy.needs_features)
    model = build(run.family, training_spec(run.taper), run.width, run.depth, seed=run.seed)
    train_model(model, train_set, TrainConfig(epochs=run.epochs, seed=run.seed, threads=args.threads), strategy, teacher, progress=True)
    temperature = float(cv["temperature"]) if args.calibrate else 1.0
    apply_temperature(model, temperature)
    metadata = {
        "strategy": run.strategy, "teacher": run.teacher or "none", "architecture": f"{run.family}:{run.width}x{run.depth}",
        "parameters": str(n_parameters(model)), "strategy_params": json.dumps(strategy.params), "epochs": str(run.epochs),
        **trained_metadata(cv, data.name.split("+")),
        "synthetic_mix": str(run.mix), "activities": str(run.activities), "temperature": f"{temperature:.4g}",
        "data": data.name,
    }
    sources = {"ieee": "IEEE SPC 2015 (12 subjects)", "dalia": "PPG-DaLiA", "ieee+dalia": "IEEE SPC 2015 (12 subjects) + PPG-DaLiA"}[data.name]
    mixed = (f" + {run.mix} synthetic recordings of {MIX_DURATION_S:g} s" if run.mix else "") + (
        f" + {run.activities} synthetic recordings of {ACTIVITY_DURATION_S:g} s per activity scenario" if run.activities else "")
    spec = student_spec(args.name, args.version, f"{sources}{mixed} + synthetic pre-training of the teacher",
                        f"{run.family} student distilled with {run.strategy}", metadata, taper=run.taper)
    try:
        diff = export(model, spec, args.out, check_windows=data.labelled.x[:256])
    except ExportMismatch as e:
        raise ExportFailed(str(e)) from None
    costs = onnx_file_costs(args.out)
    card = args.out.with_suffix(".md")
    card.write_text(model_card(args.out.name, spec, metadata, cv, costs, diff))
    print(f"wrote {args.out}: {costs['onnx_bytes']:,} bytes, {n_parameters(model):,} parameters, "
          f"{costs['latency_us']:.0f} µs per window, torch vs onnxruntime max |Δlogit| {diff:.2e}; model card {card}")
    return 0


def model_card(filename: str, spec, metadata: dict, cv: dict, costs: dict, diff: float, command: str | None = None) -> str:
    """The model card shipped beside an exported student (everything a user needs to trust or replace it);
    `command`: what made it, where that is not `ppg-distill export`."""
    from .study import ACTIVITY_DURATION_S, MIX_DURATION_S, SCENARIO_TEST, SYNTHETIC_TEST

    where = {"ieee": "the 12 IEEE SPC 2015 recordings", "dalia": "the PPG-DaLiA subjects", "ieee+dalia": "the IEEE SPC 2015 and PPG-DaLiA subjects",
             "wrist": "the 8 Wrist PPG During Exercise recordings",
             "both": "the 12 IEEE SPC 2015 recordings and the 8 Wrist PPG During Exercise recordings"}[metadata["data"]]
    cv_line = (f"{cv['folds']}-fold subject-wise CV on {cv.get('on', where)} ({cv['windows']} windows): "
               f"MAE {cv['mae']:.2f} bpm with tracking ({cv['mae_untracked']:.2f} window by window), RMSE {cv['rmse']:.2f}, "
               f"{100 * cv['within5']:.1f} % within 5 bpm" if cv else "no cross-validation row for this configuration in the results file")
    if cv.get("mae_synthetic") is not None:
        cv_line += (f"; on {SYNTHETIC_TEST[0]} held-out synthetic recordings (HR 45-185 bpm, mixed motion) MAE "
                    f"{cv['mae_synthetic']:.2f} bpm with tracking ({cv['mae_synthetic_untracked']:.2f} window by window)")
    if cv.get("scenarios"):
        per_kind = ", ".join(f"{k.replace('_', ' ')} {m['mae']:.2f} ({m['mae_untracked']:.2f}" + (f"; ECE {m['ece']:.2f})" if "ece" in m else ")")
                             for k, m in sorted(cv["scenarios"].items()))
        cv_line += (f"; on held-out activity scenarios ({SCENARIO_TEST[0]} recordings of {SCENARIO_TEST[1]:g} s per activity, another seed than "
                    f"training), MAE tracked (window by window{'; ECE of the confidence' if 'ece' in next(iter(cv['scenarios'].values())) else ''}): {per_kind}")
    temperature = float(metadata.get("temperature", "1"))
    calibration = ""
    if cv.get("ece") is not None:
        calibration = (f"\n- **Confidence**: the published confidence is the probability mass within ±5 bpm. On the held-out windows its "
                       f"expected calibration error is {cv['ece']:.3f} as trained, {cv['ece_calibrated']:.3f} after a temperature "
                       f"cross-fitted over the folds{' to the published confidence (Brier score)' if cv.get('temperature_fit') == 'confidence' else ''} "
                       f"(T = {cv['temperature']:.2f}; tracked MAE with it {cv['mae_calibrated']:.2f} bpm). "
                       + (f"This file has T = {temperature:.3g} baked into its last layer (logits divided by T)." if temperature != 1.0
                          else "This file is not temperature-scaled."))
    has_teacher = metadata["teacher"] != "none"
    teacher_text = "; the teacher was pre-trained on the project's synthetic corpus" if has_teacher else ""
    reproduce = f"`ppg-distill train-teacher --size {metadata['teacher']}` then\n  " if has_teacher else ""
    teacher_arg = f" --teacher {metadata['teacher']}" if has_teacher else ""
    mix = int(metadata.get("synthetic_mix", "0"))
    activities = int(metadata.get("activities", "0"))
    mix_text = f" plus {mix} synthetic recordings of {MIX_DURATION_S:g} s from the project's generator" if mix else ""
    if metadata.get("device_copies"):
        share = float(metadata.get("variant_share", "1"))
        kept = (f", {100 * share:g} % of each variant's windows kept" if share < 1 else "") + (
            f", {100 * float(metadata['grip_share']):g} % of variants with grip motion" if "grip_share" in metadata else "") + (
            f", {100 * float(metadata['walk_share']):g} % with a walking arm swing" + (", slowed to a walker's HR" if "walk_slow" in metadata else "")
            if "walk_share" in metadata else "")
        motion = "grip motion, walking arm swing" if "walk_share" in metadata else "grip motion"
        mix_text = f", each with {metadata['device_copies']} device variants (models/augment.py: rate, pulse shape, {motion}{kept})" + mix_text
    if activities:
        mix_text += (f" and {activities} synthetic recordings of {ACTIVITY_DURATION_S:g} s per activity scenario (arm exercise, boxing, "
                     "walking, stairs, aperiodic motion, rest with irregular beats: `replay/activity.py`)")
    limits = ("12 running subjects of one data set (reference HR 69-177 bpm); the synthetic recordings widen the HR range to "
              "45-185 bpm, but real data below 69 or above 177 bpm was never seen." if mix or activities else
              "12 running subjects of one data set, reference HR 69-177 bpm (±10 % time-stretch widens that to about "
              "62-195 bpm): lower or higher rates are outside what it learnt.")
    if metadata.get("device_copies"):
        limits = (f"real recordings: {where} and device variants generated from them; other devices were seen only as those "
                  "variants, and the synthetic recordings widen the HR range to 45-185 bpm." if mix or activities else
                  f"real recordings: {where} and device variants generated from them; other devices were seen only as those variants.")
    if activities:
        limits += " Arm exercise, boxing, everyday activity and irregular rhythms were seen only as synthetic recordings."
    taper = spec.taper
    flags = (f" --mix-synthetic {mix}" if mix else "") + (f" --activities {activities}" if activities else "") + (
        f" --taper {taper}" if taper != "hann" else "")
    calibrate = " --calibrate" if temperature != 1.0 else ""
    distill_first = (f"`ppg-distill distill --strategy {metadata['strategy']} --student {metadata['architecture']}{teacher_arg}{flags}` "
                     "(the CV row the temperature comes from), then\n  " if calibrate else "")
    command = command or (f"{reproduce}{distill_first}`ppg-distill export --strategy {metadata['strategy']} --student "
                          f"{metadata['architecture']}{teacher_arg}{flags}{calibrate} --out {filename}`")
    return f"""# Model card: {spec.name}@{spec.version} (`{filename}`)

- **Task**: heart rate from one 8 s window of wrist PPG + 3-axis accelerometer at {spec.fs:g} Hz, as logits over
  {len(spec.bins_bpm)} one-bpm bins ({spec.bins_bpm[0]:g}-{spec.bins_bpm[-1]:g} bpm); the ppg-stream runtime tracks them causally.
- **Architecture**: {metadata['architecture']} on the fixed spectral front end (DFT at the bin centres with a {"rectangular" if taper == "rect" else "Hann"}
  taper, computed in the graph; metadata `taper` = `{taper}`); {int(metadata['parameters']):,} trainable parameters.
- **Training**: strategy `{metadata['strategy']}` ({metadata['strategy_params']}), teacher {metadata['teacher']},
  {metadata['epochs']} epochs, on all of {where}{mix_text}{teacher_text}.
- **Accuracy**: {cv_line}. The shipped weights are retrained on all subjects with the same configuration.{calibration}
- **Cost**: {costs['onnx_bytes']:,} bytes of ONNX; {costs['latency_us']:.0f} µs per window in onnxruntime on one thread
  (median of 300); session memory about {costs['session_rss_kib']:,} KiB. torch and onnxruntime agree to {diff:.1e} on the logits
  (the export fails above 1e-2).
- **Preprocessing** (in the metadata, applied by the runtime): band-pass {spec.bandpass_hz[0]:g}-{spec.bandpass_hz[1]:g} Hz order
  {spec.bandpass_order}, resampling to {spec.fs:g} Hz, PPG standardised per window, accelerometer in g.
- **Limits**: {limits} Not validated on other activities, skin tones or devices.
  Not a medical device.
- **Licence of the training data**: {metadata['licence_training_data']}. The synthetic data is the project's own.
- **Reproduce**: {command}.
"""


def cmd_baseline(args) -> int:
    from .baseline import constant_baseline_row, spectral_baseline_row
    from .study import append_result, completed_keys

    _check_common(args)
    data = _data(args)
    for name, row in (("spectral", spectral_baseline_row(data)), ("constant (training median HR per fold)", constant_baseline_row(data))):
        if row["key"] not in completed_keys(args.results):
            append_result(args.results, row)
        print(f"{name} baseline: MAE {row['mae']:.2f} bpm tracked, {row['mae_untracked']:.2f} window by window ({row['windows']} windows)")
    return 0


def cmd_cross_data(args) -> int:
    import numpy as np

    from ..replay.data_sets import WRIST_PPG_EXERCISE
    from .context_teacher import load_context_teacher, parse_context_teacher
    from .cross_data import onnx_probabilities, score, wrist_windows
    from .dataset import WindowSet
    from .study import StudyData, append_result, teacher_path
    from ..stream.core.decode import softmax

    wrist = args.wrist if args.wrist is not None else data_dir(WRIST_PPG_EXERCISE)
    if not (Path(wrist) / "reference_bpm.json").exists():
        raise UsageError(f"--wrist {wrist}: no wrist-ppg-exercise folder (reference_bpm.json and *.csv) there; {where_to_get(WRIST_PPG_EXERCISE)}")
    teachers = [t for t in args.teachers.split(",") if t]
    unknown = [t for t in teachers if parse_context_teacher(t) is None]
    if unknown:
        raise UsageError(f"--teachers: not a context teacher: {', '.join(unknown)} (e.g. R32x3+fb)")
    cached = args.cache / "wrist_windows.npz"
    windows = WindowSet.load(cached) if cached.exists() else wrist_windows(Path(wrist))
    if not cached.exists():
        args.cache.mkdir(parents=True, exist_ok=True)
        windows.save(cached)
    rows = []
    for model in [m for m in args.models.split(",") if m]:
        rows += score(model, onnx_probabilities(model, windows), windows, {"trained_on": "ieee"})
    loso = StudyData(windows, [np.array([s]) for s in [f"DATA_{i:02d}" for i in range(1, 13)]], "ieee")  # names the LOSO checkpoints
    for name in teachers:
        paths = [p for p in (teacher_path(name, fold, loso, args.cache) for fold in range(12)) if p.exists()]
        if not paths:
            raise UsageError(f"--teachers {name}: none of its leave-one-subject-out checkpoints is in {args.cache}; "
                             f"run ppg-distill teacher-screen --candidates {name} --only 0,1,2,3,4,5,6,7,8,9,10,11")
        for smooth in (False, True):
            logp = np.mean([load_context_teacher(p)[0].logits(windows, smooth=smooth) for p in paths], axis=0)
            label = f"{name} ({len(paths)} LOSO checkpoints averaged{', smoother' if smooth else ', no smoother'})"
            rows += score(label, softmax(logp), windows, {"trained_on": "ieee"})
    for row in rows:
        append_result(args.out, row)
    from .cross_data import cross_data_section

    print(cross_data_section(rows))
    return 0


def cmd_teacher_screen(args) -> int:
    from .context_teacher import CONTEXT_TEACHERS, WINDOW_TEACHERS, ContextConfig, parse_context_teacher, screen
    from .study import append_result, pretraining_corpus, teacher_path

    _check_common(args)
    names = args.candidates.split(",")
    unknown = [n for n in names if parse_context_teacher(n) is None]
    if unknown:
        raise UsageError(f"--candidates: unknown context teacher(s) {', '.join(unknown)}: a context net ({', '.join(CONTEXT_TEACHERS)}) "
                         f"or a per-window ResNet with the smoother ({', '.join(n + '+fb' for n in WINDOW_TEACHERS)}); eM for an ensemble of M (2-9), "
                         "+fb for forward-backward smoothing over the recording")
    if args.epochs < 1 or args.synthetic < 0:
        raise UsageError("--epochs must be 1 or more, --synthetic 0 or more")
    if args.only is None:
        args.only = list(range(args.folds)) if args.wrist is not None else [0, 4, 9]
    if args.only[-1] >= args.folds:
        raise UsageError(f"--only: {args.folds} folds, numbered 0-{args.folds - 1}")
    data = _data(args)
    extra = pretraining_corpus(args.synthetic, 300.0, args.cache) if args.synthetic else None
    screen(names, data, args.only, extra, ContextConfig(epochs=args.epochs, seed=args.seed, threads=args.threads),
           path_of=lambda name, fold: teacher_path(name, fold, data, args.cache),
           on_row=lambda row: append_result(args.out, {**row, "folds": len(data.folds), "data": data.name, "seed": args.seed,
                                                        "synthetic": args.synthetic}))
    return 0


def _print_and_keep(text: str, out: Path | None) -> None:
    """A table command's markdown: printed, and also written to --out where one is given."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    print(text)


def cmd_latency(args) -> int:
    from .latency import architectures, measure

    if args.rounds < 1:
        raise UsageError("--rounds must be 1 or more")
    names = [name for name, _ in architectures()]
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only is not None else None
    unknown = [n for n in only or [] if n not in names]
    if unknown or only == []:
        raise UsageError(f"--only {args.only!r}: choose from {', '.join(names)}")
    rows = measure(args.rounds, only)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print("| architecture | parameters | ONNX bytes | latency µs (best round) | rounds µs |\n|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['name']} | {r['params']:,} | {r['onnx_bytes']:,} | {r['latency_us']:.1f} | {', '.join(f'{v:.1f}' for v in r['latency_rounds_us'])} |")
    print(f"\n{len(rows)} architectures, {args.rounds} rounds, load average {rows[0]['load_average']}: {args.out}")
    return 0


def cmd_accuracy(args) -> int:
    from .accuracy import onnx_predictor, report, scenario_windows
    from .oof import Recipe, out_of_fold
    from .scenarios import SCENARIO_SETS
    from .study import load_study_data

    ieee = Path(args.ieee)
    if not any(ieee.glob("DATA_*_TYPE*.mat")):
        raise UsageError(f"--ieee {ieee}: no IEEE SPC 2015 recordings (DATA_*_TYPE*.mat) there; {where_to_get(IEEE_SPC2015)} (or give --ieee DIR)")
    if args.epochs < 1 or args.mix_synthetic < 0 or args.scenarios < 0 or args.threads < 1 or args.activities < 0:
        raise UsageError("--epochs and --threads must be 1 or more, --mix-synthetic, --activities and --scenarios 0 or more")
    data = load_study_data(ieee, 12, args.cache)
    folds = args.folds if args.folds is not None else list(range(len(data.folds)))
    if folds[-1] >= len(data.folds):
        raise UsageError(f"--folds: {len(data.folds)} leave-one-subject-out folds, numbered 0-{len(data.folds) - 1}")
    family, width, depth = args.student
    recipe = Recipe(family, width, depth, args.epochs, args.mix_synthetic, args.seed, args.threads, args.taper, args.activities)
    sets = {f"IEEE SPC 2015, leave-one-subject-out ({len(folds)} of {len(data.folds)} folds)": out_of_fold(data, recipe, folds, args.cache)}
    if args.scenarios:
        predict = onnx_predictor(args.scenario_model)
        for name, make in SCENARIO_SETS.items():
            sets[f"synthetic: {name} ({args.scenarios} × 300 s)"] = scenario_windows(make(args.scenarios, 1), predict)
    text = report(sets)
    _print_and_keep(text, args.out)
    return 0


def cmd_devices(args) -> int:
    from .accuracy import onnx_predictor
    from .across import evaluate, ieee_set, markdown, scenario_set, wrist_exercise_set, wrist_variant_set
    from .heartpy_baseline import heartpy_problem

    if args.scenarios < 0:
        raise UsageError("--scenarios must be 0 or more")
    if args.variants < 0:
        raise UsageError("--variants must be 0 or more")
    no_heartpy = heartpy_problem() if args.heartpy != "no" else "HeartPy column left out (--heartpy no)"
    if no_heartpy and args.heartpy == "yes":
        raise UsageError(f"--heartpy yes: {no_heartpy}")
    hp = no_heartpy is None
    if args.model not in ("student", "spectral") and not Path(args.model).is_file():
        raise UsageError(f"--model {args.model}: no such file")
    from ..stream.core.engine import InferenceEngine

    predict = onnx_predictor(args.model)
    spec = InferenceEngine(str(args.model)).spec
    trained_on = spec.training_data  # which data sets are not held out for this model
    loaders = {"Wrist PPG During Exercise": (lambda: wrist_exercise_set(args.wrist, "Wrist PPG During Exercise" in trained_on, hp))
               if args.wrist != "none" else None,
               "IEEE SPC 2015": (lambda: ieee_set(args.ieee, "IEEE SPC 2015" in trained_on, hp)) if args.ieee != "none" else None,
               "synthetic scenarios": (lambda: scenario_set(args.scenarios, heartpy=hp)) if args.scenarios else None,
               "Wrist PPG During Exercise, device variants": (lambda: wrist_variant_set(args.variants, args.wrist, heartpy=hp))
               if args.variants and args.wrist != "none" else None}
    results, skipped = [], [no_heartpy] if no_heartpy else []
    for name, load in loaders.items():
        if load is None:
            continue
        try:
            recordings = load()
        except FileNotFoundError as e:
            skipped.append(f"{name}: skipped ({e})")
            continue
        results += [evaluate(rec, predict, spec.confidence_map) for rec in recordings]
    if not results:
        raise UsageError("no data set to measure on: " + "; ".join(skipped or ["all were turned off"]))
    calibrated = f" (published confidence calibrated by its map, {spec.confidence_map.to_metadata()})" if spec.confidence_map else ""
    text = f"Model: {args.model}{calibrated}\n\n" + markdown(results) + "".join(f"\n{line}\n" for line in skipped)
    _print_and_keep(text, args.out)
    return 0


def cmd_calibrate_confidence(args) -> int:
    import numpy as np

    from .across import wrist_exercise_set
    from .published_confidence import calibrate, load_held_out, model_held_out, off_device, write_confidence_map
    from ..stream.core.engine import InferenceEngine
    from ..stream.core.student_spec import BINS_BPM

    if not args.model.is_file():
        raise UsageError(f"--model {args.model}: no such file")
    if not args.cv_probs.is_dir():
        raise UsageError(f"--cv-probs {args.cv_probs}: no such folder")
    if args.folds < 2:
        raise UsageError(f"--folds {args.folds}: at least 2")
    out = args.out
    if out is not None and not out.parent.is_dir():
        raise UsageError(f"--out {out}: no folder {out.parent}")
    spec = InferenceEngine(str(args.model)).spec  # under the contract, or refused by key
    if not np.array_equal(spec.bins_bpm, BINS_BPM):
        raise UsageError(f"--model {args.model}: its bins_bpm are not the training spec's 30-210 bpm, over which the CV's probabilities are")
    wrist_seen = "Wrist PPG During Exercise" in spec.training_data
    if args.fit_on_wrist and wrist_seen:
        raise UsageError(f"--fit-on-wrist: {args.model} trained on Wrist PPG During Exercise, so its outputs there are not held out")
    held = load_held_out(args.cv_probs, args.ieee, args.wrist)
    if args.fit_on_wrist:
        if any(not h.recording.name.startswith("DATA_") for h in held):
            raise UsageError("--fit-on-wrist: --cv-probs already holds Wrist PPG During Exercise recordings")
        held += model_held_out(args.model, wrist_exercise_set(args.wrist))
    fit = calibrate(held, args.folds)
    m = fit["map"]
    provenance = {"on": f"{fit['recordings']} held-out recordings in {fit['folds']} folds ({fit['windows']} windows): "
                        + ", ".join(fit["sets"]), "right": "published bpm within 5 bpm of the reference", "objective": "log loss (Platt)",
                  "ece": round(fit["ece"], 4), "ece_calibrated": round(fit["ece_calibrated"], 4)}
    print(f"{fit['folds']} folds, {fit['recordings']} held-out recordings, {fit['windows']} windows; each fold's map fitted on the others' "
          f"(a, b: {', '.join(f'{f.a:.2f} {f.b:+.2f}' for f in fit['fold_maps'])}); the published confidence before -> after:")
    for name, row in fit["sets"].items():
        print(_confidence_line(f"{name} (held out, cross-fitted)", row))
    if not args.fit_on_wrist and not wrist_seen:
        try:
            recordings = wrist_exercise_set(args.wrist)
        except FileNotFoundError:
            print("off the training device: skipped (no Wrist PPG During Exercise folder, --wrist)")
        else:
            print(_confidence_line("off the training device: Wrist PPG During Exercise (never trained on; the map as written)",
                                   off_device(model_held_out(args.model, recordings), m)))
    print(f"published MAE {fit['mae_published']:.2f} bpm, with the map {fit['mae_published_mapped']:.2f} (every bpm unchanged)")
    fitted = (f"confidence_map {m.to_metadata()} (a {m.a:.3f}, b {m.b:+.3f}; fitted on all held-out windows, ECE there "
              f"{fit['ece_in_sample']:.3f})")
    if out is None:
        print(f"not written (no --out): {fitted}")
        return 0
    write_confidence_map(args.model, out, m, provenance)
    print(f"wrote {out}: {fitted}; weights unchanged")
    return 0


def _confidence_line(title: str, row: dict) -> str:
    def check(n_ok: tuple[int, int]) -> str:
        n, ok = n_ok
        return f"{100 * ok / n:.1f} % of {n}" if n else "none"

    return (f"  {title}: {row['windows']} windows, {100 * row['right']:.1f} % within 5 bpm; ECE {row['ece']:.3f} -> {row['ece_calibrated']:.3f}; "
            f"confidence >= 0.9 within 10 bpm {check(row['confident'])} -> {check(row['confident_calibrated'])}; "
            f"reliable (>= 0.5) {100 * row['reliable']:.0f} % -> {100 * row['reliable_calibrated']:.0f} %")


DEVICE_DATA_SETS = {"ieee": ("ieee",), "wrist": ("wrist",), "both": ("ieee", "wrist")}  # devices-train --train → metadata.LICENCES


def cmd_devices_train(args) -> int:
    import numpy as np

    from .across import real_recordings, train_for_devices
    from .architectures import n_parameters
    from .export import ExportMismatch, export
    from .losses import build_strategy
    from .metadata import trained_metadata
    from .study import ACTIVITY_DURATION_S, MIX_DURATION_S, onnx_file_costs
    from ..stream.core.student_spec import student_spec

    if args.copies < 0 or args.epochs < 1 or args.threads < 1 or args.mix_synthetic < 0 or args.activities < 0:
        raise UsageError("--epochs and --threads must be 1 or more, --copies, --mix-synthetic and --activities 0 or more")
    if not 0.0 < args.variant_share <= 1.0:
        raise UsageError(f"--variant-share: a share above 0 and at most 1, not {args.variant_share:g}")
    if args.grip_share is not None and not 0.0 <= args.grip_share <= 1.0:
        raise UsageError(f"--grip-share: a share from 0 to 1, not {args.grip_share:g}")
    if not 0.0 <= args.walk_share <= 1.0:
        raise UsageError(f"--walk-share: a share from 0 to 1, not {args.walk_share:g}")
    if args.walk_slow and not args.walk_share:
        raise UsageError("--walk-slow slows the walking variants: it needs --walk-share above 0")
    if args.calibrate and not (args.cv and args.out is not None):
        raise UsageError("--calibrate needs --cv (the temperature is fitted on its held-out windows) and --out")
    if args.cv == 1 or args.cv < 0:
        raise UsageError("--cv: at least 2 folds (0: no cross-validation)")
    if not args.cv and args.out is None:
        raise UsageError("--out PATH is required (unless --cv)")
    recordings = real_recordings(args.train, args.ieee, args.wrist)
    cv: dict = {}
    if args.cv:
        from .across import cv_for_devices, ieee_groups, subject_groups
        from .calibration import cross_fitted
        from .study import HeldOutScores

        ieee = [r for r in recordings if r.subject.startswith("DATA_")]
        wrist = [r for r in recordings if not r.subject.startswith("DATA_")]
        if args.cv_on == "wrist" or args.train == "wrist":  # leave one subject out; IEEE (if trained on) in every fold
            groups, also = subject_groups(wrist), ieee
            on = "the Wrist PPG During Exercise subjects, one left out per fold" + (" (IEEE SPC 2015 in every fold)" if ieee else "")
        else:  # the model card's IEEE folds; with --train both the wrist recordings train in every fold
            groups, also = ieee_groups(ieee, args.cv), wrist
            on = "the 12 IEEE SPC 2015 recordings" + (" (the Wrist PPG During Exercise recordings in every fold)" if wrist else "")
        scores = HeldOutScores(args.cache)  # scored as `ppg-distill distill` scores the shipped recipe
        held = cv_for_devices(groups, also, args.copies, args.epochs, args.seed, args.threads, args.mix_synthetic, args.activities,
                              args.cache, progress=True, scores=scores, share=args.variant_share, grip_share=args.grip_share,
                              walk_share=args.walk_share, walk_slow=args.walk_slow)
        if args.cv_probs is not None:
            args.cv_probs.mkdir(parents=True, exist_ok=True)
            for subject, probs in held.items():
                np.save(args.cv_probs / f"{subject}.npy", probs)
        cv = {**scores.row(), **cross_fitted(scores.held_logits, scores.held_sets, args.calibrate or "nll"), "on": on}
        print(f"{len(groups)}-fold CV over {', '.join(sorted({r.subject.split('_')[0] for g in groups for r in g}))[:80]} ({cv['windows']} windows), "
              f"{args.copies} device variants per training recording: MAE {cv['mae']:.2f} bpm tracked "
              f"({cv['mae_untracked']:.2f} window by window), within 5 bpm {100 * cv['within5']:.1f} %; held-out synthetic "
              f"{cv['mae_synthetic']:.2f}, activity scenarios {cv['mae_scenarios']:.2f}; ECE {cv['ece']:.3f}")
        if args.out is None:
            return 0
    model, real = train_for_devices(recordings, args.copies, args.epochs, args.seed, args.threads, args.mix_synthetic, args.activities,
                                    args.cache, progress=True, share=args.variant_share, grip_share=args.grip_share, walk_share=args.walk_share,
                                    walk_slow=args.walk_slow)
    temperature = float(cv["temperature"]) if args.calibrate else 1.0
    if args.calibrate:
        from .calibration import apply_temperature

        apply_temperature(model, temperature)
    sources = {"ieee": "IEEE SPC 2015 (12 subjects)", "wrist": "Wrist PPG During Exercise (8 recordings, Jarchi & Casson 2017)",
               "both": "IEEE SPC 2015 (12 subjects) + Wrist PPG During Exercise (8 recordings, Jarchi & Casson 2017)"}[args.train]
    kept = (f", {100 * args.variant_share:g} % of each variant's windows" if args.variant_share < 1 else "") + (
        f", {100 * args.grip_share:g} % of variants with grip motion" if args.grip_share is not None else "") + (
        f", {100 * args.walk_share:g} % with a walking arm swing" + (", slowed to a walker's HR" if args.walk_slow else "") if args.walk_share else "")
    kept = f" ({kept[2:]})" if kept else ""
    training_data = (f"{sources}, each with {args.copies} device variants{kept} (models/augment.py)"
                     + (f" + {args.mix_synthetic} synthetic recordings of {MIX_DURATION_S:g} s" if args.mix_synthetic else "")
                     + (f" + {args.activities} synthetic recordings of {ACTIVITY_DURATION_S:g} s per activity scenario" if args.activities else ""))
    metadata = {"strategy": "scratch", "teacher": "none", "architecture": "resnet:16x2", "parameters": str(n_parameters(model)),
                "strategy_params": json.dumps(build_strategy("scratch").params), "epochs": str(args.epochs),
                **trained_metadata(cv, DEVICE_DATA_SETS[args.train]),
                "synthetic_mix": str(args.mix_synthetic), "activities": str(args.activities), "temperature": f"{temperature:.4g}",
                **({"temperature_fit": args.calibrate} if args.calibrate == "confidence" else {}), "device_copies": str(args.copies), "variant_share": f"{args.variant_share:g}", **({"grip_share": f"{args.grip_share:g}"} if args.grip_share is not None else {}),
                **({"walk_share": f"{args.walk_share:g}"} if args.walk_share else {}), **({"walk_slow": "1"} if args.walk_slow else {}),
                "data": args.train}
    spec = student_spec(args.name, args.version, training_data, "resnet student trained for devices (issue 22)", metadata, taper="rect")
    try:
        diff = export(model, spec, args.out, check_windows=real.x[:256])
    except ExportMismatch as e:
        raise ExportFailed(str(e)) from None
    costs = onnx_file_costs(args.out)
    card = args.out.with_suffix(".md")
    flags = (f" --copies {args.copies}" + (f" --variant-share {args.variant_share:g}" if args.variant_share < 1 else "")
             + (f" --grip-share {args.grip_share:g}" if args.grip_share is not None else "")
             + (f" --walk-share {args.walk_share:g}" if args.walk_share else "") + (" --walk-slow" if args.walk_slow else "") + f" --epochs {args.epochs} --mix-synthetic {args.mix_synthetic} --activities {args.activities}"
             + (f" --cv {args.cv}" + (f" --cv-on {args.cv_on}" if args.train == "both" else "") if args.cv else "") + f" --seed {args.seed}"
             + ({"nll": " --calibrate", "confidence": " --calibrate confidence"}[args.calibrate] if args.calibrate else ""))
    card.write_text(model_card(args.out.name, spec, metadata, cv, costs, diff,
                               command=f"`ppg-distill devices-train --train {args.train}{flags} --out {args.out.name}`"))
    print(f"wrote {args.out}: {n_parameters(model):,} parameters, {len(real):,} real and device-variant windows; torch and onnxruntime "
          f"agree to {diff:.1e}; model card {card}"
          + ("" if cv else "; no --cv, so no cross-validation in its metadata (a shipped student needs one)"))
    return 0


COMMANDS = {"calibrate-confidence": cmd_calibrate_confidence, "cross-data": cmd_cross_data, "devices-train": cmd_devices_train, "devices": cmd_devices, "baseline": cmd_baseline, "teacher-screen": cmd_teacher_screen, "accuracy": cmd_accuracy, "train-teacher": cmd_train_teacher, "distill": cmd_distill, "sweep": cmd_sweep, "report": cmd_report, "export": cmd_export, "latency": cmd_latency}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        missing = missing_extra(args.command)
        if missing:
            raise UsageError(f"ppg-distill {args.command} needs the [train] extra ({', '.join(missing)} not installed): {INSTALL_TRAIN}")
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(f"ppg-distill: error: {e}", file=sys.stderr)
        return 2
    except ExportFailed as e:
        print(f"ppg-distill: error: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in TRAIN_EXTRA:
            raise
        print(f"ppg-distill: error: {args.command} needs the [train] extra ({e.name} not installed): {INSTALL_TRAIN}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"ppg-distill: error: {e}", file=sys.stderr)
        return 2


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
