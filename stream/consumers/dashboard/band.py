"""The confidence band drawn around each device's heart rate.

`confidence` is the model's probability mass within ±5 bpm of its estimate. Read as a normal
distribution around the estimate, P(|HR - est| ≤ 5) = c gives σ = 5 / z with z the (1 + c) / 2
quantile of the standard normal: the band is est ± σ (about 68 % of the mass), so a confident window
draws a thin band and an unsure one a wide band, on the same scale as the heart rate itself.
"""

from __future__ import annotations

from statistics import NormalDist

CONFIDENCE_RADIUS_BPM = 5.0  # the ±5 bpm of the HR message's `confidence` (stream/core/decode.py)
MIN_HALF_WIDTH_BPM = 0.5
MAX_HALF_WIDTH_BPM = 30.0
_STANDARD_NORMAL = NormalDist()


def band_half_width(confidence: float | None) -> float | None:
    """±bpm of the band for a message's confidence; None when the message has none (a device's own HR)."""
    if confidence is None:
        return None
    c = min(max(confidence, 0.0), 0.9999)
    z = _STANDARD_NORMAL.inv_cdf((1.0 + c) / 2.0)
    if z <= CONFIDENCE_RADIUS_BPM / MAX_HALF_WIDTH_BPM:
        return MAX_HALF_WIDTH_BPM
    return min(max(CONFIDENCE_RADIUS_BPM / z, MIN_HALF_WIDTH_BPM), MAX_HALF_WIDTH_BPM)
