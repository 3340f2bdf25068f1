"""`ppg-distill accuracy` on tiny settings: trains the chosen leave-one-subject-out folds once, caches
their held-out probabilities, and prints the before/after table per failure class."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from tests.conftest import ROOT  # noqa: E402

pytestmark = pytest.mark.slow  # see pyproject's markers: left out of the quick subset


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", "accuracy", *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_two_folds_one_epoch_then_from_the_cache(ieee_dir, tmp_path):
    args = ["--ieee", str(ieee_dir), "--cache", str(tmp_path), "--folds", "0,5", "--epochs", "1", "--mix-synthetic", "0",
            "--activities", "1", "--scenarios", "1", "--out", str(tmp_path / "acc.md")]
    first = _cli(*args)
    assert first.returncode == 0, first.stderr
    cached = sorted(str(p.relative_to(tmp_path / "accuracy")) for p in (tmp_path / "accuracy").rglob("fold*.npz"))
    recipe = "ieee-scratch-resnet16x2-e1-mix0-act1-rect-s0-k12"  # the shipped student's recipe (rect taper, activities) at these settings
    assert cached == [f"{recipe}/fold0.npz", f"{recipe}/fold5.npz"]
    assert first.stdout.count("trained in") == 2
    table = (tmp_path / "acc.md").read_text()
    for row in ("| all windows |", "| jump capture |", "| harmonic |", "| motion at HR |", "| start-up |", "| rest |",
                "tracked jumps > 15 bpm", "previous tracker", "new tracker", "new + beats", "synthetic: rest", "(2 of 12 folds)"):
        assert row in table, row
    again = _cli(*args)  # every fold is cached: nothing is trained again, and the tables are the same
    assert again.returncode == 0, again.stderr
    assert "trained in" not in again.stdout
    assert (tmp_path / "acc.md").read_text() == table


@pytest.mark.parametrize("args, message", [(["--folds", "12"], "numbered 0-11"), (["--folds", "a,b"], "comma-separated list"),
                                           (["--activities", "-1"], "--activities")])
def test_mistakes_are_one_line(ieee_dir, tmp_path, args, message):
    out = _cli("--ieee", str(ieee_dir), "--cache", str(tmp_path), *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppg-distill: error:") and message in lines[0], out.stderr
