"""The report's plots, one question per figure, every panel readable on its own.

- `mae_vs_params.png` — how does the error fall with size, per strategy? Means per size with their 95 %
  interval over seeds as a band, the law that best predicts a held-out size over the sizes it was
  fitted on, the teachers and the non-learned spectral estimator as labelled lines; linear error axis
  (the differences live between 1.5 and 3 bpm), sizes named on the size axis; sizes above the
  spectral estimator (not learnt) are listed in the panel, not squeezed in.
- `gain_vs_params.png` — does distillation beat scratch, at which size? Strategy − scratch per size
  with the paired-bootstrap interval over subjects (leave-one-subject-out), filled where Holm keeps it.
- `mae_vs_latency.png` — what does accuracy cost in time? Per family on its own linear latency axis,
  each size labelled.
- `reliability.png` — is the confidence calibrated? One panel per recipe, before and after the
  temperature.

Every strategy keeps one colour and one marker everywhere (Okabe-Ito, safe for colour blindness, no
two oranges), and legends sit outside the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .results import Results
from .scaling import FORMS, Fit, best_form

STYLE = {  # strategy → (colour, marker)
    "scratch": ("#000000", "o"),
    "hard": ("#CC79A7", "s"),
    "soft": ("#0072B2", "^"),
    "dkd": ("#D55E00", "D"),
    "feature": ("#009E73", "v"),
}
FAMILY_STYLE = {"resnet": ("#0072B2", "o"), "mlp": ("#E69F00", "s")}
TEACHER_LINES = ["--", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
OTHER = ("#777777", "x")
BASELINE_COLOUR = "#999933"  # the non-learned spectral estimator's line (olive: no strategy's colour)
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


def short_size(params: float) -> str:
    return f"{params / 1000:.3g} k" if params >= 1000 else f"{params:.0f}"


def _size_ticks(ax, params: list[float]) -> None:
    """Log size axis with a tick at every size run, labelled with its parameter count."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(params)))
    ax.set_xticklabels([short_size(p) for p in sorted(params)], fontsize=8)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, axis="both", alpha=0.3)


def _t_interval(values: list[float]) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    from .repeats import t_half_width

    m, h = float(np.mean(values)), t_half_width(np.array(values))
    return m - h, m + h


def error_vs_size_figure(results: Results, fits: dict, means: dict | None = None):
    """One row per metric, one panel per family: each strategy's mean error per size with its 95 %
    interval over seeds (band), the law that best predicts a held-out size (`means`: per metric, the
    `MeanFits` per family and strategy; without it the AIC-best of `fits`), drawn only over the sizes
    it was fitted on; teachers and the spectral estimator as labelled lines. Sizes above the spectral
    estimator did not learn: listed in the panel instead of stretching its axis."""
    plt = _pyplot()

    families = results.families
    metrics = list(means or fits)
    fig, axes = plt.subplots(len(metrics), len(families), figsize=(6.0 * len(families) + 1.8, 4.4 * len(metrics)), squeeze=False)
    strategies = results.strategies()
    handles = {}
    for row, metric in zip(axes, metrics):
        ceiling = results.baseline.get(metric) if results.baseline else None
        for ax, family in zip(row, families):
            off_axis, shown, law_labels = [], [], []
            for strategy in strategies:
                colour, marker = _style(strategy)
                nudge = _nudge(strategies, strategy, 0.04)
                xs, ms, lows, highs = [], [], [], []
                for size in results.sizes(family):
                    values = [r[metric] for r in results.runs(size, strategy, split=results.split) if r.get(metric) is not None]
                    if not values:
                        continue
                    mean = float(np.mean(values))
                    if ceiling is not None and mean >= ceiling:
                        off_axis.append((size.params, strategy, mean))
                        continue
                    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                    xs.append(size.params * nudge)
                    ms.append(mean)
                    lows.append(mean - sd)
                    highs.append(mean + sd)
                    ax.scatter([size.params * nudge] * len(values), values, s=8, color=colour, alpha=0.3, linewidths=0)
                if not xs:
                    continue
                shown += ms
                ax.vlines(xs, lows, highs, color=colour, linewidth=1.4, alpha=0.6)
                form = None
                if means is not None:
                    mf = means[metric].get((family, strategy))
                    ranked = [n for n in FORMS if mf is not None and mf.loo_error(n) is not None and n in mf.fits]
                    form = min(ranked, key=mf.loo_error) if ranked else None
                    fit = mf.fits[form] if form else None
                else:
                    series = fits[metric].get((family, strategy), {})
                    form = best_form(series)
                    fit = series.get(form) if form else None
                teacher = "" if strategy == "scratch" else f" ({results.reference_teacher})"
                label = f"{strategy}{teacher}"
                line, = ax.plot(xs, ms, linestyle="none", marker=marker, color=colour, markersize=6.5, markeredgecolor="white", label=label)
                handles.setdefault(label, line)
                if fit is not None:
                    grid = np.geomspace(fit.n_min, fit.n_max, 100)
                    ax.plot(grid, fit.predict(grid), color=colour, linewidth=1.1, alpha=0.75, linestyle="-")
                    law_labels.append((float(fit.predict(grid[-1:])[0]), f"{strategy}: {form}", colour))
            teachers = [t for t in results.teacher_rows() if t.get(metric) is not None]
            top = max(shown + [t[metric] for t in teachers] + ([ceiling] if ceiling else [])) if shown else (ceiling or 1.0)
            bottom = min(shown + [t[metric] for t in teachers]) if shown else 0.0
            pad = 0.08 * (top - bottom or 1.0)
            ax.set_ylim(bottom - pad, top + 2.5 * pad)
            if ceiling is not None:
                ax.axhline(ceiling, color=BASELINE_COLOUR, linestyle=(0, (1, 2)), linewidth=1.6)
                ax.text(0.99, (ceiling - ax.get_ylim()[0]) / (ax.get_ylim()[1] - ax.get_ylim()[0]) + 0.01,
                        f"spectral estimator {ceiling:.2f} (no learning)", transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                        color=BASELINE_COLOUR)
            _teacher_lines(ax, teachers, metric, log_y=False)
            all_sizes = [s.params for s in results.sizes(family)]
            _size_ticks(ax, all_sizes)
            ax.set_xlim(min(all_sizes) / 1.6, max(all_sizes) * 1.6)
            lo, hi = ax.get_ylim()
            fractions = spread_labels([(v - lo) / (hi - lo) for v, _, _ in law_labels], gap=0.055)
            for (_, form, colour), y in zip(law_labels, fractions):
                ax.text(1.005, y, form, transform=ax.transAxes, fontsize=6.5, color=colour, va="center", ha="left", clip_on=False)
            title = f"{family} students: {METRIC_LABELS.get(metric, metric)} vs size"
            if off_axis:
                sizes_off = sorted({p for p, _, _ in off_axis})
                span = {p: (min(m for q, _, m in off_axis if q == p), max(m for q, _, m in off_axis if q == p)) for p in sizes_off}
                title += "\nnot learnt, not fitted (above the spectral estimator): " + ", ".join(
                    f"{short_size(p)} {lo_:.1f}" + (f"-{hi_:.1f}" if hi_ - lo_ >= 0.05 else "") for p, (lo_, hi_) in span.items()) + " bpm"
            ax.set_xlabel(f"{family} student parameters")
            ax.set_ylabel(f"{results.split}-fold CV {METRIC_LABELS.get(metric, metric)} (bpm)")
            ax.set_title(title, fontsize=9)
    fig.legend(list(handles.values()), list(handles), loc="center right", fontsize=8, title="strategy", title_fontsize=8, frameon=False)
    fig.text(0.01, 0.005, "markers: mean over seeds; bars: ± 1 sd over seeds (with 2-5 seeds a 95 % t-interval is 1.2-6.4 times wider); dots: single "
             "seeds;\nlines: the law that best predicts a held-out size (named at the right edge), over its fitted range. Subject-level intervals: "
             "gain_vs_params.png", ha="left", fontsize=7, color="#444444")
    fig.tight_layout(rect=(0, 0.035, 1 - 1.6 / (6.0 * len(families) + 1.8), 1))
    return fig


def _subject_gains(results: Results, family: str, strategy: str, metric: str):
    """Per leave-one-subject-out size: (params, strategy − scratch, low, high, significant after Holm);
    without leave-one-subject-out runs, per size of the main split over its seeds (t interval, no Holm)."""
    from .paper import LOSO
    from .subjects import holm_family, subject_difference

    if LOSO not in results.splits:
        from .repeats import paired_difference

        out = []
        for size in results.sizes(family):
            d = paired_difference(results.runs(size, strategy, split=results.split), results.runs(size, "scratch", split=results.split), metric)
            if d is not None and np.isfinite(d.half_width):
                out.append((size.params, d.mean, d.mean - d.half_width, d.mean + d.half_width, d.outcome != "tie"))
        return out

    diffs = {}
    for fam in results.families:
        for size in results.loso_sizes(fam, LOSO):
            for st in [s for s in results.strategies() if s != "scratch"]:
                runs, base = results.runs(size, st, split=LOSO), results.runs(size, "scratch", split=LOSO)
                if runs and base:
                    diffs[(size, st)] = subject_difference(runs, base, metric)
    diffs = holm_family(diffs)  # the same family as the LOSO table's
    return [(size.params, d.mean, d.low, d.high, d.outcome != "tie") for (size, st), d in diffs.items()
            if d is not None and size.family == family and st == strategy]


def gain_vs_size_figure(results: Results, metrics: tuple[str, ...] = ("mae",)):
    """One row per metric, one panel per family: each distillation strategy − scratch per size, with
    the 95 % paired-bootstrap interval over the 12 subjects (leave-one-subject-out); filled markers where
    Holm's rule over the whole table keeps the difference, hollow where it is a tie."""
    plt = _pyplot()

    strategies = [s for s in results.strategies() if s != "scratch"]
    from .paper import LOSO

    if not strategies:
        return None
    loso = LOSO in results.splits
    families = [f for f in results.families if results.loso_sizes(f, LOSO)] if loso else results.families
    fig, axes = plt.subplots(len(metrics), len(families), figsize=(6.0 * len(families) + 1.8, 3.9 * len(metrics)), squeeze=False)
    handles = {}
    for row, metric in zip(axes, metrics):
        for ax, family in zip(row, families):
            sizes = [s.params for s in (results.loso_sizes(family, LOSO) if loso else results.sizes(family))]
            for strategy in strategies:
                colour, marker = _style(strategy)
                nudge = _nudge(strategies, strategy, 0.09)
                points = _subject_gains(results, family, strategy, metric)
                if not points:
                    continue
                x = np.array([p[0] * nudge for p in points])
                mean = np.array([p[1] for p in points])
                err = np.array([[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]])
                ax.errorbar(x, mean, yerr=err, fmt="none", ecolor=colour, elinewidth=1.2, capsize=0, alpha=0.8)
                significant = np.array([p[4] for p in points])
                line, = ax.plot(x, mean, linestyle="none", marker=marker, color=colour, markersize=6.5,
                                markerfacecolor=colour, markeredgecolor=colour, label=f"{strategy} ({results.reference_teacher})")
                line.set_markerfacecolor("none") if not significant.any() else None
                if significant.any() and not significant.all():  # mixed: hollow where a tie
                    ax.plot(x[~significant], mean[~significant], linestyle="none", marker=marker, markersize=6.5,
                            markerfacecolor="white", markeredgecolor=colour, color=colour)
                handles.setdefault(strategy, line)
            ax.axhline(0, color="#555555", linewidth=1)
            _size_ticks(ax, sizes)
            ax.set_xlim(min(sizes) / 1.6, max(sizes) * 1.6)
            ax.set_title(f"{family} students: distilled − scratch, {METRIC_LABELS.get(metric, metric).split(', ')[-1]}", fontsize=10)
            ax.set_xlabel(f"{family} student parameters")
            ax.set_ylabel(f"Δ {METRIC_LABELS.get(metric, metric)} (bpm)\n< 0: distillation helps", fontsize=9)
    fig.legend(list(handles.values()), list(handles), loc="center right", fontsize=8, title="strategy", title_fontsize=8, frameon=False)
    fig.text(0.01, 0.005, "leave-one-subject-out; bars: 95 % paired bootstrap over the 12 subjects; filled: p_Holm < 0.05 over every "
             "strategy × size of the table, hollow: a tie" if loso else f"{results.split}-fold CV; bars: 95 % t interval of the paired "
             "difference over seeds (no leave-one-subject-out runs: seed noise only); filled: the interval excludes zero",
             ha="left", fontsize=7, color="#444444")
    fig.tight_layout(rect=(0, 0.03, 1 - 1.6 / (6.0 * len(families) + 1.8), 1))
    return fig


def error_vs_latency_figure(results: Results, metric: str = "mae", measured: dict | None = None):
    """Per family, on its own linear latency axis: each strategy's mean error per size against the
    size's single-window latency, every size labelled; the teachers (ms, off these axes) in a note.
    `measured` ({(family, width, depth): µs}, `ppg-distill latency`): every architecture timed in one
    session, used wherever it has the size; else the median of the runs' own latencies (mixed sessions)."""
    plt = _pyplot()

    families = results.families
    fig, axes = plt.subplots(1, len(families), figsize=(5.6 * len(families) + 1.8, 4.4), squeeze=False)
    teachers = results.teacher_rows()
    ceiling = results.baseline.get(metric) if results.baseline else None
    handles = {}
    for ax, family in zip(axes[0], families):
        # latency is the architecture's: the median over every run of that size, whatever its strategy
        measured = measured or {}
        latency = {size: measured.get((size.family, size.width, size.depth)) or float(np.median(
            [r["latency_us"] for r in results.students if (r["family"], r["width"], r["depth"]) == (size.family, size.width, size.depth)]))
            for size in results.sizes(family)}
        mixed = [size for size in results.sizes(family) if (size.family, size.width, size.depth) not in measured]
        shown, off, shown_sizes = [], [], set()
        for strategy in results.strategies():
            colour, marker = _style(strategy)
            points = []
            for size in results.sizes(family):
                runs = results.runs(size, strategy, split=results.split)
                if runs:
                    m = float(np.mean([r[metric] for r in runs]))
                    if ceiling is not None and m >= ceiling:
                        off.append(size)
                        continue
                    points.append((latency[size], m))
                    shown_sizes.add(size)
            if points:
                x, y = zip(*points)
                shown += y
                line, = ax.plot(x, y, linestyle="none", marker=marker, color=colour, markersize=6.5, markeredgecolor="white",
                                label=strategy if strategy == "scratch" else f"{strategy} ({results.reference_teacher})")
                handles.setdefault(line.get_label(), line)
        off = [size for size in off if size not in shown_sizes]
        fastest, slowest = min(latency.values()), max(latency.values())
        if slowest > 10 * fastest:  # a family spanning decades (60 µs to 2 ms): a log axis keeps the small sizes apart
            ax.set_xscale("log")
            xmin, xmax = fastest / 1.25, slowest * 1.25
            def frac(v: float) -> float:
                return float(np.log(v / xmin) / np.log(xmax / xmin))
        else:
            xmin, xmax = 0.0, slowest * 1.12
            def frac(v: float) -> float:
                return v / xmax
        ax.set_xlim(xmin, xmax)
        labelled = sorted(shown_sizes, key=lambda z: latency[z])
        for size in labelled:
            ax.axvline(latency[size], color="#dddddd", linewidth=0.8, zorder=0)
        xs_frac = spread_labels([frac(latency[z]) for z in labelled], gap=0.1, high=1.05)
        for size, xf in zip(labelled, xs_frac):
            ax.text(xf, 1.0, f"{size.width}x{size.depth}\n{short_size(size.params)}", transform=ax.transAxes, ha="center",
                    va="bottom", fontsize=7, color="#444444")
        if ceiling is not None:
            ax.axhline(ceiling, color=BASELINE_COLOUR, linestyle=(0, (1, 2)), linewidth=1.6)
        if shown:
            lo, hi = min(shown), max(shown + ([ceiling] if ceiling else []))
            ax.set_ylim(lo - 0.08 * (hi - lo or 1), hi + 0.08 * (hi - lo or 1))
        title = f"{family} students: error vs latency"
        if off:
            title += f"\nnot shown (above the spectral estimator): {', '.join(short_size(z.params) for z in sorted(set(off), key=lambda z: z.params))}"
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("single-window latency, onnxruntime 1 thread (µs" + (", log" if ax.get_xscale() == "log" else "") + ")" + (
            ", one session (ppg-distill latency)" if not mixed else ", per run (sessions mixed)" if len(mixed) == len(latency)
            else f", one session but {', '.join(short_size(z.params) for z in mixed)}"), fontsize=8)
        ax.set_ylabel(f"{results.split}-fold CV {METRIC_LABELS.get(metric, metric)} (bpm)")
        ax.set_title(title, fontsize=9, pad=26)
    fig.legend(list(handles.values()), list(handles), loc="center right", fontsize=8, title="strategy", title_fontsize=8, frameon=False)
    notes = [f"teacher {t['teacher']}: {((measured or {}).get(t['teacher']) or t['latency_us']) / 1000:.1f} ms,\n  {t[metric]:.2f} bpm"
             for t in teachers if t.get("latency_us")]
    if ceiling is not None:
        notes.append(f"dotted: spectral estimator\n  {ceiling:.2f} bpm (no learning)")
    if notes:
        fig.text(0.995, 0.05, "\n".join(notes), ha="right", va="bottom", fontsize=7, color="#444444")
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / (5.6 * len(families) + 1.8), 1))
    return fig


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
    """Reliability diagrams (share within ±5 bpm vs the reported confidence, held-out windows), one
    panel per recipe, as trained and after the cross-fitted temperature; marker area ∝ windows."""
    groups = {label: rows for label, rows in groups.items() if pooled_reliability(rows)}
    if not groups:
        return None
    plt = _pyplot()
    n = len(groups)
    cols = min(n, 4)
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.3 * cols + 1.6, 3.3 * rows_n), squeeze=False, sharex=True, sharey=True)
    handles = {}
    for ax, (label, rows) in zip(axes.flat, groups.items()):
        ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1)
        for key, colour, marker, name in (("reliability", "#0072B2", "o", "as trained"),
                                          ("reliability_calibrated", "#D55E00", "s", "temperature-scaled (cross-fitted)")):
            table = pooled_reliability(rows, key)
            if table is None:
                continue
            points = [(c, a, k) for c, a, k in zip(table["confidence"], table["accuracy"], table["count"]) if k]
            c, a, k = zip(*points)
            ece = np.mean([r["ece" if key == "reliability" else "ece_calibrated"] for r in rows])
            line, = ax.plot(c, a, color=colour, marker=marker, markersize=3, linewidth=1.2, label=name)
            ax.scatter(c, a, s=np.sqrt(np.array(k)) * 1.5, color=colour, alpha=0.3)
            handles.setdefault(name, line)
            ax.text(0.97, 0.03 if key == "reliability" else 0.12, f"ECE {ece:.3f}", color=colour, transform=ax.transAxes, ha="right", fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{label} ({len(rows)} run{'s' if len(rows) > 1 else ''})", fontsize=7.5)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("confidence (mass within ±5 bpm)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("share within ±5 bpm", fontsize=8)
    fig.legend(list(handles.values()), list(handles), loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / (3.3 * cols + 1.6), 1))
    return fig


def calibration_vs_size_figure(results: Results):
    """For a study file (many configurations): the held-out confidence's ECE per size, one panel per
    family, each strategy as trained (filled) and after the cross-fitted temperature (hollow)."""
    plt = _pyplot()
    families = [f for f in results.families if any(r.get("ece") is not None for r in results.students if r["family"] == f)]
    if not families:
        return None
    fig, axes = plt.subplots(1, len(families), figsize=(5.6 * len(families) + 2.2, 4.0), squeeze=False)
    handles = {}
    for ax, family in zip(axes[0], families):
        sizes = [s.params for s in results.sizes(family)]
        for strategy in results.strategies():
            colour, marker = _style(strategy)
            nudge = _nudge(results.strategies(), strategy, 0.06)
            pts = []
            for size in results.sizes(family):
                runs = [r for r in results.runs(size, strategy) if r.get("ece") is not None]
                if runs:
                    pts.append((size.params * nudge, np.mean([r["ece"] for r in runs]), np.mean([r["ece_calibrated"] for r in runs])))
            if not pts:
                continue
            x, before, after = map(np.array, zip(*pts))
            ax.vlines(x, np.minimum(before, after), np.maximum(before, after), color=colour, linewidth=1, alpha=0.6)
            line, = ax.plot(x, before, linestyle="none", marker=marker, color=colour, markersize=6, label=f"{strategy}: as trained")
            hollow, = ax.plot(x, after, linestyle="none", marker=marker, markerfacecolor="white", markeredgecolor=colour, color=colour,
                              markersize=6, label=f"{strategy}: temperature-scaled")
            handles.setdefault(line.get_label(), line)
            handles.setdefault(hollow.get_label(), hollow)
        _size_ticks(ax, sizes)
        ax.set_xlim(min(sizes) / 1.6, max(sizes) * 1.6)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(f"{family} student parameters")
        ax.set_ylabel("expected calibration error (held-out windows)")
        ax.set_title(f"{family} students: is the confidence calibrated?", fontsize=10)
    fig.legend(list(handles.values()), list(handles), loc="center right", fontsize=7, frameon=False)
    fig.text(0.01, 0.005, "ECE of the confidence (mass within ±5 bpm) against the share within ±5 bpm; mean over the runs of every split; "
             "hollow: after a temperature cross-fitted over the folds", ha="left", fontsize=7, color="#444444")
    fig.tight_layout(rect=(0, 0.03, 1 - 2.2 / (5.6 * len(families) + 2.2), 1))
    return fig


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
