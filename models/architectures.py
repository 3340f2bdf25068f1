"""Build a model by family and size, and count what it costs."""

from __future__ import annotations

import torch
from torch import nn

from .mlp import SpectralMLP
from .resnet1d import BinResNet
from ..stream.core.model_spec import ModelSpec

FAMILIES = {"resnet": BinResNet, "mlp": SpectralMLP}

# width, depth per named size: students span ~1k-650k parameters, teachers ≥ 1M. Sizes added later are
# appended, so `ppg-distill sweep --sizes` indices keep their meaning (the report sorts by parameters).
STUDENT_SIZES = {
    "resnet": [(8, 2), (16, 2), (32, 3), (64, 4), (128, 4), (24, 2), (48, 3)],  # ~1k, 3.5k, 19k, 100k, 400k; 7.5k, 43k
    "mlp": [(2, 1), (8, 1), (32, 1), (64, 2), (256, 2), (128, 2), (512, 2)],  # ~1.6k, 6k, 23k, 51k, 250k; 109k, 634k
}
TEACHER_SIZES = {"T1": (144, 8), "T2": (176, 10), "T3": (224, 10)}  # ~1.0M, 1.9M, 3.0M


def build(family: str, spec: ModelSpec, width: int, depth: int, seed: int | None = None) -> nn.Module:
    """A fresh model; with `seed`, its initial weights are reproducible."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose from {', '.join(FAMILIES)}")
    if seed is not None:
        torch.manual_seed(seed)
    return FAMILIES[family](spec, width, depth)


def n_parameters(model: nn.Module) -> int:
    """Trainable parameters (the fixed DFT of the front end is a buffer, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
