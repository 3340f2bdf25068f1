"""`ppg-stream serve` as a user runs it (a subprocess with JSON logs), and raw chunks made by the
project's own gateway code from synthetic recordings with known heart rate."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from dataclasses import dataclass, field

import aiomqtt
import numpy as np

from ppg_stream.replay.recording import Recording, uniform_times
from ppg_stream.stream.sources.replay import ReplaySource
from ppg_stream.replay.synthetic import synthesize
from ppg_stream.stream.sources.raw_gateway import RawGateway
from tests.conftest import start_cli


def unique_prefix(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def synthetic_recording(name: str, duration_s: float, seed: int, **kw) -> Recording:
    syn = synthesize(duration_s, seed, **kw)
    return Recording(name, syn.ppg[:, None], uniform_times(len(syn.ppg), syn.fs_ppg), syn.fs_ppg,
                     syn.acc_g, uniform_times(len(syn.acc_g), syn.fs_acc), syn.fs_acc, syn.labels_bpm)


class _Payloads:
    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []

    def publish_payload(self, topic: str, payload: bytes) -> None:
        self.items.append((topic, payload))


def raw_payloads(recording: Recording, prefix: str, device: str, chunk_s: float = 2.0) -> list[tuple[float, str, bytes]]:
    """(stream time the chunk is complete, topic, payload) per chunk, in order, through RawGateway."""
    sink = _Payloads()
    gateway = RawGateway(sink, prefix)
    source = ReplaySource(recording, speed=None, chunk_s=chunk_s)
    groups = frozenset(source.rates)
    out = []
    for end, chunks in source.blocks():
        for chunk in chunks:
            gateway.forward(device, groups, chunk, source.rates[chunk.group])
            topic, payload = sink.items.pop()
            out.append((end, topic, payload))
    return out


async def publish_all(items: list[tuple[str, bytes]], qos: int = 1, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883, max_inflight_messages=200) as client:
        for topic, payload in items:
            await client.publish(topic, payload, qos=qos, retain=retain)


@dataclass
class Service:
    """A `ppg-stream serve` subprocess; its JSON log lines are collected as they come."""

    args: tuple[str, ...]
    logs: list[dict] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task | None = None
    ready_event = "subscribed"  # the log line that says it takes input

    async def start(self, timeout_s: float = 60.0, until: str | None = None) -> "Service":
        """Start it and wait for its ready line (or the `until` line)."""
        self.proc = await start_cli("serve", "--log-json", *self.args)
        self._reader = asyncio.create_task(self._read())
        await self.wait_for_event(until or self.ready_event, timeout_s)
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode(errors="replace").strip()
            entry = json.loads(text) if text.startswith("{") else {"event": "text", "text": text}
            if text:
                entry["_seen"] = time.monotonic()
                self.logs.append(entry)

    def events(self, name: str) -> list[dict]:
        return [entry for entry in self.logs if entry.get("event") == name]

    async def wait_for_event(self, name: str, timeout_s: float) -> dict:
        for _ in range(int(timeout_s / 0.05)):
            found = self.events(name)
            if found:
                return found[-1]
            if self.proc is not None and self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no '{name}' log line from serve within {timeout_s} s: {self.logs[-5:]}")

    async def stop(self) -> int | None:
        """Ctrl-C, as a user stops it; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        rc = await asyncio.wait_for(self.proc.wait(), 60)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 10)
        return rc

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def tracebacks(self) -> list[str]:
        return [e["text"] for e in self.logs if e.get("event") == "text" and "Traceback" in e["text"]]


def by_device(messages: list[dict]) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for m in messages:
        out.setdefault(m["device"], {})[m["window"]] = m
    return out


def mae(windows: dict[int, dict], labels: np.ndarray) -> float:
    return float(np.mean([abs(m["bpm"] - labels[k]) for k, m in windows.items()]))


def direct_estimates(recordings: list[Recording], model: str = "student") -> dict[str, dict[int, float]]:
    """What a replay of each recording publishes (in process, as fast as possible): the reference a
    service fed the same samples over MQTT must reproduce."""
    from ppg_stream.stream.core.engine import InferenceEngine
    from ppg_stream.stream.runtime.pipeline import Runtime, RuntimeConfig
    from ppg_stream.stream.runtime.source_pump import pump

    out: dict[str, dict[int, float]] = {}

    class Recorder:
        def publish(self, messages: list[dict]) -> None:
            for m in messages:
                out.setdefault(m["device"], {})[m["window"]] = m["bpm"]

    async def replay() -> None:
        runtime = Runtime(InferenceEngine(model), [Recorder()], RuntimeConfig(speed=None))
        task = asyncio.create_task(runtime.run())
        await asyncio.gather(*(pump(runtime, ReplaySource(r, speed=None), r.subject, wait=True) for r in recordings))
        runtime.stop()
        await task

    asyncio.run(replay())
    return out
