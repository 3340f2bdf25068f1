"""Every architecture's single-window cost, measured in one session (`ppg-distill latency`).

Latency is a property of the architecture, not of its weights or its strategy; but each sweep row records
the latency measured when that run finished, on whatever the shared machine was doing then, so one size's
rows from different sessions differ by more than neighbouring sizes do. The latency plot of the report
therefore reads this table instead where it exists: every student size and every teacher, freshly built
(seeded weights), exported under the model contract and timed in the same process, round after round
(each round times every architecture once, in the same order), the best round kept, as `timeit` does: on a
shared machine the other jobs only ever add time, and the first rounds also pay for warming caches.
"""

from __future__ import annotations

import os
import time

import numpy as np

Architecture = tuple[str, int, int]  # family, width, depth


def architectures() -> list[tuple[str, Architecture]]:
    """(name, architecture) for every student size of the ladder and every teacher."""
    from .architectures import STUDENT_SIZES, TEACHER_SIZES

    out = [(f"{family} {w}x{d}", (family, w, d)) for family, sizes in STUDENT_SIZES.items() for w, d in sizes]
    return out + [(name, ("resnet", w, d)) for name, (w, d) in TEACHER_SIZES.items()]


def measure(rounds: int = 5, only: list[str] | None = None) -> list[dict]:
    """One row per architecture: parameters, ONNX bytes, latency (the best of `rounds` rounds, each the
    median of 300 single-window runs), and every round's figure so the spread is visible."""
    from .architectures import build, n_parameters  # torch: the [train] extra; the report reads rows without it
    from .study import onnx_costs
    from .targets import training_spec

    chosen = [(name, arch) for name, arch in architectures() if only is None or name in only]
    models = {name: build(arch[0], training_spec(), arch[1], arch[2], seed=0) for name, arch in chosen}
    per_round: dict[str, list[float]] = {name: [] for name, _ in chosen}
    costs: dict[str, dict] = {}
    for _ in range(rounds):
        for name, _arch in chosen:
            costs[name] = onnx_costs(models[name])
            per_round[name].append(costs[name]["latency_us"])
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load = os.getloadavg()[0]
    return [{"name": name, "family": arch[0], "width": arch[1], "depth": arch[2], "params": n_parameters(models[name]),
             "onnx_bytes": costs[name]["onnx_bytes"], "latency_us": float(np.min(per_round[name])),
             "latency_rounds_us": [round(v, 2) for v in per_round[name]], "measured": when, "load_average": round(load, 2)}
            for name, arch in chosen]


def latency_by_architecture(rows: list[dict]) -> dict[Architecture | str, float]:
    """{(family, width, depth): latency µs} from `measure`'s rows, and {name: latency µs} too (teachers: "T1")."""
    out: dict[Architecture | str, float] = {(r["family"], int(r["width"]), int(r["depth"])): float(r["latency_us"]) for r in rows}
    return out | {r["name"]: float(r["latency_us"]) for r in rows}
