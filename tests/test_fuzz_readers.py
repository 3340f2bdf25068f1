"""Fuzz the recording readers and the model loader with a fixed, small budget, each in a child process.

What each may do with any input: return a recording the stream can take (and whose every window the
preprocessor accounts for) or a model that runs, or raise its own one-line error; never crash, never
raise anything else, never grow past a few hundred MiB. The child runs
`tests/fuzz_readers.py` with a fixed seed, so a failure reproduces; a hard crash (segfault) shows
as the child's exit status with the input that caused it.
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BUDGET = {"pickle": 400, "dalia": 150, "csv": 250, "mat": 300, "onnx": 150}  # examples per target: 5-20 s each on a 2-core CI runner
MAX_PEAK_RSS_MIB = 400


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(BUDGET))
def test_reader_survives_fuzzing(target, tmp_path):
    last_input = tmp_path / "last_input"
    env = {**os.environ, "FUZZ_LAST_INPUT": str(last_input)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz_readers", target, "--examples", str(BUDGET[target])],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )
    crashed_on = last_input.read_bytes()[:400] if last_input.exists() else b""
    assert result.returncode == 0, f"exit {result.returncode}; last input {crashed_on!r}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    peak = float(result.stdout.split("peak RSS ")[1].split()[0])
    assert peak < MAX_PEAK_RSS_MIB, result.stdout
