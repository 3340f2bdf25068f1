"""Per-stream preprocessing: chunks in, model-ready windows out, exactly as the model's metadata says.

Each channel group (PPG, ACC) is band-passed at its own source rate and resampled onto the model's
grid (sample j at j/fs seconds); window k covers grid samples [k·hop, k·hop + T). Training builds its
windows with this same class (train/serve parity).

One instance is one device's state in the runtime, so it is kept small: a ring of `ring_s` seconds at
the model rate, filter states, counters. The ring grows (up to `MAX_RING_S`) only for a device whose
chunks need it: one group's chunk reaching further ahead of the next window to cut than the ring
holds (a replay at --speed max feeds 32 s of PPG before the matching 32 s of accelerometer). Windows are copied into a buffer the caller owns
(`collect_into`), shared by every device, so no device carries a batch-sized scratch of its own.
A group's filter is designed at its first chunk's rate when the rate was not known up front (a device
on the raw MQTT topic announces its rate with every chunk), and again if the rate changes by more
than `RATE_TOLERANCE`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .chunk import ACC, PPG, Chunk
from .ingest import N_BACKWARDS, N_GAPS, N_NAN, NEXT_J, PREV_T, ingest_chunks, new_group_state
from .model_spec import ModelSpec
from .raw_chunk import RawHeader
from .ring import new_ring, ring_collect_windows
from .sos_filter import design_bandpass

DEFAULT_MAX_GAP_S = 0.5
DEFAULT_RING_S = 32.0  # 4 windows of history; chunks spanning more than a quarter of it are fed in pieces
MAX_RING_S = 300.0  # a device that sends long chunks (or one group far ahead of the other) grows its ring up to this
SCRATCH_WINDOWS = 64  # `windows()` (training, tests) collects through a scratch of this many windows
RATE_TOLERANCE = 0.1
_NO_TIMES = np.zeros(0)  # a raw run: times computed in the kernel


@dataclass
class _Group:
    index: int
    col0: int
    width: int
    state: np.ndarray
    rate: float = 0.0
    sos: np.ndarray | None = None
    zi_unit: np.ndarray | None = None
    zi: np.ndarray | None = None
    prev_y: np.ndarray | None = None


def _first_time(chunk: Chunk | RawHeader) -> float:
    """The time of a chunk's first sample with a finite time (NaN if none)."""
    if type(chunk) is RawHeader:
        return chunk.t0
    finite = chunk.t[np.isfinite(chunk.t)]
    return float(finite[0]) if len(finite) else math.nan


@dataclass(frozen=True)
class WindowBatch:
    """Windows ready for the model: `x` (N, C, T) float32 and their indices `k`."""

    k: np.ndarray
    x: np.ndarray


@dataclass(frozen=True)
class Counters:
    nan_samples: int  # NaN or infinite values (or times), and values the filter could not carry
    backward_samples: int
    gaps: int
    skipped_windows: int  # windows touching a gap or an overrun
    invalid_windows: int  # windows whose values are not finite, or whose PPG is flat (no signal)
    rate_changes: int


class StreamPreprocessor:
    """Stateful and allocation-free per chunk: the Numba kernels work on preallocated arrays.

    `rates` designs the filters now; `groups` (with rates unknown) waits for each group's first chunk
    and its rate (`push(chunk, rate)`). No window is cut until every expected group has data.
    """

    def __init__(
        self,
        spec: ModelSpec,
        rates: dict[str, float] | None = None,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
        ring_s: float = DEFAULT_RING_S,
        groups: Iterable[str] | None = None,
    ) -> None:
        rates = dict(rates or {})
        expected = set(groups) if groups is not None else set(rates)
        if PPG not in expected:
            raise ValueError("a stream needs a PPG channel")
        self.spec = spec
        self.max_gap_s = max_gap_s
        n_channels = len(spec.channels)
        wanted = [PPG] + ([ACC] if spec.uses_acc and ACC in expected else [])
        self._groups: dict[str, _Group] = {}
        for index, name in enumerate(wanted):
            group = _Group(index=index, col0=0 if name == PPG else 1, width=1 if name == PPG else 3, state=new_group_state())
            self._groups[name] = group
            if name in rates:
                self._design(group, rates[name])
        self.missing_acc = spec.uses_acc and ACC not in expected
        capacity = int(ring_s * spec.fs)
        if capacity < spec.window_samples + spec.hop_samples:
            raise ValueError(f"ring of {ring_s} s cannot hold a {spec.window_s} s window")
        self._ring, self._stamps = new_ring(capacity, n_channels, len(self._groups))
        self._hop, self._length = spec.hop_samples, spec.window_samples
        self._max_push_s = capacity / spec.fs / 4  # a quarter of the ring: the most one kernel call feeds before windows are collected
        self._queued = 0  # push_queue: chunks in the batch, each group's grid index before it, and its kernel calls
        self._initial: list[int] = []
        self._calls: list[tuple[int, np.ndarray]] = []
        self._max_capacity = max(capacity, int(MAX_RING_S * spec.fs))
        self._group_mask = np.ones(len(self._groups), dtype=np.bool_)
        self._zscore = np.zeros(n_channels, dtype=np.bool_)
        if spec.normalize == "zscore":
            self._zscore[0] = True
        if spec.uses_acc and spec.extra.get("acc_normalize", spec.normalize) == "zscore":
            self._zscore[1:] = True
        self._next_k = 0
        self._started = False
        self._skipped = 0
        self._invalid = 0
        self._rate_changes = 0
        self._scratch: tuple[np.ndarray, np.ndarray] | None = None

    def _design(self, group: _Group, rate: float) -> None:
        lo, hi = self.spec.bandpass_hz
        group.sos, group.zi_unit = design_bandpass(lo, hi, self.spec.bandpass_order, rate)
        group.zi = np.zeros((group.sos.shape[0], group.width, 2))
        group.prev_y = np.zeros(group.width)
        group.rate = rate

    def _set_rate(self, group: _Group, name: str, rate: float | None) -> None:
        if rate is not None and (group.sos is None or abs(rate / group.rate - 1.0) > RATE_TOLERANCE):
            if group.sos is not None:
                self._rate_changes += 1
                group.state[PREV_T] = np.nan  # the next sample restarts the new filter from its steady state
            self._design(group, rate)
        if group.sos is None:
            raise ValueError(f"the {name} rate is unknown: pass it with the first chunk")

    def push(self, chunk: Chunk, rate: float | None = None) -> None:
        """Ingest one chunk; groups the model does not use are ignored. `rate`: the chunk's sampling
        rate, needed when the group's rate was not given up front."""
        group = self._groups.get(chunk.group)
        if group is not None:
            self._push_arrays(group, chunk, rate, 0)

    def _push_arrays(self, group: _Group, chunk: Chunk, rate: float | None, slot: int) -> np.ndarray:
        """One chunk with its own time array (any source): the batch kernel with a batch of one."""
        self._set_rate(group, chunk.group, rate)
        t = np.ascontiguousarray(chunk.t, dtype=np.float64)
        if len(t):
            first, last = float(t[0]), float(t[-1])
            if not (math.isfinite(first) and math.isfinite(last)):  # rare: bad timestamps at an end
                finite = t[np.isfinite(t)]
                first, last = (float(finite[0]), last if math.isfinite(last) else float(finite.max())) if len(finite) else (math.nan, math.nan)
            if math.isfinite(first):
                if not self._started:
                    self._start_at(first)
                self._make_room(last)
        x = chunk.x
        if x.ndim != 2 or (x.shape[1] != group.width and chunk.group != PPG):
            raise ValueError(f"a {chunk.group} chunk must be (n, {group.width}), got shape {x.shape}")
        if chunk.group == PPG and x.shape[1] != 1:
            x = x.mean(axis=1, keepdims=True, dtype=np.float64)
        # float32 samples (raw chunks, views of the payload) go in as they are: the kernel widens each
        # value to float64 exactly as a copy would, without the copy
        flat = (x if x.dtype == np.float32 and x.flags.c_contiguous else np.ascontiguousarray(x, dtype=np.float64)).reshape(-1)
        meta = np.array([[0.0, len(t), 0.0, 1.0, slot, 0.0]])
        self._kernel(group, t, flat, meta)
        return meta

    def _kernel(self, group: _Group, t: np.ndarray, flat: np.ndarray, meta: np.ndarray) -> None:
        ingest_chunks(t, flat, meta, group.sos, group.zi, group.zi_unit, group.prev_y, group.state,
                      self.spec.fs, self.max_gap_s, self._ring, self._stamps, group.index, group.col0)

    def push_queue(self, chunks: Sequence[Chunk | RawHeader], rates: Sequence[float | None]) -> Iterator[None]:
        """Ingest a device's queued chunks (in arrival order, any mix of groups) with one kernel call per
        run of raw chunks of one group at one rate (their samples read from the payloads joined once,
        their times computed in the kernel), and one per piece of any other chunk. Yields after each
        call: the caller collects windows then, and `completed_by` says which chunk completed each.
        A run spans at most a quarter of the ring, as a piece does, and the groups' runs are cut in
        queue order, so neither group gets more than a run ahead of the other and the ring does not
        grow where chunk-by-chunk pushing would not. Windows, counters and ring contents are exactly
        those of pushing the chunks one by one (groups are independent until a window is cut)."""
        self._queued = len(chunks)
        self._initial = [int(g.state[NEXT_J]) for g in self._groups.values()]
        self._calls = calls = []  # (group index, meta) per kernel call: which chunk reached where
        if not self._started:  # the stream starts where its first chunk in arrival order does, whichever group
            for chunk in chunks:
                first = _first_time(chunk) if chunk.group in self._groups else math.nan
                if math.isfinite(first):
                    self._start_at(first)
                    break
        pending: dict[str, tuple[list[RawHeader], list[int]]] = {name: ([], []) for name in self._groups}
        for i, chunk in enumerate(chunks):
            group = self._groups.get(chunk.group)
            if group is None:
                continue
            run, slots = pending[chunk.group]
            if type(chunk) is RawHeader and chunk.channels == group.width and (chunk.n - 1) / chunk.rate_hz <= self._max_push_s:
                if run and (chunk.rate_hz != run[0].rate_hz or chunk.t0 + (chunk.n - 1) / chunk.rate_hz - run[0].t0 > self._max_push_s):
                    calls.append((group.index, self._push_raw_run(group, run, slots)))
                    run.clear()
                    slots.clear()
                    yield
                run.append(chunk)
                slots.append(i)
                continue
            if run:  # a chunk with its own arrays (or a long or multi-channel raw one): what the group had pending goes first
                calls.append((group.index, self._push_raw_run(group, run, slots)))
                run.clear()
                slots.clear()
                yield
            whole = chunk.to_chunk() if type(chunk) is RawHeader else chunk
            for piece in self.pieces(whole):
                calls.append((group.index, self._push_arrays(group, piece, rates[i], i)))
                yield
        for name, (run, slots) in pending.items():
            if run:
                calls.append((self._groups[name].index, self._push_raw_run(self._groups[name], run, slots)))
                yield
        self._calls = []

    def _push_raw_run(self, group: _Group, run: list[RawHeader], slots: list[int]) -> np.ndarray:
        """Raw chunks of one group at one rate: one join of their payloads, one kernel call."""
        first, last = run[0], run[-1]
        self._set_rate(group, first.group, first.rate_hz)
        if not self._started:
            self._start_at(first.t0)
        self._make_room(last.t0 + (last.n - 1) / last.rate_hz)  # the time of the run's last sample
        if len(run) == 1:
            flat = np.frombuffer(first.payload, dtype="<f4", offset=first.header_size)
            meta = np.array([[0.0, first.n, first.t0, first.rate_hz, slots[0], 0.0]])
        else:
            rows = []
            offset = 0
            for h, slot in zip(run, slots):
                rows.append(((offset + h.header_size) >> 2, h.n, h.t0, h.rate_hz, slot, 0.0))
                offset += len(h.payload)  # a multiple of 4: header (32 or 40) + 4 * n * channels
            flat = np.frombuffer(b"".join([h.payload for h in run]), dtype="<f4")
            meta = np.array(rows, dtype=np.float64)
        self._kernel(group, _NO_TIMES, flat, meta)
        return meta

    def completed_by(self, k: np.ndarray) -> list[int]:
        """For windows `k` collected during `push_queue`: the index of the queued chunk whose arrival
        completed each (the first after which every group had reached the window's end)."""
        reached: dict[int, tuple[int, float]] = {}
        for index, meta in self._calls:  # in push order: a chunk cut in pieces ends where its last piece did
            for row in meta.tolist():
                reached[int(row[4])] = (index, row[5])
        level = list(self._initial)
        ready = []  # grid samples every group has after each queued chunk (non-decreasing)
        for i in range(self._queued):
            step = reached.get(i)
            if step is not None:
                level[step[0]] = int(step[1])
            ready.append(min(level))
        last = self._queued - 1
        return [min(bisect_left(ready, end), last) for end in (k * self._hop + self._length).tolist()]

    def _start_at(self, first_t: float) -> None:
        """A stream first seen mid-way (a service started, or a partition taken over, while its gateway
        was already sending) starts at the first window its samples can fill, instead of counting every
        earlier window as a gap and growing its ring to reach back to window 0. Window numbers keep
        their meaning: window k still covers [k·hop, k·hop + T) of stream time."""
        self._started = True
        first_j = math.ceil(first_t * self.spec.fs - 1e-9)
        self._next_k = max(0, -(-first_j // self._hop))

    def _make_room(self, last: float) -> None:
        """Grow the ring if samples up to time `last` would overwrite grid samples a window still needs."""
        capacity = self._ring.shape[0]
        need = math.ceil(last * self.spec.fs) + 1 - self._next_k * self._hop
        if need <= capacity or need > self._max_capacity:  # fits, or a jump no ring should bridge (a gap)
            return
        new_capacity = min(self._max_capacity, max(2 * capacity, need + self._length))
        ring, stamps = new_ring(new_capacity, self._ring.shape[1], self._stamps.shape[1])
        top = max(int(g.state[NEXT_J]) for g in self._groups.values())
        j = np.arange(max(0, top - capacity), top)
        ring[j % new_capacity] = self._ring[j % capacity]
        stamps[j % new_capacity] = self._stamps[j % capacity]
        self._ring, self._stamps = ring, stamps
        self._max_push_s = new_capacity / self.spec.fs / 4

    def ready_until(self) -> int:
        """Grid samples available in every group (windows ending here or earlier can be decided)."""
        return int(min([g.state[NEXT_J] for g in self._groups.values()]))

    def undecided_windows(self) -> int:
        """Windows the group furthest ahead covers that are not cut yet because another group has not
        reached them (at the end of a stream: windows never estimated, e.g. an accelerometer that
        stopped before the PPG)."""
        top = max(int(g.state[NEXT_J]) for g in self._groups.values())
        covered = (top - self.spec.window_samples) // self.spec.hop_samples + 1 if top >= self.spec.window_samples else 0
        return max(0, covered - self._next_k)

    def has_complete_window(self) -> bool:
        return self._next_k * self._hop + self._length <= self.ready_until()

    def collect_into(self, out: np.ndarray, out_k: np.ndarray) -> int:
        """Copy complete windows not returned before into `out`/`out_k` (the caller's buffers, filled
        from index 0) up to their length; returns how many. Call again while it fills them."""
        if not self.has_complete_window():
            return 0
        n, self._next_k, skipped, invalid = ring_collect_windows(
            self._ring, self._stamps, self._group_mask, self._zscore, self._next_k, self.ready_until(),
            self._hop, self._length, out, out_k,
        )
        self._skipped += skipped
        self._invalid += invalid
        return n

    def windows(self) -> WindowBatch:
        """All complete windows not returned before (empty batch if none), as new arrays."""
        if self._scratch is None:
            self._scratch = (
                np.zeros((SCRATCH_WINDOWS, len(self.spec.channels), self.spec.window_samples), dtype=np.float32),
                np.zeros(SCRATCH_WINDOWS, dtype=np.int64),
            )
        out, out_k = self._scratch
        parts_k, parts_x = [], []
        while True:
            n = self.collect_into(out, out_k)
            if n:
                parts_k.append(out_k[:n].copy())
                parts_x.append(out[:n].copy())
            if n < len(out_k):
                break
        if not parts_k:
            return WindowBatch(np.zeros(0, dtype=np.int64), out[:0].copy())
        return WindowBatch(np.concatenate(parts_k), np.concatenate(parts_x))

    def pieces(self, chunk: Chunk) -> list[Chunk]:
        """A chunk longer than a quarter of the ring, cut so one push cannot overwrite windows before
        they are collected (collect after each piece)."""
        n = chunk.t.shape[0]
        span = float(chunk.t[-1] - chunk.t[0]) if n else 0.0
        if span <= self._max_push_s:  # False for NaN spans too
            return [chunk]
        pieces = max(2, int(np.ceil(span / self._max_push_s))) if np.isfinite(span) else max(2, n // 1024)
        edges = np.linspace(0, n, pieces + 1).astype(int)
        return [Chunk(chunk.group, chunk.t[a:b], chunk.x[a:b]) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    def feed(self, chunk: Chunk) -> WindowBatch:
        """push + windows: the streaming step for one stream on its own (training, tests)."""
        batches = []
        for piece in self.pieces(chunk):
            self.push(piece)
            batches.append(self.windows())
        if len(batches) == 1:
            return batches[0]
        return WindowBatch(np.concatenate([b.k for b in batches]), np.concatenate([b.x for b in batches]))

    @property
    def counters(self) -> Counters:
        groups = self._groups.values()
        return Counters(
            nan_samples=int(sum(g.state[N_NAN] for g in groups)),
            backward_samples=int(sum(g.state[N_BACKWARDS] for g in groups)),
            gaps=int(sum(g.state[N_GAPS] for g in groups)),
            skipped_windows=self._skipped,
            invalid_windows=self._invalid,
            rate_changes=self._rate_changes,
        )

    @property
    def nbytes(self) -> int:
        """Array memory this stream holds (the ring dominates)."""
        arrays = [self._ring, self._stamps, self._group_mask, self._zscore]
        for g in self._groups.values():
            arrays += [a for a in (g.state, g.sos, g.zi_unit, g.zi, g.prev_y) if a is not None]
        return sum(a.nbytes for a in arrays)
