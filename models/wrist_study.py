"""The study within wrist-ppg-exercise: leave one subject out over its three people, so "does KD help"
is asked on a second device and on walking and cycling as well as running.

Data: D. Jarchi and A. J. Casson, "Description of a Database Containing Wrist PPG Signals Recorded
during Physical Exercise with Both Accelerometer and Gyroscope Measures of Motion", Data 2(1):1, 2017
(PhysioNet "Wrist PPG During Exercise"); subjects 2, 3 and 4, 8 recordings. Rows come from
`ppg-distill teacher-screen|sweep --wrist DIR --ieee none` (data "wrist", one fold per subject): each
keeps `per_recording` (every recording tracked on its own) and `per_subject` (its recordings pooled,
window-weighted: the unit of the statistics). The verdict rows use the same rule as the IEEE verdict
(`ppg_stream.models.paper`: paired bootstrap over subjects, Holm over every comparison of a claim);
with three subjects that rule never declares a winner, and the table says so.
"""

from __future__ import annotations

import numpy as np

from .cross_data import activity, person
from .paper import DISTILLED, METRIC_NAMES, Claim, _cell, loso_distilled_beats_scratch, loso_dkd_strongest
from .results import Results

WRIST = "wrist"
CITATION = ("Jarchi & Casson, \"Description of a Database Containing Wrist PPG Signals Recorded during Physical Exercise with Both "
            "Accelerometer and Gyroscope Measures of Motion\", Data 2(1):1, 2017")
ACTIVITY_ORDER = ("walk", "run", "low_resistance_bike", "high_resistance_bike")


def recording_errors(runs: list[dict], metric: str) -> dict[str, tuple[float, int]]:
    """recording → (metric averaged over the runs' seeds, windows)."""
    values: dict[str, list[float]] = {}
    windows: dict[str, int] = {}
    for r in runs:
        for rec, v in (r.get("per_recording") or {}).items():
            if v.get(metric) is not None:
                values.setdefault(rec, []).append(float(v[metric]))
                windows[rec] = int(v["windows"])
    return {rec: (float(np.mean(v)), windows[rec]) for rec, v in values.items()}


def pooled(errors: dict[str, tuple[float, int]], keep=lambda recording: True) -> float | None:
    """Window-weighted mean over the recordings `keep` selects (None where none is there)."""
    chosen = [(v, n) for rec, (v, n) in errors.items() if keep(rec)]
    n = sum(w for _, w in chosen)
    return sum(v * w for v, w in chosen) / n if n else None


def breakdown(errors: dict[str, tuple[float, int]]) -> tuple[float | None, dict[str, float | None], dict[str, float | None]]:
    """All recordings pooled, per subject, per activity (each window-weighted)."""
    people = sorted({person(r) for r in errors})
    kinds = [a for a in ACTIVITY_ORDER if any(activity(r) == a for r in errors)] + sorted({activity(r) for r in errors} - set(ACTIVITY_ORDER))
    return (pooled(errors), {p: pooled(errors, lambda r, p=p: person(r) == p) for p in people},
            {a: pooled(errors, lambda r, a=a: activity(r) == a) for a in kinds})


def wrist_results(rows: list[dict]) -> Results:
    """The wrist rows of a results file as the report's `Results` (students of the study proper)."""
    return Results([r for r in rows if r.get("data") == WRIST])


def wrist_claims(results: Results) -> list[Claim]:
    """The strategy claims on the wrist design (one fold per subject), tracked and window by window."""
    out = []
    for metric in METRIC_NAMES:  # one fold per subject: the split is the leave-one-subject-out design
        out += [c for c in (loso_distilled_beats_scratch(results, metric, results.split), loso_dkd_strongest(results, metric, results.split)) if c]
    return out


def wrist_verdict(rows: list[dict]) -> str:
    """The verdict rows on wrist-ppg-exercise, for the 'Against the paper' section (empty without wrist rows)."""
    results = wrist_results(rows)
    claims = wrist_claims(results) if results.students else []
    if not claims:
        return ""
    teachers = sorted({r["teacher"] for r in results.students if r["teacher"]})
    lines = [f"Second data set, leave one subject out within wrist-ppg-exercise ({CITATION}; another PPG device, subjects 2-4, "
             "8 recordings: treadmill walking and running, cycling at low and high resistance). Each fold trains a teacher "
             f"({', '.join(teachers) or '-'}) and the students on two subjects' recordings and scores the third subject's; the "
             "same rule as above (paired bootstrap over subjects, Holm over each claim's comparisons). Per subject and per activity: "
             "the section 'wrist-ppg-exercise, leave one subject out' of the summary." + _below_constant(results), "",
             "| claim (paper) | our figure | verdict | why | can detect | our data |", "|---|---|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {_cell(c.claim)} | {_cell(c.figure)} | **{_cell(c.verdict)}** | {_cell(c.reason)} | {_cell(c.power)} | {_cell(c.data)} |")
    return "\n".join(lines + ["", ""])


def _below_constant(results: Results, metric: str = "mae_untracked") -> str:
    """How many student runs beat a constant guess of the training subjects' median HR (empty without its row)."""
    if results.constant is None:
        return ""
    level = results.constant[metric]
    below = sum(r[metric] < level for r in results.students if r.get(metric) is not None)
    return (f" A constant guess of the training subjects' median HR scores {level:.2f} bpm window by window; {below} of "
            f"{len(results.students)} student runs are below it.")


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cells(tracked: dict, untracked: dict) -> tuple[list[str], list[str], list[str]]:
    """'tracked / window by window' cells: all, per subject, per activity."""
    all_t, people_t, kinds_t = breakdown(tracked)
    all_u, people_u, kinds_u = breakdown(untracked)
    return ([f"{_f(all_t)} / {_f(all_u)}"], [f"{_f(people_t.get(p))} / {_f(people_u.get(p))}" for p in people_u],
            [f"{_f(kinds_t.get(a))} / {_f(kinds_u.get(a))}" for a in kinds_u])


def wrist_section(rows: list[dict], screen: list[dict] | None = None) -> str:
    """The summary's own wrist section: the teacher and every student configuration, MAE tracked / window
    by window, pooled, per subject and per activity (seeds averaged per recording)."""
    results = wrist_results(rows)
    teacher_rows = [r for r in (screen or []) if r.get("data") == WRIST and r.get("per_recording")]
    if not results.students and not teacher_rows:
        return ""
    everything = recording_errors(results.students + teacher_rows, "mae_untracked")
    _, people, kinds = breakdown(everything)
    lines = ["## wrist-ppg-exercise, leave one subject out: per subject and per activity", "",
             f"Data: {CITATION} (PhysioNet \"Wrist PPG During Exercise\"): subjects 2-4, 256 Hz wrist PPG and accelerometer, "
             "ECG reference per window; a different device and population from IEEE SPC 2015, trained on here. One fold per subject: "
             "the teacher and every student train on the other two subjects' recordings. Cells: MAE tracked / window by window "
             "(bpm), windows pooled (each recording tracked on its own); runs: seeds behind the mean (averaged per recording). "
             "Windows: " + ", ".join(f"{p} {sum(n for rec, (_, n) in everything.items() if person(rec) == p)}" for p in people) + ".", "",
             "| model | runs | all | " + " | ".join(people) + " | " + " | ".join(a.replace("_", " ") for a in kinds) + " |",
             "|---|---|---|" + "---|" * (len(people) + len(kinds))]
    for teacher in sorted({r["teacher"] for r in teacher_rows}):
        mine = [r for r in teacher_rows if r["teacher"] == teacher]
        first, per_p, per_a = _cells(recording_errors(mine, "mae"), recording_errors(mine, "mae_untracked"))
        lines.append(f"| teacher {teacher} ({mine[0].get('params', 0):,} parameters; non-causal) | {len({r.get('seed', 0) for r in mine})} | "
                     + " | ".join(first + per_p + per_a) + " |")
    for row, label in ((results.baseline, "spectral estimator (no training)"),
                       (results.constant, "constant guess: the training subjects' median HR (a student below it has learnt more than a prior)")):
        if row is not None and row.get("per_recording"):
            first, per_p, per_a = _cells(recording_errors([row], "mae"), recording_errors([row], "mae_untracked"))
            lines.append(f"| {label} | - | " + " | ".join(first + per_p + per_a) + " |")
    for family in results.families:
        for size in results.loso_sizes(family, results.split):
            for st in ("scratch", *DISTILLED):
                runs = results.runs(size, st, teacher=None if st == "scratch" else "reference", split=results.split)
                if not runs:
                    continue
                first, per_p, per_a = _cells(recording_errors(runs, "mae"), recording_errors(runs, "mae_untracked"))
                label = f"{st} {family} {size.width}x{size.depth} ({size.params:,})"
                lines.append(f"| {label} | {len(runs)} | " + " | ".join(first + per_p + per_a) + " |")
    return "\n".join(lines + ["", ""])
