"""Who wins at each student size, and only when the repeats say so.

At one size, every strategy (distilled ones from the reference teacher) is compared with every
other on their shared repeats of the main split (seeds of the 4-fold CV; leave-one-subject-out is a
design of its own, judged over subjects in `ppg_stream.models.subjects`) (`ppg_stream.models.repeats`). The strategy with the lowest mean error on the
main split is the winner only if it is below each of the others beyond the noise; the strategies it
cannot be told apart from are listed as tied with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .repeats import Difference, paired_difference
from .results import Results, Size


@dataclass(frozen=True)
class Standing:
    strategy: str
    mean: float  # on the main split, over its seeds
    sd: float | None  # over seeds on the main split
    repeats: int  # runs behind `mean` (seeds on the main split)
    vs_scratch: Difference | None  # this strategy − scratch, over shared repeats of the main split


@dataclass(frozen=True)
class SizeResult:
    size: Size
    standings: dict[str, Standing]
    best: str
    tied_with_best: list[str] = field(default_factory=list)  # not separable from the best (tie or no shared repeats)

    @property
    def winner(self) -> str | None:
        return self.best if not self.tied_with_best else None


def size_result(results: Results, size: Size, metric: str = "mae") -> SizeResult | None:
    standings = {}
    for strategy in results.strategies():
        main = [r[metric] for r in results.runs(size, strategy, split=results.split) if r.get(metric) is not None]
        if not main:
            continue
        # one design at a time: the main split's seeds (the leave-one-subject-out split is its own design, `subjects.py`)
        mine = results.runs(size, strategy, split=results.split)
        vs_scratch = None if strategy == "scratch" else paired_difference(mine, results.runs(size, "scratch", split=results.split), metric)
        standings[strategy] = Standing(strategy, float(np.mean(main)), float(np.std(main, ddof=1)) if len(main) > 1 else None,
                                       len(main), vs_scratch)
    if not standings:
        return None
    best = min(standings, key=lambda s: standings[s].mean)
    tied = []
    for other in standings:
        if other == best:
            continue
        d = paired_difference(results.runs(size, best, split=results.split), results.runs(size, other, split=results.split), metric)
        if d is None or d.outcome != "lower":
            tied.append(other)
    return SizeResult(size, standings, best, tied)


def size_results(results: Results, metric: str = "mae") -> list[SizeResult]:
    out = []
    for family in results.families:
        for size in results.sizes(family):
            r = size_result(results, size, metric)
            if r is not None:
                out.append(r)
    return out


def strategy_vs_rest(result: SizeResult, strategy: str, results: Results, candidates: list[str], metric: str = "mae") -> str:
    """'win' if `strategy` is below every other candidate beyond the noise, 'loss' if some candidate is
    below it beyond the noise, else 'tie' (also when it did not run at this size)."""
    if strategy not in result.standings:
        return "tie"
    outcomes = []
    for other in candidates:
        if other == strategy or other not in result.standings:
            continue
        d = paired_difference(results.runs(result.size, strategy, split=results.split), results.runs(result.size, other, split=results.split), metric)
        outcomes.append("tie" if d is None else d.outcome)
    if "higher" in outcomes:
        return "loss"
    if outcomes and all(o == "lower" for o in outcomes):
        return "win"
    return "tie"
