"""The report's plots: error vs size with fitted laws, relative gain over scratch per family, error vs latency.

Every strategy keeps one colour and one marker in every plot (Okabe-Ito colours, safe for colour
blindness), so a series is recognisable without its legend. Means are large markers; each repeat is
a small faint dot beside them, so the spread is visible without error bars that a two-seed interval
would blow up. Teacher lines are labelled at the left edge, pushed apart where they would overlap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .results import Results
from .scaling import FORMS, Fit, best_form

STYLE = {  # strategy → (colour, marker)
    "scratch": ("#000000", "o"),
    "hard": ("#E69F00", "s"),
    "soft": ("#56B4E9", "^"),
    "dkd": ("#D55E00", "D"),
    "feature": ("#009E73", "v"),
}
FAMILY_STYLE = {"resnet": ("#0072B2", "o"), "mlp": ("#CC79A7", "s")}
TEACHER_LINES = ["--", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
OTHER = ("#777777", "x")
LABEL_GAP = 0.06  # minimum vertical distance between teacher labels, in axes fraction


def spread_labels(positions: list[float], gap: float = LABEL_GAP, low: float = 0.0, high: float = 1.0) -> list[float]:
    """Label positions (axes fraction) moved as little as possible so that no two are closer than
    `gap`, kept within [low, high − gap]; returned in the input order."""
    if not positions:
        return []
    order = np.argsort(positions)
    placed = []
    for i in order:
        y = max(positions[i], low) if not placed else max(positions[i], placed[-1] + gap)
        placed.append(y)
    overflow = placed[-1] - (high - gap)
    if overflow > 0:  # pushed past the top: slide the stack down, never below `low`
        placed = [max(low + k * gap, y - overflow) for k, y in enumerate(placed)]
    out = [0.0] * len(positions)
    for i, y in zip(order, placed):
        out[i] = float(y)
    return out


def _style(strategy: str) -> tuple[str, str]:
    return STYLE.get(strategy, OTHER)


def _plain_log_axis(axis, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)) -> None:
    """Log axis with plain numbers (1.5, 2, 3 …) instead of 10^x labels that collide."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    axis.set_major_locator(LogLocator(base=10, subs=subs))
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    axis.set_major_formatter(formatter)
    axis.set_minor_formatter(NullFormatter())


def _size_axis(ax) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g} k" if v >= 1000 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)


def _nudge(strategies: list[str], strategy: str, spread: float = 0.05) -> float:
    """A small sideways factor per strategy so markers at one size do not hide each other."""
    i = strategies.index(strategy)
    return float(np.exp(spread * (i - (len(strategies) - 1) / 2)))


def group_close(positions: list[float], gap: float = LABEL_GAP) -> list[list[int]]:
    """Indices of positions grouped where neighbours (in sorted order) lie closer than `gap`: lines that
    close cannot be told apart, so they share one label."""
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and positions[i] - positions[groups[-1][-1]] < gap:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _teacher_lines(ax, teachers: list[dict], metric: str, log_y: bool) -> None:
    """Horizontal line per teacher, each its own style; labels at the left edge, one per group of lines
    too close to tell apart, pushed apart from each other where needed."""
    if not teachers:
        return
    lo, hi = ax.get_ylim()
    lo, hi = min(lo, min(t[metric] for t in teachers) * 0.95), max(hi, max(t[metric] for t in teachers))
    ax.set_ylim(lo, hi)
    for t, style in zip(teachers, TEACHER_LINES * 3):
        ax.axhline(t[metric], color="#555555", linestyle=style, linewidth=1)

    def frac(v):
        return (np.log(v) - np.log(lo)) / (np.log(hi) - np.log(lo)) if log_y else (v - lo) / (hi - lo)

    fractions = [frac(t[metric]) for t in teachers]
    groups = group_close(fractions)
    texts = []
    for group in groups:
        members = [teachers[i] for i in group]
        names = " · ".join(f"{t['teacher']} {t[metric]:.2f}" for t in members)
        texts.append(f"teacher{'s' if len(members) > 1 else ''} {names}")
    positions = spread_labels([max(fractions[i] for i in g) + 0.01 for g in groups])
    for text, y in zip(texts, positions):
        ax.text(0.01, y, text, transform=ax.transAxes, fontsize=7, color="#333333", va="bottom", ha="left",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})


METRIC_LABELS = {"mae": "MAE, tracked", "mae_untracked": "MAE, window by window"}


def error_vs_size_figure(results: Results, fits: dict[str, dict[tuple[str, str], dict[str, Fit]]]):
    """One row per metric (the keys of `fits`), one panel per family: each strategy's mean error per
    size (repeats as dots) and its AIC-best law, drawn only over the sizes it was fitted on; teachers
    as labelled lines."""
    plt = _pyplot()

    families = results.families
    metrics = list(fits)
    fig, axes = plt.subplots(len(metrics), len(families), figsize=(6.4 * len(families), 4.6 * len(metrics)), squeeze=False)
    strategies = results.strategies()
    for row, metric in zip(axes, metrics):
        for ax, family in zip(row, families):
            for strategy in strategies:
                colour, marker = _style(strategy)
                nudge = _nudge(strategies, strategy)
                xs, means = [], []
                for size in results.sizes(family):
                    runs = results.runs(size, strategy, split=results.split)
                    values = [r[metric] for r in runs if r.get(metric) is not None]
                    if not values:
                        continue
                    xs.append(size.params * nudge)
                    means.append(np.mean(values))
                    ax.scatter([size.params * nudge] * len(values), values, s=10, color=colour, alpha=0.35, linewidths=0)
                if not xs:
                    continue
                series = fits[metric].get((family, strategy), {})
                form = best_form(series)
                teacher = "" if strategy == "scratch" else f" ({results.reference_teacher})"
                label = f"{strategy}{teacher}" + (f": {form}" if form else "")
                ax.plot(xs, means, linestyle="none", marker=marker, color=colour, markersize=7, markeredgecolor="white", label=label)
                if form:
                    fit = series[form]
                    grid = np.geomspace(fit.n_min, fit.n_max, 100)
                    ax.plot(grid, fit.predict(grid), color=colour, linewidth=1.4, alpha=0.85)
            ax.set_yscale("log")
            _size_axis(ax)
            _plain_log_axis(ax.yaxis)
            _teacher_lines(ax, [t for t in results.teacher_rows() if t.get(metric) is not None], metric, log_y=True)
            ax.set_xlabel("student parameters")
            ax.set_ylabel(f"{results.split}-fold CV {METRIC_LABELS.get(metric, metric)} (bpm)")
            ax.set_title(f"{family} students, {METRIC_LABELS.get(metric, metric)}: best law by AIC", fontsize=11)
            ax.legend(fontsize=8, loc="upper right", title="strategy: fitted law", title_fontsize=8)
    fig.text(0.5, 0.005, "large markers: mean over seeds; dots: single seeds; lines: the AIC-best of "
             + ", ".join(FORMS) + ", over the fitted range", ha="center", fontsize=7, color="#444444")
    return _finish(fig)


def gain_vs_size_figure(results: Results, metrics: tuple[str, ...] = ("mae",)):
    """One row per metric, one panel per distillation strategy: relative gain over scratch vs size,
    one series per family (the ResNet-vs-MLP claim)."""
    from .repeats import per_repeat

    plt = _pyplot()

    strategies = [s for s in results.strategies() if s != "scratch"]
    if not strategies:
        return None
    fig, axes = plt.subplots(len(metrics), len(strategies), figsize=(4.2 * len(strategies), 3.9 * len(metrics)), squeeze=False, sharey="row")
    for row, metric in zip(axes, metrics):
        for ax, strategy in zip(row, strategies):
            for family in results.families:
                colour, marker = FAMILY_STYLE.get(family, OTHER)
                xs, means = [], []
                for size in results.sizes(family):
                    mine, base = per_repeat(results.runs(size, strategy), metric), per_repeat(results.runs(size, "scratch"), metric)
                    shared = sorted(set(mine) & set(base))
                    if not shared:
                        continue
                    gains = [100 * (base[u] - mine[u]) / base[u] for u in shared]
                    xs.append(size.params)
                    means.append(np.mean(gains))
                    ax.scatter([size.params] * len(gains), gains, s=10, color=colour, alpha=0.35, linewidths=0)
                if xs:
                    ax.plot(xs, means, marker=marker, color=colour, markersize=7, markeredgecolor="white", label=family)
            ax.axhline(0, color="#555555", linewidth=1)
            _size_axis(ax)
            ax.set_title(f"{strategy} ({results.reference_teacher}) vs scratch, {METRIC_LABELS.get(metric, metric).split(', ')[-1]}", fontsize=10)
            ax.set_xlabel("student parameters")
            ax.set_ylabel(f"gain over scratch (% of its {METRIC_LABELS.get(metric, metric)})", fontsize=8)
            ax.legend(fontsize=8, loc="best")
    fig.text(0.5, 0.005, "positive: the distilled student's error is lower; markers: mean over shared repeats, dots: single repeats",
             ha="center", fontsize=7, color="#444444")
    return _finish(fig)


def error_vs_latency_figure(results: Results, metric: str = "mae"):
    """Per family: mean error vs single-window latency for each strategy and size; teachers as stars."""
    plt = _pyplot()

    families = results.families
    fig, axes = plt.subplots(1, len(families), figsize=(6.4 * len(families), 4.6), squeeze=False)
    teachers = results.teacher_rows()
    for ax, family in zip(axes[0], families):
        # latency is the architecture's: the median over every run of that size, whatever its strategy
        latency = {size: float(np.median([r["latency_us"] for r in results.students if (r["family"], r["width"], r["depth"])
                                          == (size.family, size.width, size.depth)])) for size in results.sizes(family)}
        for strategy in results.strategies():
            colour, marker = _style(strategy)
            points = []
            nudge = _nudge(results.strategies(), strategy)
            for size in results.sizes(family):
                runs = results.runs(size, strategy, split=results.split)
                if runs:
                    points.append((latency[size] * nudge, np.mean([r[metric] for r in runs])))
            if points:
                x, y = zip(*points)
                ax.plot(x, y, linestyle="none", marker=marker, color=colour, markersize=7, markeredgecolor="white",
                        label=strategy if strategy == "scratch" else f"{strategy} ({results.reference_teacher})")
        if teachers:
            ax.plot([t["latency_us"] for t in teachers], [t[metric] for t in teachers], linestyle="none", marker="*",
                    color="#555555", markersize=11, label="teachers")
            for t in teachers:  # teachers differ in latency, so their labels sit apart along x
                ax.annotate(t["teacher"], (t["latency_us"], t[metric]), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_axis(ax.xaxis, subs=(1.0, 2.0, 5.0))
        _plain_log_axis(ax.yaxis)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("single-window latency, onnxruntime 1 thread (µs)")
        ax.set_ylabel(f"{results.split}-fold CV {metric.upper()}, tracked (bpm)")
        ax.set_title(f"{family} students")
        ax.legend(fontsize=8, loc="upper right")
    return _finish(fig)


def pooled_reliability(rows: list[dict], key: str = "reliability") -> dict[str, list] | None:
    """One reliability table from several runs' (seeds'): counts added, means weighted by counts."""
    tables = [r[key] for r in rows if r.get(key)]
    if not tables:
        return None
    n_bins = len(tables[0]["count"])
    count = [sum(t["count"][b] for t in tables) for b in range(n_bins)]

    def mean(field: str, b: int):
        return sum(t["count"][b] * t[field][b] for t in tables if t["count"][b]) / count[b] if count[b] else None

    return {"count": count, "confidence": [mean("confidence", b) for b in range(n_bins)], "accuracy": [mean("accuracy", b) for b in range(n_bins)]}


def recipe_label(row: dict) -> str:
    return f"{row['taper']}, mix {row['mix']}, act {row['activities']}"


def reliability_figure(groups: dict[str, list[dict]]):
    """Reliability diagrams (share within ±5 bpm vs the reported confidence, held-out windows), one line
    per recipe, before (left) and after (right) the cross-fitted temperature; marker area ∝ windows."""
    groups = {label: rows for label, rows in groups.items() if pooled_reliability(rows)}
    if not groups:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.6), sharey=True)
    colours = ["#000000", "#E69F00", "#56B4E9", "#D55E00", "#009E73", "#CC79A7", "#0072B2", "#F0E442"]
    for ax, key, title in ((axes[0], "reliability", "as trained"), (axes[1], "reliability_calibrated", "temperature-scaled (cross-fitted)")):
        ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="perfect calibration")
        for colour, (label, rows) in zip(colours, groups.items()):
            table = pooled_reliability(rows, key)
            if table is None:
                continue
            points = [(c, a, n) for c, a, n in zip(table["confidence"], table["accuracy"], table["count"]) if n]
            c, a, n = zip(*points)
            ece = np.mean([r["ece" if key == "reliability" else "ece_calibrated"] for r in rows])
            ax.plot(c, a, color=colour, marker="o", markersize=3, linewidth=1.2, label=f"{label} (ECE {ece:.3f})")
            ax.scatter(c, a, s=np.sqrt(np.array(n)) * 2, color=colour, alpha=0.35)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("confidence (probability mass within ±5 bpm)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("share of windows within ±5 bpm")
    return _finish(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _finish(fig):
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return fig


def save(fig, path: Path) -> None:
    """Write a figure and free it (a no-op for a plot with nothing to show)."""
    if fig is None:
        return
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
