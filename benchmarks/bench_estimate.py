"""What the runtime does per window after the model, with and without the cues of issue 22.

    python benchmarks/bench_estimate.py [--windows 4000]

`stream.core.estimate.estimate_windows` over a batch of preprocessed windows (synthetic recordings with
motion, as the stream cuts them) and the shipped student's probabilities (a fresh array per call, as the
runtime's softmax output, made outside the timing): decoding, cues, tracking, beat refinement, tempered
confidence, best of 7 in CPU time; beside it the model's own cost per window in a batch, so the share the
cues add to a window's whole cost is plain; and the gait (stream/core/gait.py), which a stream reads only in
its first minutes while it moves gently (the walk-start ceiling), as if it were read in every window. Ratios,
since the machine is shared.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from tables import table  # noqa: E402

from ppg_stream.models.dataset import labelled_windows  # noqa: E402
from ppg_stream.models.targets import TRAINING_SPEC  # noqa: E402
from ppg_stream.replay.recording import Recording, uniform_times  # noqa: E402
from ppg_stream.replay.synthetic import synthesize  # noqa: E402
from ppg_stream.stream.core.cues import CueParams  # noqa: E402
from ppg_stream.stream.core.decode import softmax  # noqa: E402
from ppg_stream.stream.core.engine import InferenceEngine  # noqa: E402
from ppg_stream.stream.core.estimate import estimate_windows  # noqa: E402
from ppg_stream.stream.core.gait import strongest_acc_line  # noqa: E402
from ppg_stream.stream.core.student_spec import BINS_BPM  # noqa: E402
from ppg_stream.stream.core.tracker import TrackerTable  # noqa: E402


def windows(n: int) -> np.ndarray:
    xs = []
    seed = 0
    while sum(len(x) for x in xs) < n:
        syn = synthesize(600.0, seed=seed, motion_share=0.7, artefact_gain=2.0)
        rec = Recording(f"s{seed}", syn.ppg[:, None], uniform_times(len(syn.ppg), syn.fs_ppg), syn.fs_ppg, syn.acc_g,
                        uniform_times(len(syn.acc_g), syn.fs_acc), syn.fs_acc, syn.labels_bpm)
        xs.append(labelled_windows(rec, TRAINING_SPEC).x)
        seed += 1
    return np.concatenate(xs)[:n]


def best(f, repeats: int = 7, setup=None) -> float:
    """Best CPU time of `f(setup())` (`f()` without `setup`); `setup` is not timed."""
    out = float("inf")
    for _ in range(repeats):
        args = () if setup is None else (setup(),)
        started = time.process_time()  # CPU time of this process: the shared machine's other jobs count less
        f(*args)
        out = min(out, time.process_time() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=4000)
    args = parser.parse_args()
    x = windows(args.windows)
    engine = InferenceEngine("student")
    probs = softmax(engine.run(x[:256]))
    probs = np.concatenate([probs] * (len(x) // 256 + 1))[: len(x)]
    k = np.arange(len(x))

    def run(cues):
        table_ = TrackerTable(BINS_BPM, capacity=1)
        row = table_.add()
        # as the runtime: each batch's probabilities are a fresh array (softmax's output, made outside the timing)
        # that the cues may overwrite
        return lambda fresh: estimate_windows(x, fresh, BINS_BPM, TRAINING_SPEC.fs, table_, np.full(len(x), row), k, cues,
                                              overwrite_probs=True)

    run(CueParams())(probs.copy())  # compile
    model = best(lambda: [engine.run(x[i : i + 256]) for i in range(0, len(x), 256)], repeats=3)
    without, with_cues = best(run(None), setup=probs.copy), best(run(CueParams()), setup=probs.copy)
    every = np.ones(len(x), dtype=bool)
    gait = best(lambda: strongest_acc_line(x, TRAINING_SPEC.fs, every))
    n = len(x)
    table(f"Per window after the model, {n:,} windows, best of 7 (the model in batches of 256: {model / n * 1e6:.1f} µs per window)",
          ["path", "µs per window", "model + path, µs", "vs without cues"],
          [["without cues (--no-cues)", without / n * 1e6, (model + without) / n * 1e6, 1.0],
           ["with cues (default)", with_cues / n * 1e6, (model + with_cues) / n * 1e6, (model + with_cues) / (model + without)],
           ["with cues, the gait read in every window (a walk's first minutes)", (with_cues + gait) / n * 1e6,
            (model + with_cues + gait) / n * 1e6, (model + with_cues + gait) / (model + without)]])


if __name__ == "__main__":
    main()
