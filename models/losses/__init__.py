"""Distillation strategies, one small module each, selected by name through the registry."""

from .registry import STRATEGIES, Strategy, StrategyInputs
from .strategies import build_strategy

__all__ = ["STRATEGIES", "Strategy", "StrategyInputs", "build_strategy"]
