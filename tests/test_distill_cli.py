"""`ppg-distill`: the report characterises a results file; mistakes give one clear line."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from tests.conftest import ROOT  # noqa: E402

pytestmark = pytest.mark.slow  # see pyproject's markers: left out of the quick subset


def _cli(*args, data=None):
    """`ppg-distill ARGS`; `data`: the folder PPG_STREAM_DATA names (an empty one: a clone next to no data)."""
    env = dict(os.environ, **({"PPG_STREAM_DATA": str(data)} if data is not None else {}))
    return subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)


def _rows():
    rows = []
    for family, sizes in (("resnet", [(8, 2, 977), (16, 2, 3489), (32, 3, 19393)]), ("mlp", [(2, 1, 1631), (8, 1, 5981), (32, 1, 23381)])):
        for w, d, p in sizes:
            for strategy, gain in (("scratch", 0.0), ("soft", 0.4), ("dkd", 0.2)):
                mae = 2.0 + 20 * p**-0.3 - gain
                rows.append({"key": f"{strategy}{family}{w}", "strategy": strategy, "family": family, "width": w, "depth": d,
                             "teacher": None if strategy == "scratch" else "T1", "params": p, "mae": mae, "latency_us": 20 + p / 1000})
    return rows


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
        (["distill", "--dalia", "{tmp}", "--ieee", "{tmp}/ieee"], "no IEEE SPC 2015 recordings"),
        (["distill", "--ieee", "none"], "--ieee none needs --dalia DIR"),
        (["report", "--results", "{tmp}/none.jsonl"], "no such file"),
        (["distill", "--set", "alpha"], "expected NAME=NUMBER"),
        (["report", "--results", "results/sweep.jsonl", "--out", "{tmp}/rep", "--readme", "{tmp}/README.md"], "markers"),
        # the options of a run are checked before any data is read: with none at all, these are what is said
        (["distill", "--strategy", "dkd", "--teacher", "T9"], "teacher 'T9': one of T1, T2, T3"),
        (["distill", "--set", "alpha=1", "--strategy", "scratch"], "has no parameter(s) ['alpha']"),
        (["distill", "--folds", "1"], "--folds 1: at least 2"),
        (["export", "--strategy", "bogus", "--out", "{tmp}/s.onnx"], "unknown strategy 'bogus'"),
        (["sweep", "--strategies", "scratch,bogus"], "unknown strategy 'bogus'"),
        (["sweep", "--families", "resnet", "--sizes", "0,99"], "--sizes '0,99': indices 0-"),
        (["train-teacher", "--pretrain-epochs", "0"], "--pretrain-epochs 0: at least 1"),
    ],
)
def test_mistakes_are_one_line_before_any_data_is_read(tmp_path, args, message):
    """Run as in a clone next to no data (PPG_STREAM_DATA names an empty folder): a mistake in the options is
    still the line about that mistake, said before the data set is looked for (or loaded: 25 s)."""
    (tmp_path / "README.md").write_text("# a README without the report's markers\n")
    out = _cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], data=tmp_path / "no-data")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppg-distill: error:") and message in lines[0], out.stderr
    assert not (tmp_path / "rep").exists()  # a refused report writes nothing


def test_the_data_folder_comes_from_ppg_stream_data_and_missing_data_says_where_to_get_it(tmp_path):
    out = _cli("distill", data=tmp_path)
    assert out.returncode == 2
    line, = out.stderr.strip().splitlines()
    assert f"--ieee {tmp_path / 'ieee-spc2015'}: no IEEE SPC 2015 recordings" in line
    assert "sites.google.com/site/researchbyzhang/ieeespcup2015" in line and "set PPG_STREAM_DATA" in line


def test_run_keys_name_the_fold_split_except_the_default_one():
    from ppg_stream.models.study import RunConfig

    assert RunConfig("scratch", "resnet", 8, 2, None).key == "scratch|resnet:8x2|-|e30|s0|"  # as in earlier results files
    assert RunConfig("dkd", "resnet", 8, 2, "T1", seed=1, folds=12).key == "dkd|resnet:8x2|T1|e30|s1||k12"


@pytest.mark.slow
def test_latency_times_the_architectures_in_one_session(tmp_path):
    out = tmp_path / "latency.jsonl"
    result = subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", "latency", "--only", "mlp 2x1,resnet 8x2", "--rounds", "2",
                             "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["name"], r["params"]) for r in rows} == {("mlp 2x1", 1631), ("resnet 8x2", 977)}
    assert all(r["latency_us"] > 0 and len(r["latency_rounds_us"]) == 2 and abs(r["latency_us"] - min(r["latency_rounds_us"])) < 0.01 for r in rows)
    for bad, says in ((["--rounds", "0"], "--rounds"), (["--only", "resnet 9x9"], "choose from")):
        result = subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", "latency", *bad, "--out", str(out)],
                                capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert result.returncode == 2 and says in result.stderr and result.stderr.count("\n") == 1
