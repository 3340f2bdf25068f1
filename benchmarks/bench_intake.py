"""Serve CPU per raw chunk for intake, the way `serve` takes chunks from Mosquitto, old and new in one run.

    python benchmarks/bench_intake.py                      # 1000 devices, 0.25 / 1 / 2 s chunks
    python benchmarks/bench_intake.py --devices 5000 --rounds 8

Intake is everything between the socket's bytes and a chunk queued for its device: MQTT framing,
one PUBACK per QoS-1 message (written once per read), payload decode and validation, the topic →
device lookup and the stream bookkeeping (sequence, duplicates, restarts). The byte stream is what
Mosquitto sends a QoS-1 subscriber (PUBLISH packets of version-2 raw chunks from every device in
turn), fed to the real `MqttConnection` in reads of 64 KiB, through the real `MqttSubscriber` callback,
into a real `RawIngest` and `Runtime` (the shipped model). "old" is the intake as it was before issue
21 (its per-chunk decode into an object, the topic parsed and checked on every message, a float64
copy and an arange per chunk, one callback per message, one kernel call per chunk), kept in this file
so both are measured in one run on the same input. "new" is serve's: the messages of a read handed
over in one call, the header decoded to a tuple that is queued as it is, and each device's queued
chunks fed to the Numba kernel in one call per channel group (times made in the kernel).

Printed per chunk size: CPU µs per chunk for intake alone, then for intake plus processing (the
runtime's tick: preprocessing, the model, HR messages, each chunk's share), old, new and old / new.
CPU is this process's (time.process_time), the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import struct
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from ppg_stream.replay.recording import source_rate_problem
from ppg_stream.replay.synthetic import synthesize
from ppg_stream.stream.core.chunk import ACC, PPG, Chunk
from ppg_stream.stream.core.engine import InferenceEngine
from ppg_stream.stream.core.message import is_device_id
from ppg_stream.stream.core.raw_chunk import (
    GROUP_BITS,
    GROUP_NAMES,
    HEADER_V2,
    RawChunkError,
)
from ppg_stream.stream.mqtt.codec import encode_publish, encode_string
from ppg_stream.stream.mqtt.connection import MqttConnection
from ppg_stream.stream.mqtt.settings import BrokerSettings
from ppg_stream.stream.mqtt.subscriber import MqttSubscriber
from ppg_stream.stream.runtime.pipeline import Runtime, RuntimeConfig, warm_up_runtime
from ppg_stream.stream.sources.raw_intake import RawIngest
from tables import table

READ_BYTES = 65536
POOL = 8


# ---- the intake as it was before (main at 0d6c8ee), for the comparison ---------------------------
_OLD_HEADER = struct.Struct("<BBBBIIIdd")


class _OldRaw:  # the frozen dataclass it decoded into (slots, frozen: every field set through object.__setattr__)
    FIELDS = ("group", "groups", "stream_id", "seq", "rate_hz", "t0", "samples")
    __slots__ = ("group", "groups", "rate_hz", "samples", "seq", "stream_id", "t0")

    def __init__(self, *values):
        for name, value in zip(self.FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def to_chunk(self) -> Chunk:
        times = self.t0 + np.arange(self.samples.shape[0], dtype=np.float64) / self.rate_hz
        return Chunk(self.group, times, self.samples.astype(np.float64))


def _old_decode(payload: bytes) -> _OldRaw:
    if len(payload) < 32:
        raise RawChunkError("short")
    version, group_code, channels, mask, stream_id, seq, n, rate, t0 = _OLD_HEADER.unpack_from(payload)
    group = GROUP_NAMES.get(group_code)
    if group is None or not 1 <= n <= 16384 or not (math.isfinite(rate) and 0 < rate <= 2000) or not (math.isfinite(t0) and 0 <= t0 < 1e8):
        raise RawChunkError("bad header")
    if mask & ~3 or not mask & GROUP_BITS[PPG] or not mask & GROUP_BITS[group]:
        raise RawChunkError("bad mask")
    header = 40 if version == 2 else 32  # (old read version 1 only; the same bytes are fed to both)
    if len(payload) != header + 4 * n * channels:
        raise RawChunkError("size")
    samples = np.frombuffer(payload, dtype="<f4", count=n * channels, offset=header).reshape(n, channels)
    groups = frozenset(g for g, bit in GROUP_BITS.items() if mask & bit)
    return _OldRaw(group, groups, stream_id, seq, rate, t0, samples)


class OldIngest(RawIngest):
    """RawIngest.on_message/accept as before: the topic parsed on every message, an object per chunk."""

    def on_message(self, topic: str, payload: bytes, received: float) -> None:
        device = self.device_of(topic)
        if device is None:
            self.bad_topics += 1
            return
        try:
            raw = _old_decode(payload)
        except RawChunkError as e:
            self.reject(topic, str(e))
            return
        if source_rate_problem(raw.rate_hz):
            return
        self.chunks += 1
        runtime = self.runtime
        state = runtime.table.get(device)
        if state is None:
            state = runtime.open_device(device, raw.groups)
            if state is None:
                return
        elif state.stream_id is not None and raw.stream_id != state.stream_id and time.monotonic() - state.last_seen < 2.0:
            return
        if state.stream_id is not None and (raw.stream_id != state.stream_id or raw.groups != state.groups or raw.seq < state.last_seq - 256):
            runtime.restart_device(state, raw.groups)
        elif raw.seq <= state.last_seq:
            state.tally.duplicate_chunks += 1
            return
        state.count_chunk(raw.stream_id)
        state.stream_id = raw.stream_id
        state.last_seq = raw.seq
        state.last_t0[raw.group] = raw.t0
        runtime.offer(state, raw.to_chunk(), received, raw.rate_hz, None)

    def device_of(self, topic: str) -> str | None:
        head, sep, rest = topic.partition(self.prefix + "/")
        if head or not sep or not rest.endswith("/raw"):
            return None
        device = rest[: -len("/raw")]
        return device if is_device_id(device) else None


# ---- the input: what Mosquitto writes to a QoS-1 subscriber ---------------------------------------
def make_reads(devices: int, chunk_s: float, rounds: int, prefix: str) -> tuple[list[list[bytes]], int]:
    """Reads of 64 KiB per round (round 0 opens the devices and is not measured); chunks per round."""
    pool = []
    for p in range(POOL):
        syn = synthesize(chunk_s * (rounds + 1) + 1, seed=500 + p)
        pool.append((syn.ppg.astype("<f4"), syn.acc_g.astype("<f4")))
    m, a = round(chunk_s * 64), round(chunk_s * 32)
    topics = [encode_string(f"{prefix}/dev{i:05d}/raw") for i in range(devices)]
    sent = time.time()
    rounds_out = []
    pid = 0
    for r in range(rounds + 1):
        packets = []
        for i in range(devices):
            ppg, acc = pool[i % POOL]
            t0 = r * chunk_s
            for seq, (code, ch, n, rate, x) in enumerate(((1, 1, m, 64.0, ppg[r * m : (r + 1) * m]), (2, 3, a, 32.0, acc[r * a : (r + 1) * a]))):
                payload = HEADER_V2.pack(2, code, ch, 3, 1000 + i, 2 * r + seq, n, rate, t0, sent) + x.tobytes()
                pid = pid % 65535 + 1
                packets.append(encode_publish(topics[i], payload, 1, pid))
        stream = b"".join(packets)
        rounds_out.append([stream[k : k + READ_BYTES] for k in range(0, len(stream), READ_BYTES)])
    return rounds_out, 2 * devices


class _Transport:
    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name, default=None):
        return default

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Null:
    def publish(self, messages) -> None:
        pass

    def set_status(self, device, status) -> None:
        pass


def measure(engine, ingest_cls, reads: list[list[bytes]], per_round: int, prefix: str, process: bool, reads_per_tick: int = 1) -> float:
    """CPU µs per chunk over rounds 1.. (round 0 opens the devices). The runtime ticks after every
    `reads_per_tick` reads (more than 1: a service whose loop is behind its socket, each device with
    several chunks queued per tick)."""
    runtime = Runtime(engine, [_Null()], RuntimeConfig(speed=None, max_devices=1_000_000, queue_chunks=1_000_000))
    ingest = ingest_cls(runtime, prefix)
    if ingest_cls is OldIngest:  # one call per message through the subscriber, as before
        subscriber = MqttSubscriber(BrokerSettings("127.0.0.1", 1), f"{prefix}/+/raw", ingest.on_message, qos=1)
        conn = MqttConnection(on_publish=subscriber._on_publish)
    else:  # as serve wires it: the messages of one read in one call
        subscriber = MqttSubscriber(BrokerSettings("127.0.0.1", 1), f"{prefix}/+/raw", None, on_messages=ingest.on_messages, qos=1)
        conn = MqttConnection(on_publishes=subscriber._on_publishes)
    conn.connection_made(_Transport())

    count = 0  # reads so far: ticks span rounds, so a device has up to reads_per_tick / reads-per-round chunks per group queued

    def feed(chunks: list[bytes]) -> None:
        nonlocal count
        for data in chunks:
            conn.data_received(data)
            count += 1
            if process:
                if count % reads_per_tick == 0:
                    runtime.tick()
            else:  # intake only: the queued chunks are let go
                for state in runtime._ready:
                    state.queue.clear()
                runtime._ready.clear()

    feed(reads[0])
    runtime.tick()
    t = time.process_time()
    for chunks in reads[1:]:
        feed(chunks)
    if process:
        runtime.tick()  # what the last reads left queued
    cpu = time.process_time() - t
    expected = per_round * len(reads)
    assert ingest.chunks == expected and subscriber.callback_errors == 0, (ingest.chunks, expected, subscriber.callback_errors)
    return cpu / (per_round * (len(reads) - 1)) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--chunk-s", default="0.25,1,2", help="seconds of signal per raw chunk, comma-separated")
    ap.add_argument("--rounds", type=int, default=6, help="measured chunks per device per group")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reads-per-tick", type=int, default=1, help="socket reads between runtime ticks (>1: a backlog per device per tick)")
    args = ap.parse_args()
    engine = InferenceEngine("student")
    warm_up_runtime(engine, {PPG: 64.0, ACC: 32.0})
    prefix = "bench"
    rows = []
    for chunk_s in [float(c) for c in args.chunk_s.split(",")]:
        reads, per_round = make_reads(args.devices, chunk_s, args.rounds, prefix)
        row = [f"{chunk_s:g}"]
        for process in (False, True):
            old = min(measure(engine, OldIngest, reads, per_round, prefix, process, args.reads_per_tick) for _ in range(args.repeat))
            new = min(measure(engine, RawIngest, reads, per_round, prefix, process, args.reads_per_tick) for _ in range(args.repeat))
            row += [f"{old:.1f}", f"{new:.1f}", f"{old / new:.2f}"]
        rows.append(row)
        print(row, flush=True)
    table(f"serve CPU per raw chunk (µs), {args.devices} devices, MQTT QoS 1 reads of {READ_BYTES // 1024} KiB, a tick every {args.reads_per_tick} read(s), best of {args.repeat}",
          ["chunk s", "intake old", "intake new", "old / new", "intake + processing old", "+ processing new", "old / new"], rows)


async def _amain() -> None:
    main()  # nothing here awaits: MqttConnection only needs a running loop to make its futures


if __name__ == "__main__":
    asyncio.run(_amain())
