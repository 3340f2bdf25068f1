"""Every strategy module imported (each registers itself), and a strategy built by name: what the CLI and
sweeps call. The registry below knows no strategy, so no import runs back up to it."""

from __future__ import annotations

from . import dkd, feature, hard, scratch, soft  # noqa: F401  (each registers itself)
from .registry import STRATEGIES, Strategy


def build_strategy(name: str, **params: float) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name](**params)
