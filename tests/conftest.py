"""Shared fixtures: synthetic recordings with known HR, real Mosquitto brokers, the CLI as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from ppg_stream.replay.data_sets import DATA_ENV, IEEE_SPC2015, data_dir
from ppg_stream.replay.synthetic import Synthetic, synthesize, write_synthetic_dalia

ROOT = Path(__file__).resolve().parent.parent
IEEE_DIR = data_dir(IEEE_SPC2015)  # $PPG_STREAM_DATA/ieee-spc2015, else ../shared/data/ieee-spc2015 beside the checkout
IN_CI = bool(os.environ.get("CI"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")
        time.sleep(0.05)


def need_broker_or_fail(reason: str) -> None:
    """In CI a missing broker is a failure (the suite must exercise MQTT); on a laptop, a skip."""
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide Mosquitto on 127.0.0.1:1883)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mosquitto_1883() -> tuple[str, int]:
    if not port_open(1883):
        need_broker_or_fail("no MQTT broker on 127.0.0.1:1883")
    return "127.0.0.1", 1883


class PrivateMosquitto:
    """A Mosquitto of our own on a free port, with persistence, that tests can stop and restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        # run as root, mosquitto drops to its own user: it must be able to write its session store here,
        # or persistence silently does nothing and a restart forgets subscribers' sessions
        workdir.chmod(0o777)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir}/\nautosave_interval 1\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
        deadline = time.monotonic() + 5
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture
def private_mosquitto():
    if shutil.which("mosquitto") is None:
        need_broker_or_fail("mosquitto is not installed")
    # not under pytest's tmp_path: its parents are private to root, and mosquitto drops to its own user
    workdir = Path(tempfile.mkdtemp(prefix="ppg-stream-mosquitto-"))
    broker = PrivateMosquitto(workdir)
    broker.start()
    yield broker
    broker.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Collector:
    """Subscribes with a persistent session so nothing is lost across a broker restart."""

    host: str
    port: int
    topic: str
    messages: list[dict] = field(default_factory=list)
    raw: dict[str, list[bytes]] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    async def _run(self, identifier: str) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=identifier, clean_session=False) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.ready.set()
                    async for message in client.messages:
                        payload = bytes(message.payload)
                        self.raw.setdefault(str(message.topic), []).append(payload)
                        if str(message.topic).endswith("/hr"):
                            self.messages.append(json.loads(payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def start(self) -> "Collector":
        self.task = asyncio.create_task(self._run(f"test-collector-{os.getpid()}-{id(self)}"))
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    async def wait_for(self, n: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len({m["window"] for m in self.messages}) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass


@dataclass(frozen=True)
class SyntheticFile:
    path: Path
    syn: Synthetic

    @property
    def n_windows(self) -> int:
        return len(self.syn.labels_bpm)


def make_synthetic_file(directory: Path, name: str, duration_s: float, seed: int, **kw) -> SyntheticFile:
    syn = synthesize(duration_s, seed, **kw)
    path = directory / f"{name}.pkl"
    write_synthetic_dalia(path, syn, subject=name, with_chest=False)
    return SyntheticFile(path, syn)


@pytest.fixture(scope="session")
def synthetic_60s(tmp_path_factory) -> SyntheticFile:
    return make_synthetic_file(tmp_path_factory.mktemp("syn"), "syn60", 60.0, seed=11)


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def run_cli(*args: str, timeout: float = 120) -> CliResult:
    """`ppg-stream ARGS` exactly as a user runs it (a fresh process)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ppg_stream.stream.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ppg_stream.stream.cli", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


START_TIMEOUT_S = 300.0  # a hang guard, not an expectation: a cold Numba cache on a loaded 2-core machine took 40 s


async def until_logged(proc: asyncio.subprocess.Process, event: str, timeout_s: float = START_TIMEOUT_S) -> list[str]:
    """Read a CLI's stderr until a line containing `event` (e.g. `replay starting`, logged once the warm-up is
    done); the lines read. A test that waits for messages counts its deadline from there, not from the
    process start: start-up (imports, compiling the kernels) takes from 1 s to 40 s by machine and load."""
    lines: list[str] = []
    async with asyncio.timeout(timeout_s):
        while True:
            line = (await proc.stderr.readline()).decode()
            if not line:
                raise AssertionError(f"the CLI ended before logging {event!r}: " + "".join(lines))
            lines.append(line)
            if event in line:
                return lines


def window_mae(messages: list[dict], labels: np.ndarray) -> float:
    return float(np.mean([abs(m["bpm"] - labels[m["window"]]) for m in messages]))


@pytest.fixture(scope="session")
def ieee_dir() -> Path:
    if not (IEEE_DIR / "DATA_01_TYPE01.mat").exists():
        pytest.skip(f"IEEE SPC 2015 data not found at {IEEE_DIR} (set {DATA_ENV} to the folder holding ieee-spc2015/; see docs/data.md)")
    return IEEE_DIR


SHIPPED_STUDENT_KEYS = ("strategy", "teacher", "architecture", "parameters", "strategy_params", "cv", "licence_training_data", "taper",
                        "temperature")


def shipped_metadata(spec) -> dict:
    """The metadata a student must carry to be shipped (tests/test_shipped_student.py): every key set, and its
    recipe's cross-validation; returns that `cv`."""
    for key in SHIPPED_STUDENT_KEYS:
        assert spec.extra.get(key), key
    cv = json.loads(spec.extra["cv"])
    for key in ("mae", "folds", "mae_synthetic", "mae_scenarios", "ece"):
        assert key in cv, key
    return cv
