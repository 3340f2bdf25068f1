"""The raw-chunk payload gateways publish on `<prefix>/<device>/raw`: pure encoder and decoder.

Version 2 (what gateways send), little-endian, a 40-byte header then the samples; version 1 is the
same without the `sent` field (a 32-byte header), and is still read:

    offset size type     field
    0      1    uint8    version (2; 1 without `sent`)
    1      1    uint8    group: 1 = PPG, 2 = ACC (x, y, z in g)
    2      1    uint8    channels per sample (PPG 1-8, averaged by the service; ACC 3)
    3      1    uint8    groups the stream carries, a bit mask (bit 0 PPG, bit 1 ACC): the service waits
                         for every announced group before it cuts a window
    4      4    uint32   stream id: a gateway picks a new random one whenever it (re)starts a stream;
                         time and sequence start again with it
    8      4    uint32   sequence number: +1 per payload of the stream, across groups
    12     4    uint32   n, samples in this chunk (1-16384)
    16     8    float64  rate in Hz of these samples (the chunk's own rate, 0 < rate ≤ 2000)
    24     8    float64  t0: time of the first sample, seconds since the stream started (0 ≤ t0 < 10^8)
    32     8    float64  sent (version 2 only): the gateway's clock (Unix seconds) when it published the chunk;
                         0 = unknown. The service measures a window's age from it (end-to-end latency)
    32|40  4·n·channels  float32 samples, sample-major (s0c0 s0c1 … s1c0 …)

Sample i was taken at t0 + i / rate. A payload whose size is not exactly header + 4·n·channels is refused.
Non-finite sample values are admitted here and dropped (and counted) by the preprocessor, per sample.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .chunk import ACC, PPG, Chunk

VERSION = 2
HEADER = struct.Struct("<BBBBIIIdd")  # version 1
HEADER_SIZE = HEADER.size  # 32
HEADER_V2 = struct.Struct("<BBBBIIIddd")
HEADER_V2_SIZE = HEADER_V2.size  # 40
MAX_SENT_S = 1e10  # a Unix time before the year 2286
GROUP_CODES = {PPG: 1, ACC: 2}
GROUP_NAMES = {code: name for name, code in GROUP_CODES.items()}
GROUP_BITS = {PPG: 1, ACC: 2}
MAX_SAMPLES = 16384
MAX_PPG_CHANNELS = 8
MAX_RATE_HZ = 2000.0
MAX_T0_S = 1e8
MAX_PAYLOAD = HEADER_V2_SIZE + 4 * MAX_SAMPLES * MAX_PPG_CHANNELS


class RawChunkError(ValueError):
    """A payload that is not a valid raw chunk; the message says which field is wrong."""


@dataclass(frozen=True, slots=True)
class RawChunk:
    group: str  # "ppg" or "acc"
    groups: frozenset[str]  # every group this stream carries
    stream_id: int
    seq: int
    rate_hz: float
    t0: float
    samples: np.ndarray  # (n, channels) float32
    sent: float = 0.0  # the gateway's Unix time when it published the chunk; 0 = unknown (a version 1 payload)

    def times(self) -> np.ndarray:
        """Sample times in seconds since the stream started (float64)."""
        return self.t0 + np.arange(self.samples.shape[0], dtype=np.float64) / self.rate_hz

    def to_chunk(self) -> Chunk:
        return Chunk(self.group, self.times(), self.samples.astype(np.float64))


class RawHeader(NamedTuple):
    """A payload's validated header and the payload (`decode_raw_header`): what the service's intake
    works with and queues per message. No numpy object is made per chunk: the preprocessor reads the
    samples of a device's queued chunks in one batch (`StreamPreprocessor.push_queue`)."""

    group: str
    groups: frozenset[str]
    stream_id: int
    seq: int
    rate_hz: float
    t0: float
    sent: float
    n: int
    channels: int
    header_size: int
    payload: bytes

    def to_chunk(self) -> Chunk:
        """The chunk as arrays: times (float64) and the samples, a read-only float32 view of the payload."""
        return Chunk(self.group, sample_times(self), samples_of(self, self.payload))


def samples_of(header: RawHeader, payload: bytes) -> np.ndarray:
    """The samples of a payload whose header was decoded: a read-only (n, channels) float32 view."""
    return np.frombuffer(payload, dtype="<f4", count=header.n * header.channels, offset=header.header_size).reshape(header.n, header.channels)


_BASES: dict[tuple[int, float], np.ndarray] = {}


def sample_times(header: RawHeader) -> np.ndarray:
    """t0 + i / rate for the header's samples (float64, as `RawChunk.times`), from a cached i / rate per
    (n, rate): gateways send the same chunk shape again and again."""
    key = (header.n, header.rate_hz)
    base = _BASES.get(key)
    if base is None:
        if len(_BASES) >= 1024:  # bounded, whatever senders put in headers
            _BASES.clear()
        base = _BASES[key] = np.arange(header.n, dtype=np.float64) / header.rate_hz
    return base + header.t0


def groups_mask(groups: frozenset[str] | set[str]) -> int:
    return sum(GROUP_BITS[g] for g in groups)


def encode_raw_chunk(chunk: RawChunk) -> bytes:
    """The payload for one chunk (validated, so a gateway cannot publish what the service refuses):
    version 2 when the chunk says when it was sent, else version 1."""
    samples = np.ascontiguousarray(chunk.samples, dtype="<f4")
    if samples.ndim != 2:
        raise RawChunkError(f"samples must be (n, channels), got shape {samples.shape}")
    fields = (GROUP_CODES[chunk.group], samples.shape[1], groups_mask(chunk.groups),
              chunk.stream_id & 0xFFFFFFFF, chunk.seq & 0xFFFFFFFF, samples.shape[0], float(chunk.rate_hz), float(chunk.t0))
    header = HEADER_V2.pack(2, *fields, float(chunk.sent)) if chunk.sent else HEADER.pack(1, *fields)
    payload = header + samples.tobytes()
    decode_raw_chunk(payload)  # the same checks the service applies
    return payload


def decode_raw_header(payload: bytes) -> RawHeader:
    """Parse and validate a payload's header without touching its samples. Any defect raises
    RawChunkError naming the field. The service's intake calls this per message: no numpy here."""
    size = len(payload)
    if size < HEADER_SIZE:
        raise RawChunkError(f"payload of {size} bytes is shorter than the {HEADER_SIZE}-byte header")
    if size > MAX_PAYLOAD:
        raise RawChunkError(f"payload of {size} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    version = payload[0]
    if version == 2:
        if size < HEADER_V2_SIZE:
            raise RawChunkError(f"payload of {size} bytes is shorter than the {HEADER_V2_SIZE}-byte header of version 2")
        _, group_code, channels, mask, stream_id, seq, n, rate, t0, sent = HEADER_V2.unpack_from(payload)
        if not (0.0 <= sent < MAX_SENT_S):  # also refuses NaN
            raise RawChunkError(f"sent time {sent!r} outside [0, {MAX_SENT_S:g})")
        header_size = HEADER_V2_SIZE
    elif version == 1:
        _, group_code, channels, mask, stream_id, seq, n, rate, t0 = HEADER.unpack_from(payload)
        sent = 0.0
        header_size = HEADER_SIZE
    else:
        raise RawChunkError(f"unknown payload version {version} (this service reads versions 1 and {VERSION})")
    group = GROUP_NAMES.get(group_code)
    if group is None:
        raise RawChunkError(f"unknown channel group {group_code} (1 = PPG, 2 = ACC)")
    if group == PPG:
        if not 1 <= channels <= MAX_PPG_CHANNELS:
            raise RawChunkError(f"PPG chunk with {channels} channels (1-{MAX_PPG_CHANNELS})")
    elif channels != 3:
        raise RawChunkError(f"ACC chunk with {channels} channels (must be 3: x, y, z)")
    groups = _GROUPS_OF_MASK.get(mask)
    if groups is None or group not in groups:
        raise RawChunkError(f"groups mask {mask:#x} must include PPG and this chunk's group, and nothing unknown")
    if not 1 <= n <= MAX_SAMPLES:
        raise RawChunkError(f"sample count {n} outside 1-{MAX_SAMPLES}")
    if not (0 < rate <= MAX_RATE_HZ):  # also refuses NaN
        raise RawChunkError(f"rate {rate!r} Hz outside (0, {MAX_RATE_HZ:g}]")
    if not (0 <= t0 < MAX_T0_S):
        raise RawChunkError(f"first-sample time {t0!r} s outside [0, {MAX_T0_S:g})")
    expected = header_size + 4 * n * channels
    if size != expected:
        raise RawChunkError(f"payload is {size} bytes; header says {n} samples x {channels} channels = {expected}")
    return RawHeader(group, groups, stream_id, seq, rate, t0, sent, n, channels, header_size, payload)


def decode_raw_chunk(payload: bytes) -> RawChunk:
    """Parse and validate one payload; any defect raises RawChunkError naming the field. The samples are
    a read-only view of the payload."""
    h = decode_raw_header(payload)
    return RawChunk(h.group, h.groups, h.stream_id, h.seq, h.rate_hz, h.t0, samples_of(h, payload), h.sent)


_GROUPS_OF_MASK = {mask: frozenset(g for g, bit in GROUP_BITS.items() if mask & bit) for mask in (1, 3)}  # PPG, PPG + ACC
