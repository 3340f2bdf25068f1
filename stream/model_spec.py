"""The model contract: what a model's ONNX `metadata_props` must say for the runtime to feed and decode it.

Keys (all strings; lists and dicts as JSON):
  `ppg_stream.contract` "1"; `fs` Hz; `window_s`; `hop_s`; `channels` e.g. ["ppg","acc_x","acc_y","acc_z"];
  `bins_bpm` bin centres; `preprocess` {"bandpass_hz": [lo, hi], "bandpass_order": n, "normalize": "zscore"};
  `name`, `version`, `training_data`, `description`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

CONTRACT_VERSION = "1"
KNOWN_CHANNELS = ("ppg", "acc_x", "acc_y", "acc_z")
NORMALIZATIONS = ("zscore", "none")


class ModelContractError(ValueError):
    """A model's metadata does not follow the contract; the message names the key."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    fs: float
    window_s: float
    hop_s: float
    channels: tuple[str, ...]
    bins_bpm: np.ndarray
    bandpass_hz: tuple[float, float]
    bandpass_order: int
    normalize: str
    training_data: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def window_samples(self) -> int:
        return int(round(self.fs * self.window_s))

    @property
    def hop_samples(self) -> int:
        return int(round(self.fs * self.hop_s))

    @property
    def uses_acc(self) -> bool:
        return len(self.channels) > 1

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def to_metadata(self) -> dict[str, str]:
        """The metadata_props a model following the contract carries (inverse of `from_metadata`)."""
        meta = {
            "ppg_stream.contract": CONTRACT_VERSION,
            "name": self.name,
            "version": self.version,
            "fs": repr(float(self.fs)),
            "window_s": repr(float(self.window_s)),
            "hop_s": repr(float(self.hop_s)),
            "channels": json.dumps(list(self.channels)),
            "bins_bpm": json.dumps([float(b) for b in self.bins_bpm]),
            "preprocess": json.dumps(
                {"bandpass_hz": list(self.bandpass_hz), "bandpass_order": self.bandpass_order, "normalize": self.normalize}
            ),
            "training_data": self.training_data,
            "description": self.description,
        }
        meta.update({k: str(v) for k, v in self.extra.items()})
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> "ModelSpec":
        """Parse and validate metadata_props; every failure names the key at fault."""
        def need(key: str) -> str:
            if key not in meta:
                raise ModelContractError(f"model metadata lacks '{key}' (see the model contract in README)")
            return meta[key]

        def number(key: str) -> float:
            text = need(key)
            try:
                value = float(text)
            except ValueError:
                raise ModelContractError(f"model metadata '{key}' is not a number: {meta[key]!r}") from None
            if not np.isfinite(value) or value <= 0:
                raise ModelContractError(f"model metadata '{key}' must be positive, got {value}")
            return value

        def parsed(key: str):
            try:
                return json.loads(need(key))
            except json.JSONDecodeError:
                raise ModelContractError(f"model metadata '{key}' is not valid JSON") from None

        if meta.get("ppg_stream.contract", CONTRACT_VERSION) != CONTRACT_VERSION:
            raise ModelContractError(f"model follows contract {meta['ppg_stream.contract']!r}; this runtime reads {CONTRACT_VERSION!r}")
        channels = tuple(parsed("channels"))
        if not channels or channels[0] != "ppg" or any(c not in KNOWN_CHANNELS for c in channels) or len(channels) not in (1, 4):
            raise ModelContractError(f"model metadata 'channels' must be [\"ppg\"] or [\"ppg\",\"acc_x\",\"acc_y\",\"acc_z\"], got {list(channels)}")
        bins = np.asarray(parsed("bins_bpm"), dtype=np.float64)
        if bins.ndim != 1 or bins.size < 2 or not np.all(np.diff(bins) > 0):
            raise ModelContractError("model metadata 'bins_bpm' must be an increasing list of at least two bin centres")
        pre = parsed("preprocess")
        try:
            lo, hi = (float(v) for v in pre["bandpass_hz"])
            order = int(pre.get("bandpass_order", 4))
            normalize = str(pre.get("normalize", "zscore"))
        except (KeyError, TypeError, ValueError):
            raise ModelContractError("model metadata 'preprocess' needs bandpass_hz [lo, hi], bandpass_order, normalize") from None
        fs = number("fs")
        if not 0 < lo < hi < fs / 2:
            raise ModelContractError(f"model band-pass {lo}-{hi} Hz must lie inside 0-{fs / 2} Hz")
        if normalize not in NORMALIZATIONS:
            raise ModelContractError(f"model metadata normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        known = {"ppg_stream.contract", "name", "version", "fs", "window_s", "hop_s", "channels", "bins_bpm", "preprocess", "training_data", "description"}
        return cls(
            name=meta.get("name", "unnamed"),
            version=meta.get("version", "0"),
            fs=fs,
            window_s=number("window_s"),
            hop_s=number("hop_s"),
            channels=channels,
            bins_bpm=bins,
            bandpass_hz=(lo, hi),
            bandpass_order=order,
            normalize=normalize,
            training_data=meta.get("training_data", ""),
            description=meta.get("description", ""),
            extra={k: v for k, v in meta.items() if k not in known},
        )
