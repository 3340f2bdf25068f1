"""A student's own cost, side by side with others in one run: ONNX bytes and µs per window.

    python benchmarks/bench_student.py --also-model old_student.onnx

onnxruntime on one thread, one window per call (median of 300 after 20 warm-up calls), rounds
interleaved so that load from other jobs hits every model alike; the shipped student is first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from tables import table  # noqa: E402

from ppg_stream.models.study import onnx_file_costs  # noqa: E402
from ppg_stream.stream.core.engine import SHIPPED_STUDENT, InferenceEngine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--also-model", action="append", default=[], metavar="PATH", help="an .onnx model measured beside the shipped student")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    paths = [SHIPPED_STUDENT] + [Path(p) for p in args.also_model]
    for p in paths:
        if not p.is_file():
            parser.error(f"--also-model {p}: no such file")
    latencies: dict[Path, list[float]] = {p: [] for p in paths}
    for _ in range(args.rounds):
        for p in paths:
            latencies[p].append(onnx_file_costs(p)["latency_us"])
    rows = [[InferenceEngine(p).spec.label, str(p if p != SHIPPED_STUDENT else "stream/core/student.onnx"), f"{p.stat().st_size:,}",
             f"{np.median(latencies[p]):.1f}", f"{min(latencies[p]):.1f}"] for p in paths]
    table(f"Student cost, onnxruntime 1 thread, 1 window per call ({args.rounds} interleaved rounds of 300)",
          ["model", "file", "bytes", "µs/window (median of rounds)", "best round"], rows)


if __name__ == "__main__":
    main()
