"""The replay source paces chunks like a live device and covers the whole recording."""

import time

import numpy as np

from ppg_stream.replay.recording import Recording, uniform_times
from ppg_stream.stream.sources.replay import ReplaySource


def _recording(duration_s=20.0):
    n, m = int(duration_s * 64), int(duration_s * 32)
    return Recording("r", np.zeros((n, 1)), uniform_times(n, 64.0), 64.0, np.zeros((m, 3)), uniform_times(m, 32.0), 32.0)


async def _collect(source):
    out = []
    async for chunk, arrival in source.chunks():
        out.append((chunk, arrival, time.perf_counter()))
    return out


async def test_speed_n_paces_chunks_at_n_times_real_time():
    source = ReplaySource(_recording(20.0), speed=20.0)
    t0 = time.perf_counter()
    items = await _collect(source)
    wall = time.perf_counter() - t0
    assert 0.9 < wall < 3.0  # 20 s of signal at 20x: about one second, never instantaneous
    # each chunk's arrival is when its last sample would have existed in a live stream
    for chunk, arrival, seen in items:
        assert seen >= arrival - 0.005
    ppg = [c for c, _, _ in items if c.group == "ppg"]
    assert sum(len(c.t) for c in ppg) == 20 * 64
    assert max(np.diff(c.t).max() for c in ppg if len(c.t) > 1) < 1 / 64 + 1e-9


async def test_max_speed_covers_everything_in_order_without_waiting():
    source = ReplaySource(_recording(600.0), speed=None)
    t0 = time.perf_counter()
    items = await _collect(source)
    assert time.perf_counter() - t0 < 1.0
    for group, n in (("ppg", 600 * 64), ("acc", 600 * 32)):
        t = np.concatenate([c.t for c, _, _ in items if c.group == group])
        assert len(t) == n and np.all(np.diff(t) > 0)


def test_readme_test_command_is_what_ci_runs():
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = ".venv/bin/python -m pytest -q"
    assert command in readme and ci.rstrip().splitlines()[-1] == command
