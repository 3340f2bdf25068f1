"""The distillation report: scaling-law fits on points with known laws, the tie logic of the winner
tables, the claims against the paper, the plots' legibility rules, and the README mirror."""

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the [train] extra (matplotlib) is not installed")

from ppg_stream.models.paper import verdict  # noqa: E402
from ppg_stream.models.report import README_BEGIN, README_END, render, series_fits, update_readme  # noqa: E402
from ppg_stream.models.report_plots import error_vs_latency_figure, error_vs_size_figure, gain_vs_size_figure, group_close, spread_labels  # noqa: E402
from ppg_stream.models.repeats import paired_difference  # noqa: E402
from ppg_stream.models.results import Results, aggregate_seeds  # noqa: E402
from ppg_stream.models.scaling import best_form, fit_scaling, form_outcome  # noqa: E402
from ppg_stream.models.winners import size_results  # noqa: E402

SIZES = {"resnet": [(8, 2, 977), (16, 2, 3489), (32, 3, 19393), (64, 4, 100481)],
         "mlp": [(2, 1, 1631), (8, 1, 5981), (32, 1, 23381), (64, 2, 50741), (256, 2, 251573)]}


# --- scaling laws -------------------------------------------------------------------------------------

def test_an_exponential_law_is_recovered_and_preferred():
    n = np.repeat(np.geomspace(1e3, 3e5, 6), 3)  # three repeats per size, as a sweep with seeds gives
    noise = np.random.default_rng(0).normal(0, 0.01, len(n))
    fits = fit_scaling(n, 3.0 * np.exp(-n / 2e4) + 1.5 + noise)
    assert best_form(fits) == "exponential" and form_outcome(fits, "exponential") == "best"
    a, s, c = fits["exponential"].coef
    assert a == pytest.approx(3.0, rel=0.03) and s == pytest.approx(2e4, rel=0.03) and c == pytest.approx(1.5, abs=0.02)


def test_power_law_with_floor_and_log_linear_laws_are_told_apart_from_the_exponential():
    n = np.geomspace(1e3, 5e5, 7)
    fits = fit_scaling(n, 9.0 * n**-0.35 + 1.2)
    assert best_form(fits) == "power+floor" and form_outcome(fits, "exponential") == "worse"
    np.testing.assert_allclose(fits["power+floor"].coef, [9.0, 0.35, 1.2], rtol=1e-3)
    assert best_form(fit_scaling(n, 6.0 - 0.4 * np.log(n))) == "log-linear"


def test_a_law_is_kept_to_its_range_and_never_predicts_negative_error():
    n = np.array([1631, 5981, 23381, 50741, 251573], float)
    fits = fit_scaling(n, np.array([21.5, 20.4, 5.9, 2.6, 2.45]))  # a straight line in ln N would cross 0 bpm
    assert "log-linear" not in fits
    for fit in fits.values():
        assert (fit.n_min, fit.n_max) == (n.min(), n.max())
        assert np.all(fit.predict(np.geomspace(n.min(), n.max(), 500)) >= 0)


@pytest.mark.slow
def test_forms_within_two_aic_are_a_tie():
    n = np.repeat(np.array([1e3, 3e3, 2e4, 1e5]), 2)
    y = 2.0 + 5 * n**-0.3 + np.random.default_rng(1).normal(0, 0.3, len(n))  # noise swamps the shape
    fits = fit_scaling(n, y)
    assert form_outcome(fits, "exponential") == "tie"


# --- repeats and ties ---------------------------------------------------------------------------------

def _run(strategy, mae, seed=0, folds=4, family="resnet", size=(16, 2, 3489), teacher="T1", **extra):
    w, d, p = size
    return {"key": f"{strategy}|{family}{w}x{d}|{teacher}|s{seed}|k{folds}", "strategy": strategy, "family": family, "width": w,
            "depth": d, "params": p, "teacher": None if strategy == "scratch" else teacher, "epochs": 30, "seed": seed,
            "folds": folds, "mae": mae, "mae_untracked": mae + 2, "latency_us": 30 + p / 2000, "onnx_bytes": 8000 + 4 * p, **extra}


def test_a_consistent_gap_beyond_the_seed_spread_names_a_winner_and_pairing_removes_the_seed_effect():
    seed_effect = [0.0, 0.8, -0.5, 0.3]  # shared by both strategies at a seed (same init, same folds)
    a = [_run("dkd", 2.0 + e + 0.02 * i, seed=i) for i, e in enumerate(seed_effect)]
    b = [_run("scratch", 2.4 + e, seed=i) for i, e in enumerate(seed_effect)]
    d = paired_difference(a, b)
    assert d.n == 4 and d.outcome == "lower" and d.mean == pytest.approx(-0.37, abs=1e-9)
    assert d.half_width < 0.1  # the ±0.8 bpm seed effect cancels in the pairs


def test_one_shared_repeat_or_a_gap_inside_the_noise_is_a_tie():
    one = paired_difference([_run("dkd", 1.0)], [_run("scratch", 3.0)])
    assert one.n == 1 and one.outcome == "tie" and "±" not in one.text()
    noisy = paired_difference([_run("dkd", v, seed=i) for i, v in enumerate([2.0, 2.6, 1.9])],
                              [_run("scratch", v, seed=i) for i, v in enumerate([2.3, 2.1, 2.4])])
    assert noisy.outcome == "tie"
    assert paired_difference([_run("dkd", 2.0, seed=1)], [_run("scratch", 2.5, seed=2)]) is None  # nothing shared


def test_fold_splits_are_separate_repeats_and_separate_configurations():
    rows = [_run("scratch", 2.0, seed=0), _run("scratch", 2.2, seed=0, folds=12), _run("dkd", 1.7, seed=0), _run("dkd", 1.8, seed=0, folds=12)]
    assert paired_difference(rows[2:], rows[:2]).n == 2
    configs = aggregate_seeds(rows)
    assert sorted((c["strategy"], c["folds"], c["seeds"]) for c in configs) == [("dkd", 4, 1), ("dkd", 12, 1), ("scratch", 4, 1), ("scratch", 12, 1)]


def _study(seeds: int, dkd_gain=0.4, mlp_gain=0.1, noise=0.05, ladder=SIZES):
    """A sweep with known truths: DKD beats every other strategy by `dkd_gain` bpm (relative gain
    larger for ResNets), hard is worse than scratch; per-seed noise `noise`."""
    rng = np.random.default_rng(7)
    rows = [{"key": "teacher|T1|folds4", "strategy": "teacher", "family": "resnet", "width": 144, "depth": 8, "teacher": "T1", "params": 1_000_000,
             "folds": 4, "mae": 1.6, "mae_untracked": 3.0, "latency_us": 4000.0, "onnx_bytes": 4_000_000}]
    for family, sizes in ladder.items():
        for w, d, p in sizes:
            base = 1.5 + 2.0 * np.exp(-p / 5000) if family == "resnet" else 2.2 + 18 * np.exp(-p / 15000)
            gain = dkd_gain if family == "resnet" else mlp_gain
            for seed in range(seeds):
                e = rng.normal(0, 0.3)  # the seed's effect, common to every strategy
                for strategy, offset in (("scratch", 0.0), ("hard", 0.3), ("soft", -gain / 2), ("dkd", -gain), ("feature", 0.0)):
                    rows.append(_run(strategy, base + e + offset + rng.normal(0, noise), seed=seed, family=family, size=(w, d, p)))
    return rows


def _loso_study(dkd_gain=0.4, one_subject=False, seeds=1):
    """Leave-one-subject-out rows (one subject per fold, its error kept): DKD below scratch by `dkd_gain`
    on every subject, or (`one_subject`) by 12 × that on one subject and slightly worse on the rest."""
    rng = np.random.default_rng(11)
    rows = []
    for family, sizes in SIZES.items():
        for w, d, p in sizes:
            for seed in range(seeds):
                subject_base = rng.uniform(1.0, 4.0, 12)
                for strategy in ("scratch", "hard", "soft", "dkd", "feature"):
                    per = subject_base + rng.normal(0, 0.03, 12)
                    if strategy == "dkd":
                        if one_subject:
                            per = per + 0.05
                            per[9] -= 12 * dkd_gain
                        else:
                            per = per - dkd_gain
                    folds = [{"held_out": [f"DATA_{i + 1:02d}"], "windows": 150, "mae": float(v), "mae_untracked": float(v) + 2} for i, v in enumerate(per)]
                    rows.append(_run(strategy, float(np.mean(per)), seed=seed, folds=12, family=family, size=(w, d, p), per_fold=folds))
    return rows


def test_loso_claims_use_subjects_as_the_unit_with_holm():
    rows = _study(seeds=2) + _loso_study()
    c = _claims(rows)
    beats = c["Distilled students beat students trained from scratch"]
    assert beats.verdict == "reproduced" and "12/12 subjects lower" in beats.figure and "bpm and more" in beats.power
    assert c["DKD gives the strongest gains of the four strategies"].verdict == "reproduced"
    lone = _claims(_study(seeds=2) + _loso_study(one_subject=True))
    assert lone["Distilled students beat students trained from scratch"].verdict == "tie"  # one subject's gain is not a win


def _students_of(teacher: str, loso_rows: list[dict], gain: float) -> list[dict]:
    """DKD and soft students of another teacher, `gain` bpm below scratch on every subject of the LOSO rows."""
    rng = np.random.default_rng(5)
    out = []
    for r in (r for r in loso_rows if r["strategy"] == "scratch"):
        for strategy in ("dkd", "soft"):
            folds = [{**f, "mae": f["mae"] - gain + float(rng.normal(0, 0.03)), "mae_untracked": f["mae_untracked"] - gain} for f in r["per_fold"]]
            out.append(_run(strategy, float(np.mean([f["mae"] for f in folds])), seed=r["seed"], folds=12, family=r["family"],
                            size=(r["width"], r["depth"], r["params"]), teacher=teacher, per_fold=folds))
    return out


def test_students_of_a_second_teacher_get_their_own_verdict_rows():
    loso = _loso_study()
    helped = _claims(_study(seeds=2) + loso + _students_of("R32x3+fb", loso, gain=0.5))
    assert helped["Distilled students beat students trained from scratch"].verdict == "reproduced"  # the reference teacher, T1
    other = helped["Distilled students beat students trained from scratch, distilled from teacher R32x3+fb"]
    assert other.verdict == "reproduced" and "12/12 subjects lower" in other.figure
    useless = _claims(_study(seeds=2) + loso + _students_of("R32x3+fb", loso, gain=0.0))
    assert useless["Distilled students beat students trained from scratch, distilled from teacher R32x3+fb"].verdict == "tie"
    assert "Distilled students beat students trained from scratch, distilled from teacher T1" not in useless


def _claims(rows, metric="mae"):
    """Claims judged on `metric`, by their name without the metric suffix."""
    from ppg_stream.models.paper import METRIC_NAMES, claims

    results = Results(rows)
    metrics = ("mae", "mae_untracked")
    found = claims(results, {m: size_results(results, m) for m in metrics}, {m: series_fits(results, m) for m in metrics})
    suffix = f" ({METRIC_NAMES[metric]} MAE)"
    return {c.claim.removesuffix(suffix): c for c in found if c.claim.endswith(suffix) or not c.claim.endswith(" MAE)")}


@pytest.mark.slow
def test_with_enough_seeds_the_winners_are_named_and_the_claims_decided():
    results = Results(_study(seeds=4))
    sizes = size_results(results)
    assert [s.winner for s in sizes if s.size.family == "resnet"] == ["dkd"] * 4
    c = _claims(_study(seeds=4))
    assert _claims(_study(seeds=4), "mae_untracked")["DKD gives the strongest gains of the four strategies"].verdict.startswith("reproduced")
    assert c["Distilled students beat students trained from scratch"].verdict.startswith("reproduced")
    assert c["DKD gives the strongest gains of the four strategies"].verdict.startswith("reproduced")
    assert c["ResNet students benefit more from distillation than MLPs"].verdict == "reproduced"
    assert c["DKD reaches about 2.1 bpm MAE on a benchmark data set"].verdict == "not testable here"
    assert c["Distilled students cut memory and inference time substantially"].verdict == "reproduced"
    assert "4-fold CV × 4 seeds" in c["Distilled students beat students trained from scratch"].data


@pytest.mark.slow
def test_with_one_seed_every_comparison_is_a_tie():
    results = Results(_study(seeds=1))
    assert all(s.winner is None for s in size_results(results))
    c = _claims(_study(seeds=1))
    assert c["Distilled students beat students trained from scratch"].verdict == "tie"
    assert c["DKD gives the strongest gains of the four strategies"].verdict == "tie"


@pytest.mark.slow
def test_when_resnets_and_mlps_gain_alike_the_family_claim_is_not_reproduced_as_stated():
    c = _claims(_study(seeds=4, dkd_gain=0.3, mlp_gain=0.9))  # MLPs gain more here (in bpm and relative to scratch)
    assert c["ResNet students benefit more from distillation than MLPs"].verdict.startswith(("not reproduced", "tie"))


@pytest.mark.slow
def test_the_scaling_row_tests_a_family_only_with_enough_learnt_sizes_and_says_how_many():
    from ppg_stream.models.paper import exponential_law_means
    from ppg_stream.models.report import mean_series_fits

    baseline = {"key": "baseline|spectral|ieee", "strategy": "baseline", "family": "spectral", "mae": 3.2, "mae_untracked": 6.4}
    five = Results(_study(seeds=2, ladder={"mlp": SIZES["mlp"]}) + [baseline])  # 2 of 5 sizes below the baseline
    law = exponential_law_means(five, mean_series_fits(five))
    assert "too few sizes to test: mlp dkd" in law.figure and "mlp: 5 sizes (1.63-252 k), 2 fitted per series" in law.reason
    seven = {"mlp": SIZES["mlp"] + [(128, 2, 109493), (512, 2, 634037)]}  # appended to the ladder: 4 learnt sizes
    results = Results(_study(seeds=2, ladder=seven) + [baseline])
    law = exponential_law_means(results, mean_series_fits(results))
    assert "mlp" not in law.figure.split("too few sizes to test")[-1].split("; left out")[0]
    assert "mlp: 7 sizes (1.63-634 k), 4 fitted per series" in law.reason and "at most 1 here" in law.reason
    assert "mlp 1.63 k, mlp 5.98 k, mlp 23.4 k" in law.figure  # not learnt: shown as left out


def test_verdict_names_where_a_claim_holds_and_where_it_is_reversed():
    assert verdict({"a": "win", "b": "tie"}) == "reproduced at a; tie at b"
    assert verdict({"a": "win", "b": "loss"}).startswith("not reproduced (mixed)")
    assert verdict({"a": "tie", "b": "tie"}) == "tie"
    assert verdict({}) == "not testable here"


# --- plots --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_series_in_a_panel_have_distinct_colours_and_markers_and_fits_stay_in_range():
    from matplotlib.colors import to_hex

    results = Results(_study(seeds=2))
    fig = error_vs_size_figure(results, {m: series_fits(results, m) for m in ("mae", "mae_untracked")})
    assert len(fig.axes) == 4  # tracked and window by window, per family
    for ax in fig.axes:
        series = [line for line in ax.get_lines() if line.get_linestyle() == "None"]
        assert len(series) == 5
        assert len({to_hex(line.get_color()) for line in series}) == 5 and len({line.get_marker() for line in series}) == 5
        params = [p for *_, p in SIZES[ax.get_title().split()[0]]]
        for curve in [line for line in ax.get_lines() if line.get_linestyle() == "-"]:
            x = curve.get_xdata()
            assert x.min() >= min(params) * 0.999 and x.max() <= max(params) * 1.001
    with_loso = Results(_study(seeds=2) + _loso_study())
    for make in (gain_vs_size_figure, error_vs_latency_figure):
        for ax in make(with_loso).axes:
            lines = [line for line in ax.get_lines() if line.get_marker() not in ("None", None, "")]
            assert len({(to_hex(line.get_color()), line.get_marker()) for line in lines}) == len(lines)


def test_the_latency_plot_uses_one_session_s_timings_where_measured():
    # each run records the latency of its own session; `ppg-distill latency` times every architecture together
    results = Results(_study(seeds=2))
    measured = {(family, w, d): 1000.0 + p for family, sizes in SIZES.items() for w, d, p in sizes} | {"T1": 5000.0}
    for per_run, fig in ((True, error_vs_latency_figure(results)), (False, error_vs_latency_figure(results, "mae", measured))):
        for ax in fig.axes[:2]:
            xs = {round(float(x), 3) for line in ax.get_lines() if line.get_linestyle() == "None" for x in line.get_xdata()}
            family = ax.get_title().split()[0]
            expected = {round(1000.0 + p, 3) for *_, p in SIZES[family]}
            assert (xs <= expected) != per_run and xs, (family, xs)
            assert ("one session" in ax.get_xlabel()) != per_run


@pytest.mark.slow
def test_teacher_labels_never_overlap():
    rows = _study(seeds=1)
    rows += [{**rows[0], "key": f"teacher|{t}", "teacher": t, "mae": m, "params": p} for t, m, p in (("T2", 1.62, 1.9e6), ("T3", 1.64, 3e6), ("T4", 2.4, 5e6))]
    rows.append({"key": "baseline|spectral|ieee", "strategy": "baseline", "family": "spectral", "mae": 3.2, "mae_untracked": 6.4})  # MLPs above it leave the axis
    fig = error_vs_size_figure(Results(rows), {"mae": series_fits(Results(rows))})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text().startswith("teacher")]
        assert len(boxes) >= 2  # T1-T3 share one label (indistinguishable lines), T4 has its own
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_label_spreading_and_grouping():
    assert spread_labels([0.5, 0.5, 0.5], gap=0.06) == pytest.approx([0.5, 0.56, 0.62])
    assert spread_labels([0.3, 0.1], gap=0.06) == pytest.approx([0.3, 0.1])  # far apart: left alone, order kept
    top = spread_labels([0.95, 0.96], gap=0.06)
    assert max(top) <= 0.94 + 1e-9 and abs(top[0] - top[1]) >= 0.06 - 1e-9
    assert group_close([0.50, 0.52, 0.90, 0.51], gap=0.06) == [[0, 3, 1], [2]]


# --- the rendered report and the README mirror ---------------------------------------------------------

@pytest.mark.slow
def test_report_renders_the_paper_section_first_and_mirrors_it_into_the_readme(tmp_path):
    summary = render(_study(seeds=3), tmp_path).read_text()
    for name in ("mae_vs_params.png", "gain_vs_params.png", "mae_vs_latency.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert summary.index("## Against the paper") < summary.index("## Teachers") < summary.index("## Winner per student size")
    assert "| resnet | 8x2 (977) |" in summary and "**dkd** |" in summary
    assert "exponential" in summary and "ΔAIC exponential" in summary
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Distillation\n\nintro\n\n{README_BEGIN}\nold text\n{README_END}\n\n## Benchmarks\n")
    update_readme(readme, summary)
    text = readme.read_text()
    assert "old text" not in text and "### Against the paper" in text and "| claim (paper) |" in text
    assert text.endswith(f"{README_END}\n\n## Benchmarks\n") and text.count(README_BEGIN) == 1
    update_readme(readme, summary)
    assert readme.read_text() == text  # idempotent


def test_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, "## Against the paper\n\nx\n")


@pytest.mark.slow
def test_seeds_are_averaged_and_synthetic_mix_runs_are_set_apart(tmp_path):
    rows = [_run("scratch", 2.3, seed=0, mae_synthetic=3.5), _run("scratch", 2.4, seed=1, mae_synthetic=3.4),
            _run("scratch", 2.5, seed=2, mae_synthetic=3.6), _run("dkd", 2.0, seed=0, mae_synthetic=3.0),
            _run("scratch", 2.45, seed=0, mix=20, mae_synthetic=1.6), _run("scratch", 2.55, seed=1, mix=20, mae_synthetic=1.8)]
    for r in rows[-2:]:
        r["key"] += "|mix20"
    summary = render(rows, tmp_path).read_text()
    assert "| resnet | 16x2 (3,489) | 2.40 ± 0.10 (3) | 2.00 (1) | dkd −0.30 (n=1) | tie: dkd ≈ scratch |" in summary
    assert "| resnet | 16x2 (3,489) | scratch (-) | 4 | 0 | 3 | 2.40 ± 0.10 |" in summary
    assert "| resnet | 16x2 (3,489) | scratch (-) | 20 | 2 | 2.40 → 2.50 | 3.50 → 1.70 |" in summary


def _recipe_run(seed, taper, activities, mae, ece, ece_cal, reliability, **extra):
    row = _run("scratch", mae, seed=seed, mix=20, taper=taper, activities=activities, ece=ece, ece_calibrated=ece_cal, temperature=1.5,
               mae_calibrated=mae - 0.1, reliability=reliability, mae_synthetic=1.0, reliability_calibrated=reliability,
               scenarios={"boxing": {"mae": 3.0 + seed, "mae_untracked": 9.0}, "rest_irregular": {"mae": 0.4, "mae_untracked": 0.5}}, **extra)
    row["key"] += f"|mix20|{taper}|act{activities}"
    return row


@pytest.mark.slow
def test_recipes_get_their_own_table_and_reliability_diagram_and_stay_out_of_the_study(tmp_path):
    from ppg_stream.models.report_plots import pooled_reliability

    a = {"count": [0] * 8 + [10, 30], "confidence": [None] * 8 + [0.85, 0.95], "accuracy": [None] * 8 + [0.5, 0.7]}
    b = {"count": [0] * 8 + [30, 10], "confidence": [None] * 8 + [0.81, 0.91], "accuracy": [None] * 8 + [0.9, 0.8]}
    pooled = pooled_reliability([{"reliability": a}, {"reliability": b}])
    assert pooled["count"][8:] == [40, 40] and pooled["accuracy"][8] == pytest.approx((10 * 0.5 + 30 * 0.9) / 40)
    assert pooled["confidence"][:8] == [None] * 8
    rows = [_run("scratch", 2.4, seed=0), _run("dkd", 2.0, seed=0),
            _recipe_run(0, "hann", 0, 1.5, 0.30, 0.05, a), _recipe_run(1, "hann", 0, 1.7, 0.20, 0.07, b),
            _recipe_run(0, "rect", 2, 1.2, 0.10, 0.04, b), _recipe_run(0, "rect", 2, 2.2, 0.10, 0.04, b, folds=12)]
    rows[-1]["key"] += "|loso"
    summary = render(rows, tmp_path).read_text()
    assert "## Training recipe" in summary
    assert "| scratch resnet 16x2, hann, mix 20, act 0, 4-fold | 2 | 1.60 / 3.60 | 3.50 / 9.00 | 0.40 / 0.50 | 0.250 → 0.060 | 1.50 | 1.50 |" in summary
    # the same recipe run leave-one-subject-out is a row of its own, not a third seed of the 4-fold one
    assert "| scratch resnet 16x2, rect, mix 20, act 2, 4-fold | 1 | 1.20 / 3.20 |" in summary
    assert "| scratch resnet 16x2, rect, mix 20, act 2, LOSO | 1 | 2.20 / 4.20 |" in summary
    assert (tmp_path / "reliability.png").stat().st_size > 10_000
    assert Results(rows).students == [r for r in Results(rows).rows[:2]]  # recipes are not study runs


def test_a_file_of_recipe_runs_only_renders_its_table(tmp_path):
    a = {"count": [0] * 9 + [5], "confidence": [None] * 9 + [0.95], "accuracy": [None] * 9 + [0.9]}
    summary = render([_recipe_run(0, "rect", 6, 1.2, 0.05, 0.04, a)], tmp_path).read_text()
    assert summary.startswith("# Training recipes") and "| scratch resnet 16x2, rect, mix 20, act 6, 4-fold | 1 | 1.20 / 3.20 |" in summary
    assert (tmp_path / "reliability.png").exists()
