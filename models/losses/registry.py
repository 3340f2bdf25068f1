"""The interface every strategy implements, and the name → class registry the strategies add themselves to
(`strategies.build_strategy` looks a name up once every strategy module is imported).

A strategy gets the student's and (frozen) teacher's outputs for a batch and returns its loss terms
by name, with the total under "loss", so training logs show what each term contributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

STRATEGIES: dict[str, type["Strategy"]] = {}


@dataclass
class StrategyInputs:
    student_logits: torch.Tensor  # (N, K)
    targets: torch.Tensor  # (N, K) ground-truth distribution (Gaussian over bins)
    target_bin: torch.Tensor  # (N,) ground-truth bin index
    teacher_logits: torch.Tensor | None = None
    student_features: torch.Tensor | None = None
    teacher_features: torch.Tensor | None = None
    epoch: int = 0


class Strategy(nn.Module):
    """Base: hyperparameters are dataclass-like attributes listed in `params`, recorded with results."""

    name = "base"
    needs_teacher = True
    needs_features = False
    defaults: dict[str, float] = {}

    def __init__(self, **params: float) -> None:
        super().__init__()
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(f"strategy {self.name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(self.defaults)}")
        self.params = {**self.defaults, **params}

    def forward(self, inputs: StrategyInputs) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a target distribution, averaged over the batch."""
    return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(p/T) ‖ softmax(q/T)) · T², averaged over the batch (Hinton's scaling)."""
    p_log = torch.log_softmax(p_logits / temperature, dim=1)
    q_log = torch.log_softmax(q_logits / temperature, dim=1)
    return (p_log.exp() * (p_log - q_log)).sum(dim=1).mean() * temperature**2


__all__ = ["STRATEGIES", "Strategy", "StrategyInputs", "register", "soft_cross_entropy", "kl_divergence"]
