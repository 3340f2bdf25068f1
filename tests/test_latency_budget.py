"""The per-window budget: slow models make windows late; real time drops stale windows; max never drops."""

import json
import time

import numpy as np
import onnx
import pytest

from ppg_stream.stream.core.engine import InferenceEngine
from tests.conftest import run_cli
from tests.models_for_tests import slow_model

pytestmark = pytest.mark.slow  # each runs the CLI on a minute of recording: left out of the quick subset (-m "not slow")


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    path = tmp_path_factory.mktemp("slow") / "slow.onnx"
    onnx.save(slow_model(300), path)
    engine = InferenceEngine(path)
    x = np.zeros((1, 4, 200), dtype=np.float32)
    engine.run(x)
    t = time.perf_counter()
    for _ in range(3):
        engine.run(x)
    return path, (time.perf_counter() - t) / 3 * 1000.0  # ms per single window


def _summary(stderr: str) -> dict:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return next(line for line in lines if line["event"] in ("replay finished", "replay interrupted"))


def test_slow_model_makes_windows_late(synthetic_60s, slow):
    path, cost_ms = slow
    budget = cost_ms / 4
    result = run_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--model", str(path),
                     "--budget-ms", f"{budget:.3f}", "--stdout", "--no-mqtt", "--log-json")
    assert result.returncode == 0, result.stderr
    messages = result.messages
    assert len(messages) == synthetic_60s.n_windows
    assert all(m["late"] and m["latency_ms"] > budget for m in messages)
    assert _summary(result.stderr)["late"] == len(messages)


def test_fast_model_is_within_budget(synthetic_60s):
    result = run_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--stdout", "--no-mqtt", "--log-json")
    messages = result.messages
    assert len(messages) == synthetic_60s.n_windows
    assert not any(m["late"] for m in messages)  # default budget 50 ms; a window costs well under 1 ms
    summary = _summary(result.stderr)
    assert summary["late"] == 0 and summary["latency_p99_ms"] < 50


def test_realtime_pipeline_that_falls_behind_drops_stalest_windows(synthetic_60s, slow):
    path, cost_ms = slow
    speed = 2000.0 / (cost_ms / 10)  # a new window every tenth of what one costs
    result = run_cli("--replay", str(synthetic_60s.path), "--speed", f"{speed:.0f}", "--model", str(path),
                     "--stdout", "--no-mqtt", "--log-json")
    assert result.returncode == 0, result.stderr
    summary = _summary(result.stderr)
    messages = result.messages
    assert summary["dropped_stale"] > 0
    assert len(messages) + summary["dropped_stale"] == synthetic_60s.n_windows
    assert "falling behind: dropped stale windows" in result.stderr
    # lag stays bounded: at most one hop of stream time plus a couple of windows' work
    bound_ms = 2000.0 / speed + 4 * cost_ms
    assert max(m["latency_ms"] for m in messages) < bound_ms
    assert [m["window"] for m in messages] == sorted(m["window"] for m in messages)


def test_max_speed_never_drops_even_with_a_slow_model(synthetic_60s, slow):
    path, _ = slow
    result = run_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--model", str(path),
                     "--stdout", "--no-mqtt", "--log-json")
    assert [m["window"] for m in result.messages] == list(range(synthetic_60s.n_windows))
    assert _summary(result.stderr)["dropped_stale"] == 0


WARM_UP_COVERS_THE_STREAM = r"""
import asyncio, sys
import numba.core.registry
from ppg_stream.replay.synthetic import synthesize, write_synthetic_dalia
from ppg_stream.replay.load import load_recording
from ppg_stream.stream.core.engine import InferenceEngine
from ppg_stream.stream.runtime.pipeline import Runtime, RuntimeConfig, warm_up_runtime
from ppg_stream.stream.runtime.source_pump import pump
from ppg_stream.stream.sources.replay import ReplaySource


def kernels():
    return {f"{name}.{attr}": len(value.signatures) for name, module in list(sys.modules.items()) if name.startswith("ppg_stream.")
            for attr, value in vars(module).items() if isinstance(value, numba.core.registry.CPUDispatcher)}


class Sink:
    def publish(self, messages): pass
    def set_status(self, device, status): pass


async def main(path):
    recording = load_recording(path)
    engine = InferenceEngine("student")
    warm_up_runtime(engine, dict(ReplaySource(recording, speed=10.0).rates))
    before = kernels()
    runtime = Runtime(engine, [Sink()], RuntimeConfig(speed=100.0))
    task = asyncio.create_task(runtime.run())
    await pump(runtime, ReplaySource(recording, speed=100.0, chunk_s=0.25), "d", wait=True)
    runtime.finish_all()
    await task
    runtime.summary(1.0)
    after = kernels()
    print("windows", runtime.totals().windows)
    print("late kernels", sorted(k for k, n in after.items() if n != before.get(k, 0)))


write_synthetic_dalia(sys.argv[1], synthesize(40.0, 3), subject="d", with_chest=False)
asyncio.run(main(sys.argv[1]))
"""


def test_the_warm_up_compiles_every_kernel_the_stream_uses(tmp_path):
    """A kernel the warm-up left out is compiled by the first window on a first run (cold Numba cache): that
    window came out 130-180 ms late and, at --speed 10, pushed others past a hop, dropped as stale. Every
    Numba dispatcher of the package is checked, whether it compiles or loads from the cache."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = subprocess.run([sys.executable, "-c", WARM_UP_COVERS_THE_STREAM, str(tmp_path / "r.pkl")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "windows 17" in out.stdout and "late kernels []" in out.stdout, out.stdout
