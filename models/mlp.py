"""MLP students over the same spectral features: the paper's second student family.

Unlike the ResNets they see all bins at once through dense layers, with no built-in notion that
neighbouring bins are related; the study checks whether they gain as much from distillation.
"""

from __future__ import annotations

import torch
from torch import nn

from .spectral_front import N_FEATURES, SpectralFront
from ..stream.core.model_spec import ModelSpec


class SpectralMLP(nn.Module):
    family = "mlp"

    def __init__(self, spec: ModelSpec, width: int, depth: int) -> None:
        super().__init__()
        self.front = SpectralFront(spec)
        n_bins = len(spec.bins_bpm)
        layers: list[nn.Module] = []
        size = N_FEATURES * n_bins
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(size, n_bins)
        self.width, self.depth = width, depth

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (N, width)."""
        return self.body(self.front(x).flatten(1))

    def logits_from_features(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.features(x))
