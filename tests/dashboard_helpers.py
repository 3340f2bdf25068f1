"""Running the dashboard as a user does (a subprocess, stopped by its pid) and feeding it through the
real broker, for the dashboard's server and browser tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import aiomqtt

from tests.conftest import ROOT, free_port, port_open, wait_port


def unique_prefix() -> str:
    return f"test-dash-{uuid.uuid4().hex[:10]}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hr_payload(device: str, window: int, bpm: float, confidence: float = 0.9, late: bool = False, model: str = "ppg-student@1.1") -> bytes:
    return json.dumps({
        "device": device, "window": window, "t_end": 2.0 * window + 8, "ts": now_iso(), "bpm": bpm,
        "confidence": confidence, "latency_ms": 0.4, "late": late, "model": model,
    }).encode()


@dataclass
class DashboardProcess:
    proc: subprocess.Popen
    port: int
    prefix: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def stderr(self) -> str:
        return self.proc.stderr.read().decode() if self.proc.stderr else ""


def start_dashboard(prefix: str, *args: str, broker_port: int = 1883, wait_subscribed: bool = True) -> DashboardProcess:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppg_stream.stream.cli", "dashboard", "--port", str(port), "--topic-prefix", prefix,
         "--broker", f"mqtt://127.0.0.1:{broker_port}", *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"dashboard did not start: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    wait_port(port)
    if wait_subscribed:  # messages published before the subscription exists are not retained: wait for it
        while _broker_state(port) != "connected":
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("dashboard did not subscribe to the broker")
            time.sleep(0.05)
    return DashboardProcess(proc, port, prefix)


def _broker_state(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/devices", timeout=5) as response:
        return json.load(response)["meta"]["broker_state"]


async def publish(messages: list[tuple[str, bytes]], retain: bool = False, port: int = 1883) -> None:
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=500) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1, retain=retain)


async def clear_retained(prefix: str, devices, port: int = 1883) -> None:
    await publish([(f"{prefix}/{d}/status", b"") for d in devices], retain=True, port=port)
