"""`ppg-distill` where the [train] extra is not installed (torch, tqdm, matplotlib cannot be imported): one
line naming the extra, exit status 2, nothing written. Runs with or without the extra installed: the child
process blocks those imports the way an absent package fails them."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

WITHOUT_TRAIN = """
import sys
for name in ("torch", "tqdm", "matplotlib"):
    sys.modules[name] = None  # `import torch` now fails with ModuleNotFoundError, as without the extra
from ppg_stream.models.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("args, missing", [
    (["distill", "--strategy", "soft"], "torch"),
    (["train-teacher"], "torch"),
    (["sweep"], "torch, tqdm"),
    (["accuracy"], "torch"),
    (["export", "--out", "{tmp}/s.onnx"], "torch"),
    (["report", "--results", "results/sweep.jsonl", "--out", "{tmp}/report"], "matplotlib"),
])
def test_each_command_names_the_extra_it_needs(tmp_path, args, missing):
    out = subprocess.run([sys.executable, "-c", WITHOUT_TRAIN, *[a.replace("{tmp}", str(tmp_path)) for a in args]],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2, out.stderr
    line, = out.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"ppg-distill: error: ppg-distill {args[0]} needs the [train] extra ({missing} not installed)")
    assert "pip install -e '.[train]'" in line
    assert list(tmp_path.iterdir()) == []  # no empty report folder, no model file
