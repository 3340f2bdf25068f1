"""The model contract: what a model's ONNX `metadata_props` must say for the runtime to feed and decode it.

Keys (all strings; lists and dicts as JSON):
  `ppg_stream.contract` "1"; `fs` Hz; `window_s`; `hop_s`; `channels` e.g. ["ppg","acc_x","acc_y","acc_z"];
  `bins_bpm` bin centres; `preprocess` {"bandpass_hz": [lo, hi], "bandpass_order": n, "normalize": "zscore"};
  `name`, `version`, `training_data`, `description`;
  optional `taper` "hann" (the default: models written before the key existed used it) or "rect": the
  window the spectral front end applies before its DFT, so the exported graph and torch compute the same;
  optional `confidence_map` "platt:a,b": the published confidence's calibration (stream/core/confidence_map.py),
  applied after the tracker and the cues; absent, the confidence is published as computed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .confidence_map import ConfidenceMap

CONTRACT_VERSION = "1"
KNOWN_CHANNELS = ("ppg", "acc_x", "acc_y", "acc_z")
NORMALIZATIONS = ("zscore", "none")
TAPERS = ("hann", "rect")
DEFAULT_TAPER = "hann"  # what a model without the key was built with

# Sane ranges. Each bound keeps a model that passes from costing unbounded memory or time
# (a hop of 1e-9 s would emit the same window forever) and keeps every admitted source rate able to
# realise the band-pass: sources are band-passed at their own rate with the upper edge capped at
# 0.45·rate, so the lower edge must stay below 0.45 × the lowest source rate (ppg_stream.replay.recording).
FS_RANGE_HZ = (8.0, 1000.0)  # the model's input rate
WINDOW_RANGE_S = (1.0, 60.0)  # the preprocessor's ring holds 256 s: windows stay well inside it
MIN_HOP_S = 0.1  # at most 10 windows per second per stream
BANDPASS_LO_RANGE_HZ = (0.01, 3.0)
BANDPASS_ORDER_RANGE = (1, 10)
BINS_RANGE_BPM = (1.0, 600.0)
MAX_BINS = 4096
MAX_LABEL_CHARS = 100  # name and version: they go into every message


class ModelContractError(ValueError):
    """A model's metadata does not follow the contract; the message names the key."""


def _whole_samples(seconds: float, fs: float) -> bool:
    n = seconds * fs
    return n >= 1 and abs(n - round(n)) <= 1e-6 * max(1.0, n)


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
    def taper(self) -> str:
        """The spectral front end's window; a model without the key predates it and used Hann."""
        return str(self.extra.get("taper", DEFAULT_TAPER))

    @property
    def confidence_map(self) -> ConfidenceMap | None:
        """The published confidence's calibration; None (the confidence as computed) for a model without the key."""
        text = self.extra.get("confidence_map")
        if text is None:
            return None
        try:
            return ConfidenceMap.parse(str(text))
        except ValueError as e:
            raise ModelContractError(f"model metadata 'confidence_map' {e}") from None

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

    def __post_init__(self) -> None:
        """Every spec, parsed or built in code, is within the sane ranges (see module constants)."""
        lo_fs, hi_fs = FS_RANGE_HZ
        if not lo_fs <= self.fs <= hi_fs:
            raise ModelContractError(f"model metadata 'fs' must be {lo_fs:g}-{hi_fs:g} Hz, got {self.fs:g}")
        lo_w, hi_w = WINDOW_RANGE_S
        if not lo_w <= self.window_s <= hi_w:
            raise ModelContractError(f"model metadata 'window_s' must be {lo_w:g}-{hi_w:g} s, got {self.window_s:g}")
        if not MIN_HOP_S <= self.hop_s <= self.window_s:
            raise ModelContractError(f"model metadata 'hop_s' must be {MIN_HOP_S:g} s up to window_s ({self.window_s:g} s), got {self.hop_s:g}")
        for key, seconds in (("window_s", self.window_s), ("hop_s", self.hop_s)):
            if not _whole_samples(seconds, self.fs):
                raise ModelContractError(f"model metadata '{key}' ({seconds:g} s) must be a whole number of samples at fs {self.fs:g} Hz")
        if self.channels not in (("ppg",), KNOWN_CHANNELS):
            raise ModelContractError(f"model metadata 'channels' must be [\"ppg\"] or [\"ppg\",\"acc_x\",\"acc_y\",\"acc_z\"], got {list(self.channels)}")
        bins = self.bins_bpm
        if (bins.ndim != 1 or not 2 <= bins.size <= MAX_BINS or not np.all(np.isfinite(bins)) or not np.all(np.diff(bins) > 0)
                or not BINS_RANGE_BPM[0] <= bins[0] <= bins[-1] <= BINS_RANGE_BPM[1]):
            raise ModelContractError(
                f"model metadata 'bins_bpm' must be an increasing list of 2-{MAX_BINS} bin centres within {BINS_RANGE_BPM[0]:g}-{BINS_RANGE_BPM[1]:g} bpm"
            )
        lo, hi = self.bandpass_hz
        if not (BANDPASS_LO_RANGE_HZ[0] <= lo <= BANDPASS_LO_RANGE_HZ[1] and lo < hi < self.fs / 2):
            raise ModelContractError(
                f"model band-pass {lo:g}-{hi:g} Hz must start at {BANDPASS_LO_RANGE_HZ[0]:g}-{BANDPASS_LO_RANGE_HZ[1]:g} Hz "
                f"and end above that, below fs/2 = {self.fs / 2:g} Hz"
            )
        if not BANDPASS_ORDER_RANGE[0] <= self.bandpass_order <= BANDPASS_ORDER_RANGE[1]:
            raise ModelContractError(f"model metadata 'preprocess' bandpass_order must be {BANDPASS_ORDER_RANGE[0]}-{BANDPASS_ORDER_RANGE[1]}, got {self.bandpass_order}")
        if self.normalize not in NORMALIZATIONS:
            raise ModelContractError(f"model metadata normalize must be one of {NORMALIZATIONS}, got {self.normalize!r:.40}")
        acc_normalize = self.extra.get("acc_normalize", self.normalize)
        if acc_normalize not in NORMALIZATIONS:
            raise ModelContractError(f"model metadata 'acc_normalize' must be one of {NORMALIZATIONS}, got {acc_normalize!r:.40}")
        if self.taper not in TAPERS:
            raise ModelContractError(f"model metadata 'taper' must be one of {TAPERS}, got {self.taper!r:.40}")
        self.confidence_map  # refused here, by key, not at the first window
        for key, text in (("name", self.name), ("version", self.version)):
            if not text or len(text) > MAX_LABEL_CHARS or not text.isprintable():
                raise ModelContractError(f"model metadata '{key}' must be 1-{MAX_LABEL_CHARS} printable characters")

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> "ModelSpec":
        """Parse and validate metadata_props; every failure names the key at fault."""
        def need(key: str) -> str:
            if key not in meta:
                raise ModelContractError(f"model metadata lacks '{key}' (see docs/model-contract.md)")
            return meta[key]

        def number(key: str) -> float:
            text = need(key)
            try:
                value = float(text)
            except (ValueError, OverflowError):
                raise ModelContractError(f"model metadata '{key}' is not a number: {text[:40]!r}") from None
            if not np.isfinite(value) or value <= 0:
                raise ModelContractError(f"model metadata '{key}' must be a positive finite number, got {value}")
            return value

        def parsed(key: str):
            text = need(key)  # outside the try: a missing key is not "invalid JSON"
            try:
                return json.loads(text)
            except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; so is a 5000-digit integer
                raise ModelContractError(f"model metadata '{key}' is not valid JSON") from None

        def real(value, key: str) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ModelContractError(f"model metadata '{key}' must hold finite numbers, got {type(value).__name__}")
            return float(value)

        if not any(key in meta for key in ("ppg_stream.contract", "fs", "channels", "bins_bpm", "preprocess")):
            raise ModelContractError("model carries none of the contract's metadata (fs, channels, bins_bpm, preprocess): "
                                     "it was not made for ppg-stream (see docs/model-contract.md)")
        if meta.get("ppg_stream.contract", CONTRACT_VERSION) != CONTRACT_VERSION:
            raise ModelContractError(f"model follows contract {meta['ppg_stream.contract'][:20]!r}; this runtime reads {CONTRACT_VERSION!r}")
        channels = parsed("channels")
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise ModelContractError(f"model metadata 'channels' must be a JSON list of channel names, got {type(channels).__name__}")
        bins = parsed("bins_bpm")
        if not isinstance(bins, list) or len(bins) > MAX_BINS:
            raise ModelContractError(f"model metadata 'bins_bpm' must be a JSON list of at most {MAX_BINS} numbers")
        bins = np.array([real(b, "bins_bpm") for b in bins], dtype=np.float64)
        pre = parsed("preprocess")
        if not isinstance(pre, dict):
            raise ModelContractError("model metadata 'preprocess' must be a JSON object with bandpass_hz [lo, hi], bandpass_order, normalize")
        band = pre.get("bandpass_hz")
        if not isinstance(band, list) or len(band) != 2:
            raise ModelContractError("model metadata 'preprocess' needs bandpass_hz [lo, hi]")
        lo, hi = (real(v, "preprocess") for v in band)
        order = pre.get("bandpass_order", 4)
        if isinstance(order, bool) or not isinstance(order, int):
            raise ModelContractError(f"model metadata 'preprocess' bandpass_order must be an integer, got {type(order).__name__}")
        normalize = pre.get("normalize", "zscore")
        if not isinstance(normalize, str):
            raise ModelContractError("model metadata 'preprocess' normalize must be a string")
        known = {"ppg_stream.contract", "name", "version", "fs", "window_s", "hop_s", "channels", "bins_bpm", "preprocess", "training_data", "description"}
        return cls(
            name=meta.get("name", "unnamed"),
            version=meta.get("version", "0"),
            fs=number("fs"),
            window_s=number("window_s"),
            hop_s=number("hop_s"),
            channels=tuple(channels),
            bins_bpm=bins,
            bandpass_hz=(lo, hi),
            bandpass_order=order,
            normalize=normalize,
            training_data=meta.get("training_data", ""),
            description=meta.get("description", ""),
            extra={k: v for k, v in meta.items() if k not in known},
        )
