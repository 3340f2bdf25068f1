"""Synthetic scenario sets that each isolate one failure class of a tracker (issue 12).

A scenario set is just a named list of recordings with reference labels, so any generator (for example
`ppg_stream.replay.synthetic`'s activity scenarios) can be plugged into `ppg-distill accuracy` as another set.
The ones here start from a clean, still recording of the project's generator and add arm motion
(`ppg_stream.replay.activity.add_wrist_motion`, the activity scenarios' own motion and PPG-leak model) placed
where the failure needs it:

- `rest`: no motion at all (rest precision: the spectral floor against beat intervals);
- `motion at HR`: bouts of arm motion (20-40 s, pauses of 10-20 s) whose cadence follows the heart
  rate (±3 %), so the accelerometer has power at the HR (suppressing ACC frequencies would remove the
  pulse);
- `motion at 2x HR`: the same bouts with the cadence at twice the heart rate (a harmonic the model
  can prefer);
- `bursts`: short strong shakes (3-5 s) at an unrelated cadence every 20-40 s: single confident,
  wrong windows (jump capture);
- `moving start`: strong motion at an unrelated cadence from the first sample for 30 s (start-up).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..replay.activity import Cadence, add_wrist_motion
from ..replay.recording import Recording, uniform_times
from ..replay.synthetic import Synthetic, synthesize

DURATION_S = 300.0
Segments = list[tuple[float, float, Cadence]]


def _recording(name: str, syn: Synthetic, ppg: np.ndarray, acc: np.ndarray) -> Recording:
    return Recording(name, ppg[:, None], uniform_times(len(ppg), syn.fs_ppg), syn.fs_ppg,
                     acc, uniform_times(len(acc), syn.fs_acc), syn.fs_acc, syn.labels_bpm)


def _still(seed: int) -> Synthetic:
    return synthesize(DURATION_S, seed=seed, motion_share=0.0, noise=0.02)


def _with_motion(name: str, n: int, seed: int, stream: int, gain: float, draw: Callable[[np.random.Generator], Segments]) -> list[Recording]:
    """`n` still recordings, each with the motion segments `draw` picks; `stream` keeps the sets' seeds apart."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, stream, i])
        syn = _still(seed * 1000 + stream * 100 + i + 500)
        out.append(_recording(f"{name}{i}", syn, *add_wrist_motion(syn, draw(rng), gain, rng)))
    return out


def _repeat(rng: np.random.Generator, first: tuple[float, float], length: tuple[float, float], pause: tuple[float, float],
            cadence: Callable[[np.random.Generator], Cadence]) -> Segments:
    """Bouts of `length` s separated by `pause` s from `first` s on, to the end of the recording."""
    segments, t = [], rng.uniform(*first)
    while t < DURATION_S - 10:
        end = min(t + rng.uniform(*length), DURATION_S)
        segments.append((t, end, cadence(rng)))
        t = end + rng.uniform(*pause)
    return segments


def _following_hr(ratio: float) -> Callable[[np.random.Generator], Cadence]:
    """A cadence that follows the HR at `ratio` (±3 %, drawn per bout)."""
    def draw(rng: np.random.Generator) -> Cadence:
        r = ratio * (1 + rng.uniform(-0.03, 0.03))
        return lambda hr: hr / 60.0 * r
    return draw


def _unrelated(rng: np.random.Generator) -> Cadence:
    c = rng.uniform(1.2, 2.8)
    return lambda hr: np.full_like(hr, c)


def rest(n: int, seed: int = 0) -> list[Recording]:
    return _with_motion("rest", n, seed, 0, 0.0, lambda rng: [])


def motion_at_hr(n: int, seed: int = 0) -> list[Recording]:
    return _with_motion("at-hr", n, seed, 1, 1.5, lambda rng: _repeat(rng, (5, 15), (20, 40), (10, 20), _following_hr(1.0)))


def motion_at_double_hr(n: int, seed: int = 0) -> list[Recording]:
    return _with_motion("at-2hr", n, seed, 2, 1.5, lambda rng: _repeat(rng, (5, 15), (20, 40), (10, 20), _following_hr(2.0)))


def bursts(n: int, seed: int = 0) -> list[Recording]:
    return _with_motion("bursts", n, seed, 3, 4.0, lambda rng: _repeat(rng, (20, 40), (3, 5), (20, 40), _unrelated))


def moving_start(n: int, seed: int = 0) -> list[Recording]:
    return _with_motion("start", n, seed, 4, 3.0, lambda rng: [(0.0, 30.0, _unrelated(rng))])


SCENARIO_SETS: dict[str, Callable[[int, int], list[Recording]]] = {
    "rest": rest,
    "motion at HR": motion_at_hr,
    "motion at 2x HR": motion_at_double_hr,
    "bursts": bursts,
    "moving start": moving_start,
}
