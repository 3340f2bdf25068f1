"""A results file as the report sees it: rows with their defaults filled in, grouped by configuration.

Rows written before a field existed read as its default (IEEE data, 4 folds, seed 0, no synthetic
mix, no activity scenarios, Hann taper). The study proper is the student runs on the main data set without synthetic mix; the main
split is 4-fold when present, and the reference teacher is the one most distilled runs used (the
strategy comparisons hold the teacher fixed).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

DATA_NAMES = {"ieee": "IEEE SPC 2015 (12 subjects)", "dalia": "PPG-DaLiA", "ieee+dalia": "IEEE SPC 2015 + PPG-DaLiA",
              "wrist": "wrist-ppg-exercise (3 subjects, 8 recordings)"}
STRATEGIES = ("scratch", "hard", "soft", "dkd", "feature")  # the order tables and plots use
METRICS = ("mae", "rmse", "within5", "mae_untracked", "mae_synthetic", "mae_synthetic_untracked", "latency_us", "onnx_bytes",
           "mae_scenarios", "mae_scenarios_untracked", "ece", "ece_calibrated", "mae_calibrated", "temperature")


def load_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def normalise(row: dict) -> dict:
    out = {"data": "ieee", "folds": 4, "seed": 0, "mix": 0, "teacher": None, "epochs": None, "strategy_params": {}, "taper": "hann",
           "activities": 0, **row}
    out["data"] = out["data"] or "ieee"
    out["mix"] = out["mix"] or 0
    out["activities"] = out["activities"] or 0
    return out


def config_of(row: dict) -> tuple:
    """Everything that defines a configuration except its repeat (seed) — the fold split included."""
    return (row["strategy"], row["family"], row["width"], row["depth"], row["teacher"], row["epochs"], row["mix"],
            row["data"], row["folds"], json.dumps(row["strategy_params"], sort_keys=True), row["taper"], row["activities"])


def aggregate_seeds(rows: list[dict]) -> list[dict]:
    """One row per configuration: metrics averaged over its seeds, with `seeds`, `<metric>_std` and,
    where each fold's error was kept, `fold_std` (spread of the per-fold MAE, pooled over seeds)."""
    groups = defaultdict(list)
    for r in map(normalise, rows):
        groups[config_of(r)].append(r)
    out = []
    for runs in groups.values():
        row = dict(runs[0])
        row["seeds"] = len(runs)
        for m in METRICS:
            values = [r[m] for r in runs if r.get(m) is not None]
            if values:
                row[m] = float(np.mean(values))
                row[f"{m}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        folds = [f["mae"] for r in runs for f in r.get("per_fold", [])]
        row["fold_std"] = float(np.std(folds, ddof=1)) if len(folds) > 1 else None
        out.append(row)
    return out


@dataclass(frozen=True)
class Size:
    family: str
    width: int
    depth: int
    params: int

    @property
    def label(self) -> str:
        return f"{self.family} {self.width}x{self.depth} ({self.params:,})"


class Results:
    """The rows of a results file and the selections the report makes of them."""

    def __init__(self, rows: list[dict], screen: list[dict] | None = None):
        self.rows = [normalise(r) for r in rows]
        self.screen = list(screen or [])  # teacher-screen rows (`ppg_stream.models.screen`), reported beside the study

    @cached_property
    def teachers(self) -> list[dict]:
        return [r for r in self.rows if r["strategy"] == "teacher"]

    @cached_property
    def baseline(self) -> dict | None:
        """The non-learned spectral estimator's row on the main data set (`ppg-distill baseline`), if stored."""
        return next((r for r in self.rows if r["strategy"] == "baseline" and r.get("family", "spectral") == "spectral" and r["data"] == self.data), None)

    @cached_property
    def constant(self) -> dict | None:
        """The constant guess's row (training median HR per fold, `ppg-distill baseline`), if stored."""
        return next((r for r in self.rows if r["strategy"] == "baseline" and r.get("family") == "constant" and r["data"] == self.data), None)

    @cached_property
    def data(self) -> str:
        """The data set most student runs used (the report is about it)."""
        counts = Counter(r["data"] for r in self.rows if r["strategy"] not in ("teacher", "baseline"))
        return counts.most_common(1)[0][0] if counts else "ieee"

    @cached_property
    def students(self) -> list[dict]:
        """Student runs of the study proper: main data set, labelled data only (no synthetic mix or
        activity scenarios), the Hann front end the study was run with."""
        return [r for r in self.rows if r["strategy"] not in ("teacher", "baseline") and r["data"] == self.data and not r["mix"]
                and not r["activities"] and r["taper"] == "hann"]

    @cached_property
    def split(self) -> int:
        splits = Counter(r["folds"] for r in self.students)
        return 4 if 4 in splits else (splits.most_common(1)[0][0] if splits else 4)

    @cached_property
    def splits(self) -> list[int]:
        return sorted({r["folds"] for r in self.students})

    @cached_property
    def reference_teacher(self) -> str | None:
        counts = Counter(r["teacher"] for r in self.students if r["teacher"])
        return counts.most_common(1)[0][0] if counts else None

    @cached_property
    def families(self) -> list[str]:
        return sorted({r["family"] for r in self.students}, key=lambda f: (f != "resnet", f))

    def sizes(self, family: str) -> list[Size]:
        found = {(r["width"], r["depth"]): r["params"] for r in self.students if r["family"] == family and r["folds"] == self.split}
        return sorted((Size(family, w, d, p) for (w, d), p in found.items()), key=lambda s: s.params)

    def loso_sizes(self, family: str, folds: int = 12) -> list[Size]:
        """Sizes run on the leave-one-subject-out split (12 folds)."""
        found = {(r["width"], r["depth"]): r["params"] for r in self.students if r["family"] == family and r["folds"] == folds}
        return sorted((Size(family, w, d, p) for (w, d), p in found.items()), key=lambda s: s.params)

    def strategies(self) -> list[str]:
        present = {r["strategy"] for r in self.students}
        return [s for s in STRATEGIES if s in present] + sorted(present - set(STRATEGIES))

    def runs(self, size: Size, strategy: str, teacher: str | None = "reference", split: int | None = None) -> list[dict]:
        """Runs of one strategy at one size: scratch has no teacher; distilled runs use `teacher`
        (the reference teacher by default); `split` None means every fold split."""
        if strategy == "scratch":
            teacher = None
        elif teacher == "reference":
            teacher = self.reference_teacher
        return [r for r in self.students if r["family"] == size.family and r["width"] == size.width and r["depth"] == size.depth
                and r["strategy"] == strategy and r["teacher"] == teacher and (split is None or r["folds"] == split)]

    def teacher_rows(self, split: int | None = None) -> list[dict]:
        split = self.split if split is None else split
        return sorted((t for t in self.teachers if t["data"] == self.data and t["folds"] == split), key=lambda t: t["params"])

    def describe_data(self, runs: list[dict]) -> str:
        """Which data and repeats a figure rests on, e.g. 'IEEE SPC 2015 (12 subjects): 4-fold CV × 1-3 seeds, 12-fold LOSO × 1'."""
        seeds = defaultdict(lambda: defaultdict(set))  # split → configuration → seeds
        for r in runs:
            seeds[r["folds"]][config_of(r)].add(r["seed"])
        data = {r["data"] for r in runs} or {self.data}
        parts = []
        for k, per_config in sorted(seeds.items()):
            counts = sorted(len(s) for s in per_config.values())
            n = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"
            name = "12-fold LOSO" if k == 12 and data == {"ieee"} else (f"{k}-fold LOSO" if data == {"wrist"} else f"{k}-fold CV")
            parts.append(f"{name} × {n} seed{'' if n == '1' else 's'}")
        return f"{', '.join(DATA_NAMES.get(d, d) for d in sorted(data))}: {', '.join(parts) or 'no runs'}"
