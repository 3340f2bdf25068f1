"""`ppg-distill`: the report characterises a results file; mistakes give one clear line."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from models.report import best_form, fit_scaling, render  # noqa: E402
from tests.conftest import ROOT  # noqa: E402


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "models.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_scaling_fit_recovers_a_known_law_and_prefers_the_right_form():
    n = np.geomspace(1e3, 5e5, 7)
    fits = fit_scaling(n, 9.0 * n**-0.35 + 1.2)
    assert best_form(fits) == "power+floor"
    np.testing.assert_allclose(fits["power+floor"]["coef"], [9.0, 0.35, 1.2], rtol=1e-3)
    log_fits = fit_scaling(n, 6.0 - 0.4 * np.log(n))
    assert best_form(log_fits) == "log-linear"


def _rows():
    rows = []
    for family, sizes in (("resnet", [(8, 2, 977), (16, 2, 3489), (32, 3, 19393)]), ("mlp", [(2, 1, 1631), (8, 1, 5981), (32, 1, 23381)])):
        for w, d, p in sizes:
            for strategy, gain in (("scratch", 0.0), ("soft", 0.4), ("dkd", 0.2)):
                mae = 2.0 + 20 * p**-0.3 - gain
                rows.append({"key": f"{strategy}{family}{w}", "strategy": strategy, "family": family, "width": w, "depth": d,
                             "teacher": None if strategy == "scratch" else "T1", "params": p, "mae": mae, "latency_us": 20 + p / 1000})
    return rows


def test_report_renders_plots_and_a_summary_naming_the_winner(tmp_path):
    teacher = {"key": "teacher|T1", "strategy": "teacher", "family": "resnet", "width": 144, "depth": 8, "teacher": "T1",
               "params": 1_000_000, "mae": 1.9, "mae_untracked": 3.1, "latency_us": 900.0}
    summary = render(_rows() + [teacher], tmp_path).read_text()
    assert "| T1 | 1,000,000 | 1.90 | 3.10 | 900 |" in summary
    assert (tmp_path / "mae_vs_params.png").stat().st_size > 10_000
    assert (tmp_path / "mae_vs_latency.png").stat().st_size > 10_000
    assert "| resnet | 16x2 (3,489) |" in summary and "soft (T1) | +0.40 |" in summary
    assert "| mlp | dkd | T1 | +0.20 |" in summary


def test_report_command_on_a_results_file(tmp_path):
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    out = _cli("report", "--results", str(results), "--out", str(tmp_path / "rep"))
    assert out.returncode == 0, out.stderr
    assert "Scaling-law fits" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["distill", "--student", "cnn:3"], "expected FAMILY:WIDTHxDEPTH"),
        (["distill", "--strategy", "soft", "--ieee", "{tmp}"], "no IEEE SPC 2015 recordings"),
        (["distill", "--strategy", "magic"], "unknown strategy 'magic'"),
        (["distill", "--dalia", "{tmp}"], "no PPG-DaLiA subjects (S*.pkl)"),
        (["distill", "--ieee", "none"], "--ieee none needs --dalia DIR"),
        (["report", "--results", "{tmp}/none.jsonl"], "no such file"),
        (["distill", "--set", "alpha"], "expected NAME=NUMBER"),
    ],
)
def test_mistakes_are_one_line(tmp_path, args, message):
    out = _cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppg-distill: error:") and message in lines[0], out.stderr


def test_report_averages_seeds_and_sets_the_synthetic_mix_apart(tmp_path):
    def row(strategy, seed, mae, mix=0, syn=None):
        return {"key": f"{strategy}{seed}{mix}", "strategy": strategy, "family": "resnet", "width": 16, "depth": 2, "teacher": None if strategy == "scratch" else "T3",
                "epochs": 30, "seed": seed, "mix": mix, "params": 3489, "mae": mae, "mae_synthetic": syn, "latency_us": 50.0, "strategy_params": {}}

    rows = [row("scratch", 0, 2.3, syn=3.5), row("scratch", 1, 2.4, syn=3.4), row("scratch", 2, 2.5, syn=3.6),
            row("dkd", 0, 2.0, syn=3.0), row("scratch", 0, 2.45, mix=20, syn=1.6), row("scratch", 1, 2.55, mix=20, syn=1.8)]
    summary = render(rows, tmp_path).read_text()
    assert "| resnet | 16x2 (3,489) | 2.40 | 2.00 | dkd (T3) | +0.40 |" in summary  # scratch = mean of 3 seeds; mix rows left out
    assert "| resnet | 16x2 (3,489) | scratch (-) | 0 | 3 | 2.40 ± 0.10 |" in summary
    assert "| resnet | 16x2 (3,489) | scratch (-) | 20 | 2 | 2.40 → 2.50 | 3.50 → 1.70 |" in summary
