"""1D-ResNets over the bin axis: fully convolutional, so logit k sees the spectrum around bin k.

One family for the teacher (wide and deep, ≥ 1M parameters) and the ResNet students (down to ~1k):
`width` channels, `depth` residual blocks of two dilated 3-tap convolutions. Dilations cycle 1, 2,
4, 8 so a deep model sees ±60 bpm around a bin — enough to relate HR to the cadence and harmonics.
"""

from __future__ import annotations

import torch
from torch import nn

from .spectral_front import N_FEATURES, SpectralFront
from ..stream.core.model_spec import ModelSpec


class _Block(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm1d(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(h)))
        return torch.relu(h + self.bn2(self.conv2(y)))


class BinResNet(nn.Module):
    family = "resnet"

    def __init__(self, spec: ModelSpec, width: int, depth: int) -> None:
        super().__init__()
        self.front = SpectralFront(spec)
        self.stem = nn.Sequential(nn.Conv1d(N_FEATURES, width, 5, padding=2, bias=False), nn.BatchNorm1d(width), nn.ReLU())
        self.blocks = nn.Sequential(*[_Block(width, 2 ** (i % 4)) for i in range(depth)])
        self.head = nn.Conv1d(width, 1, 1)
        self.width, self.depth = width, depth

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output (N, width, K): the hint layer for feature distillation."""
        return self.blocks(self.stem(self.front(x)))

    def logits_from_features(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.features(x))
