"""The fixed front end every learned model here shares: spectra at the 1-bpm bin frequencies.

A tapered DFT (Hann, or rectangular for a narrower peak: the spec's `taper`) evaluated at each bin centre (a MatMul with constant columns, so it lives inside
the ONNX graph and the model contract stays "time-domain window in, logits out"). Three feature rows
line up with the bins: the PPG power relative to its peak, and the accelerometer power relative to
max(its peak, a noise floor) — the same motion measure as the spectral estimator — all log-scaled.
Convolutions over the bin axis then see HR evidence and cadence evidence side by side.
"""

from __future__ import annotations

import torch
from torch import nn

from ..stream.core.spectral_model import acc_floor, dft_matrix
from ..stream.core.model_spec import ModelSpec

N_FEATURES = 3


class SpectralFront(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        n_t = spec.window_samples
        self.n_bins = len(spec.bins_bpm)
        self.taper = spec.taper
        self.register_buffer("dft", torch.from_numpy(dft_matrix(n_t, spec.fs, spec.bins_bpm, spec.taper)))
        self.acc_floor = acc_floor(n_t, spec.taper)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 4, T) → features (N, 3, K)."""
        spec = torch.matmul(x, self.dft)  # (N, 4, 2K)
        power = spec[..., : self.n_bins] ** 2 + spec[..., self.n_bins :] ** 2
        ppg = power[:, 0]
        acc = power[:, 1:].sum(dim=1)
        ppg_rel = ppg / (ppg.amax(dim=1, keepdim=True) + 1e-9)
        acc_rel = acc / acc.amax(dim=1, keepdim=True).clamp(min=self.acc_floor)
        return torch.stack(
            [torch.log(ppg_rel + 1e-4), torch.log(acc_rel + 1e-4), torch.log(ppg_rel / (1.0 + 32.0 * acc_rel) + 1e-4)], dim=1
        )
