"""A monotone map from the published confidence to a calibrated one, carried by the model (issue 22, item 4).

The confidence the runtime publishes (the tracker's posterior mass within ±5 bpm, tempered by the cues) is
not calibrated: windows published at 0.85 may be right 92 % of the time. A temperature in the model's head
would fix that, but the tracker weighs its evidence by the same probabilities, so the bpm moves too. This
map acts only on the final number: c' = sigmoid(a · logit(c) + b) (Platt scaling on the confidence's logit),
a > 0 so the order of windows by confidence is kept. The model's metadata key `confidence_map` carries it as
"platt:a,b"; a model without the key publishes exactly what it did before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PREFIX = "platt:"
EDGE = 1e-6  # confidence clipped to [EDGE, 1 - EDGE] before its logit: 0 and 1 have none
SLOPE_RANGE = (1e-3, 100.0)  # a: positive (monotone), and bounded so one file cannot turn every window into 0 or 1
OFFSET_LIMIT = 100.0  # |b|
MAX_CHARS = 200


@dataclass(frozen=True)
class ConfidenceMap:
    a: float = 1.0  # slope on the logit: < 1 softens an overconfident model, > 1 sharpens an underconfident one
    b: float = 0.0  # offset on the logit: shifts every window's confidence up (b > 0) or down

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and SLOPE_RANGE[0] <= self.a <= SLOPE_RANGE[1]):
            raise ValueError(f"slope a must be {SLOPE_RANGE[0]:g}-{SLOPE_RANGE[1]:g} (positive: the map keeps the order), got {self.a:g}")
        if not (math.isfinite(self.b) and abs(self.b) <= OFFSET_LIMIT):
            raise ValueError(f"offset b must be within ±{OFFSET_LIMIT:g}, got {self.b:g}")

    def __call__(self, confidence: np.ndarray) -> np.ndarray:
        c = np.clip(np.asarray(confidence, dtype=np.float64), EDGE, 1.0 - EDGE)
        z = self.a * (np.log(c) - np.log1p(-c)) + self.b
        return 1.0 / (1.0 + np.exp(-z))

    def to_metadata(self) -> str:
        """The metadata value (inverse of `parse`): repr keeps every digit, so the file serves the fitted map."""
        return f"{PREFIX}{float(self.a)!r},{float(self.b)!r}"

    @classmethod
    def parse(cls, text: str) -> "ConfidenceMap":
        """"platt:a,b" → the map; ValueError with what is wrong (the caller names the key)."""
        if len(text) > MAX_CHARS or not text.startswith(PREFIX):
            raise ValueError(f"must be \"{PREFIX}a,b\" (Platt scaling of the confidence's logit), got {text[:40]!r}")
        parts = text[len(PREFIX):].split(",")
        if len(parts) != 2:
            raise ValueError(f"must be \"{PREFIX}a,b\": two numbers, got {len(parts)}")
        try:
            a, b = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"must be \"{PREFIX}a,b\" with two numbers, got {text[:40]!r}") from None
        return cls(a, b)
