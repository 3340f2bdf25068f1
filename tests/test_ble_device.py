"""`ppg-stream --ble` end to end: a scripted wearable (the only fake: there is no radio here) drives the real
connection code, PMD session, source, preprocessor, ONNX student, tracker and MQTT publisher, and the
messages are read back from a real Mosquitto."""

from __future__ import annotations

import asyncio
import os
import random
import signal

import numpy as np
import pytest

from ppg_stream.replay.synthetic import synthesize
from ppg_stream.stream.cli import main as cli
from ppg_stream.stream.cli.commands import local
from ppg_stream.stream.runtime.backoff import Backoff
from ppg_stream.stream.sources.ble.connection import DATA, BleConnection
from ppg_stream.stream.sources.ble.device_stream import ble_device_id
from ppg_stream.stream.cli.logs import configure_logging
from ppg_stream.stream.runtime.tasks import cancel_and_wait
from tests.conftest import Collector
from tests.fake_ble import FakeBackend, ScriptedDevice

ADDRESS = "A0:9E:1A:00:11:22"
DEVICE = ble_device_id(ADDRESS)


def verity_device(duration_s: float, seed: int, **kw) -> tuple[ScriptedDevice, np.ndarray]:
    """A Verity Sense replaying a synthetic recording with known HR: PPG at 55 Hz, ACC at 52 Hz."""
    syn = synthesize(duration_s + 10, seed, motion_share=0.3)
    t64 = np.arange(len(syn.ppg)) / syn.fs_ppg
    t55 = np.arange(int((duration_s + 5) * 55)) / 55.0
    ta = np.arange(len(syn.acc_g)) / syn.fs_acc
    t52 = np.arange(int((duration_s + 5) * 52)) / 52.0
    ppg_counts = np.interp(t55, t64, syn.ppg) * 100.0
    acc_mg = np.stack([np.interp(t52, ta, syn.acc_g[:, i]) for i in range(3)], axis=1) * 1000.0
    return ScriptedDevice(address=ADDRESS, ppg_counts=ppg_counts, acc_mg=acc_mg, duration_s=duration_s, **kw), syn.labels_bpm


async def _run_cli_until_device_finishes(backend: FakeBackend, argv: list[str], collector: Collector) -> int:
    """The CLI in this process, stopped with a real SIGINT once the device's script is over (and messages
    have arrived, so the CLI's own signal handler is certainly installed)."""
    args = local.build_parser().parse_args(argv)
    local.check_args(args)
    configure_logging()  # to the stderr pytest captures now, as main() does
    task = asyncio.create_task(local.run(args, backend))
    finished = asyncio.create_task(backend.device.finished.wait())
    done, _ = await asyncio.wait({task, finished}, timeout=90, return_when=asyncio.FIRST_COMPLETED)
    assert finished in done, f"the CLI ended before the device's script did: {task.result() if task.done() else 'timeout'}"
    for _ in range(200):
        if collector.messages:
            break
        await asyncio.sleep(0.05)
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
    return await _ended_by_ctrl_c(task)


async def _ended_by_ctrl_c(task: asyncio.Task, timeout_s: float = 30.0) -> int:
    """The CLI's exit status once Ctrl-C has stopped it. Not `wait_for(task)`: its cancel at the timeout would
    look like a Ctrl-C to the CLI (exit 0) and hide one the CLI ignored behind later, stranger failures."""
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if task not in done:
        await cancel_and_wait(task)
        pytest.fail(f"the CLI ran on for {timeout_s:g} s after Ctrl-C")
    return task.result()


@pytest.mark.slow
@pytest.mark.network
async def test_polar_stream_to_mqtt_with_a_disconnect_in_the_middle(mosquitto_1883, capsys):
    device, labels = verity_device(duration_s=72.0, seed=21, disconnect_at_s=30.0, offline_s=7.0, junk_every=25)
    backend = FakeBackend(device, time_scale=5.0)  # slow enough that a busy CI machine's stalls stay small
    prefix = f"bletest{os.getpid()}"
    collector = await Collector(*mosquitto_1883, f"{prefix}/#").start()
    try:
        rc = await _run_cli_until_device_finishes(backend, ["--ble", ADDRESS, "--topic-prefix", prefix], collector)
        await asyncio.sleep(0.3)
    finally:
        await collector.stop()
    assert rc == 0

    # heart rate arrived, from before and after the drop, and it is right
    messages = [m for m in collector.messages if m["device"] == DEVICE]
    windows = np.array([m["window"] for m in messages])
    assert len(messages) >= 15
    assert all("source" not in m and m["model"].startswith("ppg-student") for m in messages)
    error = np.mean([abs(m["bpm"] - labels[m["window"]]) for m in messages])
    assert error < 5.0, f"MAE {error:.2f} bpm against the recording's truth"

    # windows touching the gap were skipped (not estimated from a hole), the others kept their indices
    gap_start = backend.dropped_at - backend.stream_start
    gap_end = backend.reconnected_at - backend.stream_start
    assert gap_end - gap_start >= 4.0
    touching = (2 * windows + 8 > gap_start + 0.6) & (2 * windows < gap_end - 0.6)
    assert not touching.any(), windows[touching]
    assert (2 * windows + 8 <= gap_start + 0.6).sum() >= 8 and (2 * windows >= gap_end - 0.6).sum() >= 5

    # status: offline while the device was away, online again, offline at the end
    status = [p.decode() for p in collector.raw.get(f"{prefix}/{DEVICE}/status", [])]
    assert "offline" in status and status[-1] == "offline"
    first_offline = status.index("offline")
    assert "online" in status[first_offline:], status

    # one fresh client per connection, each subscribed once; Ctrl-C stopped both streams before disconnecting
    connected = [c for c in backend.clients if c.subscriptions]
    assert len(connected) == 2 and all(c.subscriptions == 2 for c in connected)
    assert "connect refused" in device.log
    tail = device.log[len(device.log) - 1 - device.log[::-1].index("connect"):]
    assert "write 03 01" in tail and "write 03 02" in tail and tail[-1] == "disconnect"
    assert tail.index("write 03 01") < tail.index("disconnect")

    err = capsys.readouterr().err
    assert "malformed PMD frame skipped" in err and "stream resumes after a gap" in err and "Traceback" not in err


def _mae(messages: list[dict], labels: np.ndarray) -> float:
    return float(np.mean([abs(m["bpm"] - labels[m["window"]]) for m in messages]))


@pytest.mark.slow
@pytest.mark.network
async def test_verity_sense_firmware_with_acc_delta_type_0_and_55_hz_ppg_sold_as_135(mosquitto_1883, capsys):
    """What Verity Sense firmware 1.1.5-2.0.x sends: ACC as delta frames of type 0x80 (16-bit reference, G × FACTOR)
    and PPG at 55 Hz while its settings offer 135 Hz only. Before issue 8: every ACC frame malformed, no HR at all."""
    factor = float(np.float32(2.44e-4))
    device, labels = verity_device(duration_s=60.0, seed=33, acc_delta_type0=True, acc_factor=factor, ppg_advertised_hz=135)
    backend = FakeBackend(device, time_scale=5.0)
    prefix = f"bleacc{os.getpid()}"
    collector = await Collector(*mosquitto_1883, f"{prefix}/#").start()
    try:
        rc = await _run_cli_until_device_finishes(backend, ["--ble", ADDRESS, "--topic-prefix", prefix], collector)
        await asyncio.sleep(0.3)
    finally:
        await collector.stop()
    assert rc == 0
    messages = [m for m in collector.messages if m["device"] == DEVICE]
    assert len(messages) >= 18, len(messages)  # 60 s: windows 0..26, the first ready after 8 s
    assert _mae(messages, labels) < 5.0, f"MAE {_mae(messages, labels):.2f} bpm against the recording's truth"
    assert any(e.startswith("write 02 01 00 01 87 00") for e in device.log)  # it asked for the only rate offered, 135 Hz
    err = capsys.readouterr().err
    assert "malformed PMD frame" not in err and "Traceback" not in err
    assert err.count("streams at another rate than it advertised") == 1 and "real_hz=55.0" in err
    assert "malformed_frames=0" in err


@pytest.mark.slow
@pytest.mark.network
async def test_a_stop_from_the_device_and_a_silent_stall_are_survived(mosquitto_1883, capsys):
    """The device stops both streams on its own at 20 s (it says so on the control point), and at 44 s goes silent
    until a new connection: the stream is restarted, then (silence again after a restart) reconnected."""
    device, labels = verity_device(duration_s=84.0, seed=44, device_stop_at_s=20.0, stall_at_s=44.0, stall_cured_by="reconnect")
    backend = FakeBackend(device, time_scale=5.0)
    prefix = f"blestop{os.getpid()}"
    collector = await Collector(*mosquitto_1883, f"{prefix}/#").start()
    try:
        rc = await _run_cli_until_device_finishes(backend, ["--ble", ADDRESS, "--topic-prefix", prefix], collector)
        await asyncio.sleep(0.3)
    finally:
        await collector.stop()
    assert rc == 0
    messages = [m for m in collector.messages if m["device"] == DEVICE]
    windows = np.array([m["window"] for m in messages])
    t0 = backend.stream_start
    reconnected = backend.clients[-1].connected_at - t0
    # heart rate before the device's stop, between its stop and the stall, and after the reconnect
    assert (2 * windows + 8 <= 20.0).sum() >= 4
    assert ((2 * windows >= 21.0) & (2 * windows + 8 <= 44.0)).sum() >= 4
    assert (2 * windows >= reconnected).sum() >= 8
    assert _mae(messages, labels) < 5.0
    status = [p.decode() for p in collector.raw.get(f"{prefix}/{DEVICE}/status", [])]
    assert "online" in status[status.index("offline") :]  # offline while reconnecting, then back
    err = capsys.readouterr().err
    assert "the device stopped streaming on its own" in err and "no data from the device: restarting the measurement" in err
    assert "still no data after restarting the measurement: reconnecting" in err
    assert "device_stops=1" in err and "silence_reconnects=1" in err and "Traceback" not in err


def test_a_ppg_frame_type_nobody_decodes_is_refused_once_clearly(capsys):
    device, _ = verity_device(duration_s=10.0, seed=2, ppg_frame_type=3)
    rc = cli.main(["--ble", ADDRESS, "--no-mqtt"], ble_backend=FakeBackend(device, time_scale=10.0))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1] == f"ppg-stream: error: {ADDRESS} streams PPG as frame type 3 (delta-compressed), which neither Polar's SDK nor ppg-stream decodes: not a supported wearable"
    assert "write 03 01" in device.log and device.log[-1] == "disconnect"  # streams stopped, link closed


def test_a_device_that_offers_no_sample_rate_is_one_clear_line(capsys):
    device, _ = verity_device(duration_s=10.0, seed=2, ppg_advertised_hz=0)
    rc = cli.main(["--ble", ADDRESS, "--no-mqtt"], ble_backend=FakeBackend(device, time_scale=10.0))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "Traceback" not in "\n".join(err)
    assert err[-1] == "ppg-stream: error: the device offered no sample rate for PPG: its samples cannot be placed in time"
    assert not any(e.startswith("write 02") for e in device.log) and device.log[-1] == "disconnect"  # refused before starting


@pytest.mark.network
async def test_heart_rate_service_only_device_is_passed_through(mosquitto_1883):
    device = ScriptedDevice(address=ADDRESS, name="Strap", pmd=False, hrs=True, duration_s=15.0, hr_bpm=72.0)
    backend = FakeBackend(device, time_scale=10.0)
    prefix = f"hrstest{os.getpid()}"
    collector = await Collector(*mosquitto_1883, f"{prefix}/#").start()
    try:
        rc = await _run_cli_until_device_finishes(backend, ["--ble", ADDRESS, "--topic-prefix", prefix, "--device-id", "strap-1"], collector)
        await asyncio.sleep(0.3)
    finally:
        await collector.stop()
    assert rc == 0
    assert len(collector.messages) >= 3
    m = collector.messages[0]
    assert m["source"] == "device" and m["device"] == "strap-1" and m["bpm"] == 72 and m["contact"] is True
    assert m["rr_ms"] == [round(853 / 1024 * 1000, 1), round(861 / 1024 * 1000, 1)]  # both RR intervals kept
    assert [m["seq"] for m in collector.messages] == list(range(len(collector.messages)))


async def test_reconnect_backs_off_exponentially_with_jitter_and_ignores_the_old_client():
    device = ScriptedDevice(address=ADDRESS, refuse_connects=5)
    backend = FakeBackend(device)
    slept: list[float] = []
    statuses: list[str] = []

    async def record_sleep(delay: float) -> None:
        slept.append(delay)

    conn = BleConnection(backend, ADDRESS, Backoff(start_s=0.1, factor=2.0, max_s=0.5, jitter=0.2), statuses.append, sleep=record_sleep, rng=random.Random(7))
    await conn.find(1.0)
    device.refuse_connects = 0
    old = await conn.connect(lambda c: c.start_notify("x", conn.subscriber(DATA)))
    old_callback = old.callbacks["x"]
    device.refuse_connects = 5
    new = await conn.reconnect(lambda c: c.start_notify("x", conn.subscriber(DATA)))

    assert new is not old and conn.reconnect_attempts == 6 and conn.connections == 2
    nominal = [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    assert len(slept) == 6
    assert all(0.8 * n <= s <= 1.2 * n for s, n in zip(slept, nominal)), slept
    assert len(set(slept)) == 6  # jittered, not in lock-step
    assert statuses == ["online", "offline", "online"]
    old_callback(None, bytearray(b"late"))  # a stale client's notification must not reach the stream
    new.callbacks["x"](None, bytearray(b"fresh"))
    assert conn.events.get_nowait().payload == b"fresh" and conn.events.empty()


def test_device_in_charger_is_one_clear_line(capsys):
    device, _ = verity_device(duration_s=10.0, seed=1, start_error=13)
    backend = FakeBackend(device)
    rc = cli.main(["--ble", ADDRESS, "--no-mqtt"], ble_backend=backend)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1] == "ppg-stream: error: start PPG: the device is on its charger: take it off the charger to measure"
    assert device.log[-1] == "disconnect"  # the link is not left open


def test_unknown_address_says_how_to_find_devices(capsys):
    rc = cli.main(["--ble", "00:00:00:00:00:01", "--no-mqtt", "--scan-timeout", "0.1"], ble_backend=FakeBackend(ScriptedDevice()))
    err = capsys.readouterr().err
    assert rc == 2 and "no BLE device 00:00:00:00:00:01 found within 0.1 s" in err and "--ble scan" in err


def test_device_without_ppg_or_heart_rate_is_refused(capsys):
    rc = cli.main(["--ble", ADDRESS, "--no-mqtt"], ble_backend=FakeBackend(ScriptedDevice(pmd=False, hrs=False)))
    assert rc == 2 and "offers neither Polar PMD PPG nor the Heart Rate Service" in capsys.readouterr().err


def test_scan_lists_devices_with_their_services(capsys):
    rc = cli.main(["--ble", "scan", "--scan-timeout", "0.1"], ble_backend=FakeBackend(ScriptedDevice(name="Polar Sense 0011223")))
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert lines[0].split() == ["ADDRESS", "RSSI", "NAME", "SERVICES"]
    assert lines[1].split() == [ADDRESS, "-58", "Polar", "Sense", "0011223", "heart-rate,polar-pmd?"]
    assert lines[2].split() == ["11:22:33:44:55:66", "-90", "-", "-"]


async def test_a_link_lost_during_set_up_is_retried_once_not_twice():
    """bleak fires the disconnected callback before the failing GATT call raises: that stale event must
    not trigger a second reconnect (which would abandon the good link) once the retry has succeeded."""
    from bleak.exc import BleakError

    configure_logging()  # log to this test's captured stderr
    backend = FakeBackend(ScriptedDevice(address=ADDRESS))
    conn = BleConnection(backend, ADDRESS, Backoff(start_s=0.01, max_s=0.01), sleep=lambda d: asyncio.sleep(0))
    await conn.find(1.0)
    await conn.connect(lambda c: asyncio.sleep(0))
    tries = []

    async def flaky_setup(client) -> None:
        tries.append(client)
        if len(tries) == 1:
            client._disconnected()  # the drop, reported by the stack first...
            raise BleakError("Not connected")  # ...then the GATT call fails

    await conn.reconnect(flaky_setup)
    stale = conn.events.get_nowait()
    assert len(tries) == 2 and stale.kind == "disconnected" and not conn.is_current(stale)
    assert conn.client is tries[1] and tries[1].is_connected


class _TwoWearables:
    """Two scripted wearables behind one bleak-shaped back end (each keeps its own clock and script)."""

    def __init__(self, backends: list[FakeBackend]) -> None:
        self.backends = {b.device.address.lower(): b for b in backends}
        self.time_scale = backends[0].time_scale
        self.transient_errors = backends[0].transient_errors

    async def discover(self, timeout_s: float):
        return [a for b in self.backends.values() for a in (await b.discover(timeout_s))[:1]]

    async def find(self, address: str, timeout_s: float):
        backend = self.backends.get(address.lower())
        return await backend.find(address, timeout_s) if backend else None

    def client(self, device, disconnected):
        return self.backends[device.address.lower()].client(device, disconnected)

    def now(self) -> float:  # the host clock the connections read (both scripts start within milliseconds)
        return next(iter(self.backends.values())).now()

    async def after_connect(self, client) -> None:
        return None


@pytest.mark.slow
@pytest.mark.network
async def test_two_wearables_in_one_process(mosquitto_1883):
    backends, labels = [], {}
    for address, seed in (("A0:9E:1A:00:00:01", 51), ("A0:9E:1A:00:00:02", 52)):
        device, truth = verity_device(duration_s=40.0, seed=seed)
        device.address = address
        backends.append(FakeBackend(device, time_scale=5.0))
        labels[ble_device_id(address)] = truth
    backend = _TwoWearables(backends)
    prefix = f"ble2test{os.getpid()}"
    collector = await Collector(*mosquitto_1883, f"{prefix}/#").start()
    try:
        args = local.build_parser().parse_args(["--ble", backends[0].device.address, "--ble", backends[1].device.address, "--topic-prefix", prefix])
        local.check_args(args)
        configure_logging()
        task = asyncio.create_task(local.run(args, backend))
        finished = asyncio.ensure_future(asyncio.gather(*(b.device.finished.wait() for b in backends)))
        await asyncio.wait([task, finished], timeout=90, return_when=asyncio.FIRST_COMPLETED)
        assert finished.done(), f"the CLI ended before the devices' scripts did: {task.result() if task.done() else 'timeout'}"
        os.kill(os.getpid(), signal.SIGINT)
        rc = await _ended_by_ctrl_c(task)
        await asyncio.sleep(0.3)
    finally:
        await collector.stop()
    assert rc == 0
    for device, truth in labels.items():
        messages = [m for m in collector.messages if m["device"] == device]
        assert len(messages) >= 10, device
        assert _mae(messages, truth) < 5.0, device
        assert collector.raw[f"{prefix}/{device}/status"][-1] == b"offline"
    assert collector.raw[f"{prefix}/_service/ble-{ble_device_id(backends[0].device.address)}/status"][-1] == b"offline"
