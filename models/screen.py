"""Teacher candidates measured by `ppg-distill teacher-screen`, set beside the best student of the
sweep on the same leave-one-subject-out subjects: is there a teacher worth distilling?"""

from __future__ import annotations

from collections import defaultdict

from .results import Results


def latest_screen_rows(rows: list[dict]) -> list[dict]:
    """One row per candidate, fold and recipe (the last one measured), in a stable order."""
    latest = {}
    for r in rows:
        latest[(r["teacher"], r.get("data", "ieee"), r.get("folds", 12), r["fold"], r.get("seed", 0), r.get("epochs"), r.get("synthetic"))] = r
    return [latest[k] for k in sorted(latest, key=lambda k: tuple(str(v) for v in k))]


def best_loso_student(results: Results, metric: str = "mae_untracked") -> tuple[str, dict[str, tuple[float, int]]] | None:
    """The student configuration with the lowest pooled leave-one-subject-out error (seeds averaged per
    subject), and its per-subject errors."""
    from .subjects import per_subject

    best = None
    configs: dict[tuple, list[dict]] = defaultdict(list)
    for r in results.students:
        if r["folds"] == 12:
            configs[(r["strategy"], r["family"], r["width"], r["depth"], r["teacher"])].append(r)
    for (strategy, family, w, d, teacher), runs in configs.items():
        errors = per_subject(runs, metric)
        if len(errors) < 12:
            continue
        pooled = sum(v * n for v, n in errors.values()) / sum(n for _, n in errors.values())
        name = f"{strategy} {family} {w}x{d}" + (f" ({teacher})" if teacher else "") + f", {len(runs)} seed{'s' if len(runs) > 1 else ''}"
        if best is None or pooled < best[0]:
            best = (pooled, name, errors)
    return None if best is None else (best[1], best[2])


def screen_summary(results: Results, metric: str = "mae_untracked") -> list[dict]:
    """Per teacher candidate: pooled error over the subjects it was scored on, the best LOSO student's on
    the same subjects, the reduction, a paired bootstrap over those subjects, and the training cost."""
    from .subjects import bootstrap_difference

    best = best_loso_student(results, metric)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results.screen:
        groups[(r["teacher"], r.get("epochs"), r.get("synthetic"), r.get("seed", 0))].append(r)
    out = []
    for (teacher, epochs, synthetic, seed), rows in sorted(groups.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
        mine = {r["held_out"][0]: (float(r[metric]), int(r["windows"])) for r in rows if len(r["held_out"]) == 1}
        pooled = sum(v * n for v, n in mine.values()) / sum(n for _, n in mine.values())
        item = {"teacher": teacher, "epochs": epochs, "synthetic": synthetic, "folds": len(rows), "subjects": sorted(mine), "mae": pooled,
                "train_s": sum(r.get("train_s") or 0 for r in rows), "params": rows[0].get("params"),
                "raw": (sum(r["mae_untracked_raw"] * r["windows"] for r in rows) / sum(r["windows"] for r in rows)
                        if all("mae_untracked_raw" in r for r in rows) else None)}
        if best is not None:
            name, student = best
            shared = {s: student[s] for s in mine if s in student}
            if shared:
                item["student"] = name
                item["student_mae"] = sum(v * n for v, n in shared.values()) / sum(n for _, n in shared.values())
                item["reduction"] = 1 - pooled / item["student_mae"]
                item["difference"] = bootstrap_difference(mine, shared) if len(shared) >= 3 else None
        out.append(item)
    return out


TEACHER_GAIN = 0.20  # "a teacher worth distilling": at least this much below the best student
