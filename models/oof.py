"""Out-of-fold model probabilities: the shipped student's recipe trained once per subject-wise fold, its
held-out windows' softmax rows cached beside what a failure analysis needs (k, label, subject, window
features), so tracker variants can be compared many times for the cost of one training per fold.

Each fold is its own file (`fold<N>.npz` under `<cache>/accuracy/<recipe>-k<folds>/`): a run that is
stopped resumes at the first fold not yet cached, and `--folds 0,3` trains only those.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import window_features


@dataclass(frozen=True)
class Recipe:
    """How a student is trained (defaults: the shipped student's model card, "Reproduce")."""

    family: str = "resnet"
    width: int = 16
    depth: int = 2
    epochs: int = 30
    mix: int = 20  # synthetic 300 s recordings added to each fold's training set
    seed: int = 0
    threads: int = 1
    taper: str = "rect"  # the spectral front end's window
    activities: int = 12  # activity recordings (240 s) per activity added to each fold's training set

    @property
    def tag(self) -> str:
        return f"scratch-{self.family}{self.width}x{self.depth}-e{self.epochs}-mix{self.mix}-act{self.activities}-{self.taper}-s{self.seed}"


@dataclass(frozen=True)
class OutOfFold:
    """Held-out windows of every fold, in (subject, k) order."""

    probs: np.ndarray  # (N, K) softmax rows of the fold's model
    k: np.ndarray  # (N,) window index in its recording
    label: np.ndarray  # (N,) reference bpm
    subject: np.ndarray  # (N,) recording id
    features: dict[str, np.ndarray]  # per-window features (models/features.py)
    x: np.ndarray  # (N, C, T) the preprocessed windows themselves (beat refinement reads them)

    def __len__(self) -> int:
        return len(self.k)

    def recordings(self) -> list[np.ndarray]:
        """Row indices per recording, each in window order."""
        return [np.flatnonzero(self.subject == s) for s in dict.fromkeys(self.subject.tolist())]

    @staticmethod
    def concat(parts: list["OutOfFold"]) -> "OutOfFold":
        return OutOfFold(
            np.concatenate([p.probs for p in parts]), np.concatenate([p.k for p in parts]),
            np.concatenate([p.label for p in parts]), np.concatenate([p.subject for p in parts]),
            {name: np.concatenate([p.features[name] for p in parts]) for name in parts[0].features},
            np.concatenate([p.x for p in parts]),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, probs=self.probs.astype(np.float32), k=self.k, label=self.label, subject=self.subject, x=self.x,
                            **{f"feature_{n}": v for n, v in self.features.items()})
        tmp.replace(path)  # a stopped run never leaves half a fold behind

    @staticmethod
    def load(path: Path) -> "OutOfFold":
        with np.load(path, allow_pickle=False) as f:
            features = {n[len("feature_"):]: f[n] for n in f.files if n.startswith("feature_")}
            return OutOfFold(f["probs"].astype(np.float64), f["k"], f["label"], f["subject"], features, f["x"])


def fold_dir(cache: Path, recipe: Recipe, n_folds: int, data_name: str = "ieee") -> Path:
    return cache / "accuracy" / f"{data_name}-{recipe.tag}-k{n_folds}"


def held_out_windows(data, fold: int):
    """The fold's held-out windows, sorted by (subject, k)."""
    test = data.split(fold)[1]
    order = np.lexsort((test.k, test.subject))
    return test.select(order)


def train_fold(data, fold: int, recipe: Recipe, cache: Path, progress: bool = False) -> OutOfFold:
    """Train the recipe on every subject outside `fold` (plus the synthetic mix) and predict its held-out windows."""
    from .architectures import build
    from .dataset import WindowSet
    from .study import training_extras
    from .targets import training_spec
    from .train import TrainConfig, predict_probabilities, train_model

    train_set, _ = data.split(fold)
    extras = training_extras(recipe.mix, recipe.activities, cache)
    if extras:
        train_set = WindowSet.concat([train_set, *extras])
    model = build(recipe.family, training_spec(recipe.taper), recipe.width, recipe.depth, seed=recipe.seed + fold)
    config = TrainConfig(epochs=recipe.epochs, seed=recipe.seed + fold, threads=recipe.threads)
    train_model(model, train_set, config, progress=progress)
    test = held_out_windows(data, fold)
    return OutOfFold(predict_probabilities(model, test.x), test.k, test.hr_bpm.astype(np.float64), test.subject,
                     window_features(test.x), test.x)


def out_of_fold(data, recipe: Recipe, folds: list[int], cache: Path, log=print) -> OutOfFold:
    """Every requested fold, trained where its cache file is missing."""
    directory = fold_dir(cache, recipe, len(data.folds), data.name)
    parts = []
    for fold in folds:
        path = directory / f"fold{fold}.npz"
        if not path.exists():
            started = time.perf_counter()
            train_fold(data, fold, recipe, cache).save(path)
            log(f"fold {fold} ({', '.join(map(str, data.folds[fold]))}): trained in {time.perf_counter() - started:.0f} s → {path}")
        parts.append(OutOfFold.load(path))
    return OutOfFold.concat(parts)
