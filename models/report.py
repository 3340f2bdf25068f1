"""Characterise a sweep: fit error-vs-size scaling laws per strategy and render plots and a summary.

Three forms are fitted to MAE(N) over parameter count N, per strategy and student family:
  power law with floor  MAE = a·N^(−b) + c
  pure power law        MAE = a·N^(−b)
  log-linear            MAE = a − b·ln N
and compared by AIC (least squares, k parameters: n·ln(RSS/n) + 2k), which penalises the extra floor.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

FORMS = {
    "power+floor": (lambda n, a, b, c: a * n ** (-b) + c, (10.0, 0.3, 1.0)),
    "power": (lambda n, a, b: a * n ** (-b), (10.0, 0.2)),
    "log-linear": (lambda n, a, b: a - b * np.log(n), (5.0, 0.2)),
}


def load_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def fit_scaling(params: np.ndarray, mae: np.ndarray) -> dict[str, dict]:
    """Fit every form; returns {form: {"coef": [...], "aic": float, "rss": float}} for those that converge."""
    from scipy.optimize import curve_fit

    fits = {}
    n_points = len(params)
    for name, (fn, p0) in FORMS.items():
        k = len(p0)
        if n_points <= k:
            continue
        try:
            coef, _ = curve_fit(fn, params, mae, p0=p0, maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        rss = float(np.sum((fn(params, *coef) - mae) ** 2))
        fits[name] = {"coef": [float(c) for c in coef], "rss": rss, "aic": n_points * math.log(max(rss, 1e-12) / n_points) + 2 * k}
    return fits


def best_form(fits: dict[str, dict]) -> str | None:
    return min(fits, key=lambda f: fits[f]["aic"]) if fits else None


METRICS = ("mae", "rmse", "within5", "mae_untracked", "mae_synthetic", "mae_synthetic_untracked", "latency_us", "onnx_bytes")


def aggregate_seeds(rows: list[dict]) -> list[dict]:
    """One row per configuration: metrics averaged over its seeds, with `seeds` and `<metric>_std`."""
    groups = defaultdict(list)
    for r in rows:
        config = (r["strategy"], r["family"], r["width"], r["depth"], r.get("teacher"), r.get("epochs"), r.get("mix", 0),
                  r.get("data", "ieee"), json.dumps(r.get("strategy_params", {}), sort_keys=True))
        groups[config].append(r)
    out = []
    for runs in groups.values():
        row = dict(runs[0])
        row["seeds"] = len(runs)
        for m in METRICS:
            values = [r[m] for r in runs if r.get(m) is not None]
            if values:
                row[m] = float(np.mean(values))
                row[f"{m}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        out.append(row)
    return out


def _groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups = defaultdict(list)
    for r in rows:
        if r["strategy"] == "teacher":
            continue
        groups[(r["family"], r["strategy"], r["teacher"] or "-")].append(r)
    return {k: sorted(v, key=lambda r: r["params"]) for k, v in groups.items()}


def render(rows: list[dict], out: Path, metric: str = "mae") -> Path:
    """Plots (MAE vs parameters per strategy, log axis; MAE vs latency) and `summary.md`; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    teachers = [r for r in rows if r["strategy"] == "teacher"]
    all_runs = aggregate_seeds([r for r in rows if r["strategy"] != "teacher"])
    rows = [r for r in all_runs if not r.get("mix")]  # the study proper: students on the labelled data only
    groups = _groups(rows)
    families = sorted({f for f, _, _ in groups})
    fig, axes = plt.subplots(1, len(families), figsize=(6 * len(families), 4.5), squeeze=False)
    fit_rows = []
    for ax, family in zip(axes[0], families):
        for (fam, strategy, teacher), runs in sorted(groups.items()):
            if fam != family:
                continue
            n = np.array([r["params"] for r in runs], dtype=float)
            y = np.array([r[metric] for r in runs])
            label = strategy if strategy == "scratch" else f"{strategy} ({teacher})"
            line = ax.plot(n, y, "o-", label=label)[0]
            fits = fit_scaling(n, y)
            form = best_form(fits)
            if form:
                grid = np.geomspace(n.min(), n.max(), 50)
                ax.plot(grid, FORMS[form][0](grid, *fits[form]["coef"]), ":", color=line.get_color())
            fit_rows.append((family, label, form, fits.get(form, {}).get("coef"), fits))
        for t in teachers:
            ax.axhline(t[metric], color="grey", linestyle="--", linewidth=1)
            ax.text(0.01, t[metric], f"teacher {t['teacher']} ({t['params'] / 1e6:.1f} M)", transform=ax.get_yaxis_transform(), fontsize=7, color="grey", va="bottom")
        _finish_axes(ax, "student parameters", metric, legend_size=8)
        ax.set_title(f"{family} students")
    _save(fig, out / "mae_vs_params.png")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for (family, strategy, teacher), runs in sorted(groups.items()):
        ax.plot([r["latency_us"] for r in runs], [r[metric] for r in runs], "o", label=f"{family} {strategy} {teacher}")
    _finish_axes(ax, "single-window latency, onnxruntime 1 thread (µs)", metric, legend_size=7)
    _save(fig, out / "mae_vs_latency.png")

    summary = out / "summary.md"
    summary.write_text(markdown_summary(rows, fit_rows, metric, teachers) + seed_section(all_runs, metric) + mix_section(all_runs, metric))
    return summary


def seed_section(runs: list[dict], metric: str = "mae") -> str:
    """How much of a gap is noise: configurations run with several seeds, mean ± standard deviation."""
    multi = sorted((r for r in runs if r.get("seeds", 1) > 1), key=lambda r: (r.get("mix", 0), r["family"], r["params"], r["strategy"]))
    if not multi:
        return ""
    lines = ["## Seed variation", "", "Rows of the tables above are averaged over seeds; these configurations ran with several.", "",
             "| family | size (params) | strategy (teacher) | synthetic mix | seeds | CV MAE mean ± sd |", "|---|---|---|---|---|---|"]
    for r in multi:
        lines.append(f"| {r['family']} | {r['width']}x{r['depth']} ({r['params']:,}) | {r['strategy']} ({r.get('teacher') or '-'}) | "
                     f"{r.get('mix', 0)} | {r['seeds']} | {r[metric]:.2f} ± {r[metric + '_std']:.2f} |")
    return "\n".join(lines + ["", ""])


def mix_section(runs: list[dict], metric: str = "mae") -> str:
    """Students trained with synthetic recordings added, beside the same configuration without them."""
    mixed = [r for r in runs if r.get("mix")]
    if not mixed:
        return ""
    base = {(r["strategy"], r["family"], r["width"], r["depth"], r.get("teacher")): r for r in runs if not r.get("mix")}
    lines = ["## Synthetic recordings mixed into student training", "",
             "IEEE CV MAE (tracked) and MAE on 8 held-out synthetic recordings (HR 45-185 bpm), without → with the mix.", "",
             "| family | size (params) | strategy (teacher) | mix | seeds | IEEE CV MAE | synthetic MAE |", "|---|---|---|---|---|---|---|"]
    for r in sorted(mixed, key=lambda r: (r["family"], r["params"], r["strategy"], r["mix"])):
        b = base.get((r["strategy"], r["family"], r["width"], r["depth"], r.get("teacher")), {})
        syn_b = f"{b['mae_synthetic']:.2f} → " if b.get("mae_synthetic") is not None else ""
        ieee_b = f"{b[metric]:.2f} → " if b else ""
        lines.append(f"| {r['family']} | {r['width']}x{r['depth']} ({r['params']:,}) | {r['strategy']} ({r.get('teacher') or '-'}) | "
                     f"{r['mix']} | {r['seeds']} | {ieee_b}{r[metric]:.2f} | {syn_b}{r['mae_synthetic']:.2f} |")
    return "\n".join(lines + ["", ""])


def _finish_axes(ax, xlabel: str, metric: str, legend_size: int) -> None:
    """The styling both plots share: log x axis, CV error on y, grid, legend."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"CV {metric.upper()} (bpm)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=legend_size)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_summary(rows: list[dict], fit_rows: list, metric: str, teachers: list[dict] = ()) -> str:
    lines = ["# Distillation study: summary", "", f"{len(rows)} student runs; metric: cross-validated {metric.upper()} with tracking (bpm).", ""]
    if teachers:
        lines += ["## Teachers", "", "| teacher | parameters | CV MAE | window by window | latency µs |", "|---|---|---|---|---|"]
        lines += [f"| {t['teacher']} | {t['params']:,} | {t[metric]:.2f} | {t.get(metric + '_untracked', float('nan')):.2f} | {t['latency_us']:.0f} |" for t in teachers]
        lines.append("")
    lines += ["## Best strategy per student size", "", "| family | size (params) | scratch | best distilled | strategy (teacher) | gain |", "|---|---|---|---|---|---|"]
    by_size = defaultdict(list)
    for r in rows:
        by_size[(r["family"], r["width"], r["depth"])].append(r)
    for (family, w, d), runs in sorted(by_size.items(), key=lambda kv: (kv[0][0], kv[1][0]["params"])):
        scratch = [r for r in runs if r["strategy"] == "scratch"]
        distilled = [r for r in runs if r["strategy"] != "scratch"]
        if not scratch or not distilled:
            continue
        best = min(distilled, key=lambda r: r[metric])
        s = scratch[0][metric]
        lines.append(f"| {family} | {w}x{d} ({runs[0]['params']:,}) | {s:.2f} | {best[metric]:.2f} | {best['strategy']} ({best['teacher']}) | {s - best[metric]:+.2f} |")
    lines += ["", "## Mean gain over scratch per strategy (positive = distillation helps)", "",
              "Relative gain = gain / scratch MAE at the same size, so families with different error levels compare fairly.", "",
              "| family | strategy | teacher | mean gain (bpm) | mean relative gain | sizes |", "|---|---|---|---|---|---|"]
    for (family, strategy, teacher), runs in sorted(_groups(rows).items()):
        if strategy == "scratch":
            continue
        gains, relative = [], []
        for r in runs:
            base = [s for s in by_size[(family, r["width"], r["depth"])] if s["strategy"] == "scratch"]
            if base:
                gains.append(base[0][metric] - r[metric])
                relative.append(gains[-1] / base[0][metric])
        if gains:
            lines.append(f"| {family} | {strategy} | {teacher} | {np.mean(gains):+.2f} | {100 * np.mean(relative):+.0f} % | {len(gains)} |")
    lines += ["", "## Scaling-law fits (MAE vs parameters N; best form by AIC)", "", "| family | series | best form | coefficients | AIC of each form |", "|---|---|---|---|---|"]
    for family, label, form, coef, fits in fit_rows:
        aics = ", ".join(f"{f}: {v['aic']:.1f}" for f, v in fits.items())
        coef_text = ", ".join(f"{c:.3g}" for c in coef) if coef else "-"
        lines.append(f"| {family} | {label} | {form or 'too few points'} | {coef_text} | {aics or '-'} |")
    lines += ["", "Plots: `mae_vs_params.png`, `mae_vs_latency.png`.", ""]
    return "\n".join(lines)
