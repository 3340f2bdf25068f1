"""`feature`: FitNets-style hint loss — the student's feature map, through a learned projection,
regresses the teacher's — plus cross-entropy.

Both ResNet families are fully convolutional over bins, so a 1×1 convolution maps student channels
to teacher channels bin by bin. An MLP student has no bin axis: its hidden vector is projected
linearly onto the teacher's channel-averaged feature map. Features are standardised per window so
the hint weight λ = 1 means the same for every teacher. The projection trains with the student and
is dropped at export.
"""

import torch
from torch import nn

from .registry import Strategy, StrategyInputs, register, soft_cross_entropy


def _standardise(h: torch.Tensor) -> torch.Tensor:
    flat = h.flatten(1)
    return ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)).view_as(h)


@register
class Feature(Strategy):
    name = "feature"
    needs_features = True
    defaults = {"hint_weight": 1.0}

    def __init__(self, **params: float) -> None:
        super().__init__(**params)
        self.projection: nn.Module | None = None

    def build_projection(self, student_features: torch.Tensor, teacher_features: torch.Tensor) -> None:
        if student_features.dim() == 3:
            self.projection = nn.Conv1d(student_features.shape[1], teacher_features.shape[1], 1)
        else:
            self.projection = nn.Linear(student_features.shape[1], teacher_features.shape[-1])

    def forward(self, inputs: StrategyInputs):
        s, t = inputs.student_features, inputs.teacher_features
        if self.projection is None:
            self.build_projection(s, t)
        if s.dim() == 2:
            t = t.mean(dim=1)
        hint = torch.mean((_standardise(self.projection(s)) - _standardise(t)) ** 2)
        ce = soft_cross_entropy(inputs.student_logits, inputs.targets)
        return {"ce": ce, "hint": hint, "loss": ce + self.params["hint_weight"] * hint}
