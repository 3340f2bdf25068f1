"""Per-stream preprocessing: chunks in, model-ready windows out, exactly as the model's metadata says.

Each channel group (PPG, ACC) is band-passed at its own source rate and resampled onto the model's
grid (sample j at j/fs seconds); window k covers grid samples [k·hop, k·hop + T). Training builds its
windows with this same class (train/serve parity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.chunk import ACC, PPG, Chunk
from stream.ingest import N_BACKWARDS, N_GAPS, N_NAN, NEXT_J, ingest_chunk, new_group_state
from stream.model_spec import ModelSpec
from stream.ring import new_ring, ring_collect_windows
from stream.sos_filter import design_bandpass

DEFAULT_MAX_GAP_S = 0.5
DEFAULT_RING_S = 256.0
MAX_BATCH = 256


@dataclass
class _Group:
    index: int
    col0: int
    width: int
    sos: np.ndarray
    zi_unit: np.ndarray
    zi: np.ndarray
    prev_y: np.ndarray
    state: np.ndarray


@dataclass(frozen=True)
class WindowBatch:
    """Windows ready for the model: `x` (N, C, T) float32 and their indices `k`."""

    k: np.ndarray
    x: np.ndarray


@dataclass(frozen=True)
class Counters:
    nan_samples: int
    backward_samples: int
    gaps: int
    skipped_windows: int


class StreamPreprocessor:
    """Stateful and allocation-free per chunk: the Numba kernels work on preallocated arrays."""

    def __init__(
        self,
        spec: ModelSpec,
        rates: dict[str, float],
        max_gap_s: float = DEFAULT_MAX_GAP_S,
        ring_s: float = DEFAULT_RING_S,
    ) -> None:
        if PPG not in rates:
            raise ValueError("a stream needs a PPG channel")
        self.spec = spec
        self.max_gap_s = max_gap_s
        n_channels = len(spec.channels)
        self._groups: dict[str, _Group] = {}
        wanted = [PPG] + ([ACC] if spec.uses_acc and ACC in rates else [])
        lo, hi = spec.bandpass_hz
        for index, name in enumerate(wanted):
            width = 1 if name == PPG else 3
            sos, zi_unit = design_bandpass(lo, hi, spec.bandpass_order, rates[name])
            self._groups[name] = _Group(
                index=index,
                col0=0 if name == PPG else 1,
                width=width,
                sos=sos,
                zi_unit=zi_unit,
                zi=np.zeros((sos.shape[0], width, 2)),
                prev_y=np.zeros(width),
                state=new_group_state(),
            )
        self.missing_acc = spec.uses_acc and ACC not in rates
        capacity = int(ring_s * spec.fs)
        self._max_push_s = ring_s / 4
        self._ring, self._stamps = new_ring(capacity, n_channels, len(self._groups))
        self._group_mask = np.ones(len(self._groups), dtype=np.bool_)
        self._zscore = np.zeros(n_channels, dtype=np.bool_)
        if spec.normalize == "zscore":
            self._zscore[0] = True
        if spec.uses_acc and spec.extra.get("acc_normalize", spec.normalize) == "zscore":
            self._zscore[1:] = True
        self._out = np.zeros((MAX_BATCH, n_channels, spec.window_samples), dtype=np.float32)
        self._out_k = np.zeros(MAX_BATCH, dtype=np.int64)
        self._next_k = 0
        self._skipped = 0
        self._empty = WindowBatch(np.zeros(0, dtype=np.int64), np.zeros((0, n_channels, spec.window_samples), dtype=np.float32))

    def push(self, chunk: Chunk) -> None:
        """Ingest one chunk; groups the model does not use are ignored."""
        group = self._groups.get(chunk.group)
        if group is None:
            return
        x = chunk.x
        if chunk.group == PPG and x.shape[1] != 1:
            x = x.mean(axis=1, keepdims=True)
        ingest_chunk(
            np.ascontiguousarray(chunk.t, dtype=np.float64),
            np.ascontiguousarray(x, dtype=np.float64),
            group.sos, group.zi, group.zi_unit, group.prev_y, group.state,
            self.spec.fs, self.max_gap_s, self._ring, self._stamps, group.index, group.col0,
        )

    def ready_until(self) -> int:
        """Grid samples available in every group (windows ending here or earlier can be decided)."""
        return min(int(g.state[NEXT_J]) for g in self._groups.values())

    def windows(self) -> WindowBatch:
        """All complete windows not returned before (empty batch if none). Copies out of the scratch."""
        parts_k, parts_x = [], []
        until = self.ready_until()
        if self._next_k * self.spec.hop_samples + self.spec.window_samples > until:
            return self._empty  # nothing new is complete: skip the kernel call
        while True:
            n, self._next_k, skipped = ring_collect_windows(
                self._ring, self._stamps, self._group_mask, self._zscore, self._next_k, until,
                self.spec.hop_samples, self.spec.window_samples, self._out, self._out_k,
            )
            self._skipped += skipped
            if n:
                parts_k.append(self._out_k[:n].copy())
                parts_x.append(self._out[:n].copy())
            if n < MAX_BATCH:
                break
        if not parts_k:
            return self._empty
        if len(parts_k) == 1:
            return WindowBatch(parts_k[0], parts_x[0])
        return WindowBatch(np.concatenate(parts_k), np.concatenate(parts_x))

    def feed(self, chunk: Chunk) -> WindowBatch:
        """push + windows: the streaming step. A chunk longer than a quarter of the ring is fed in
        pieces, so one huge chunk cannot overwrite windows before they are collected."""
        n = chunk.t.shape[0]
        span = float(chunk.t[-1] - chunk.t[0]) if n else 0.0
        if not span <= self._max_push_s:  # also catches NaN spans
            pieces = max(2, int(np.ceil(span / self._max_push_s))) if np.isfinite(span) else max(2, n // 1024)
            edges = np.linspace(0, n, pieces + 1).astype(int)
            batches = []
            for a, b in zip(edges[:-1], edges[1:]):
                self.push(Chunk(chunk.group, chunk.t[a:b], chunk.x[a:b]))
                batches.append(self.windows())
            return WindowBatch(np.concatenate([b.k for b in batches]), np.concatenate([b.x for b in batches]))
        self.push(chunk)
        return self.windows()

    @property
    def counters(self) -> Counters:
        groups = self._groups.values()
        return Counters(
            nan_samples=int(sum(g.state[N_NAN] for g in groups)),
            backward_samples=int(sum(g.state[N_BACKWARDS] for g in groups)),
            gaps=int(sum(g.state[N_GAPS] for g in groups)),
            skipped_windows=self._skipped,
        )
