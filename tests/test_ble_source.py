"""PMD frames → stream chunks (units, channels per frame type, FACTOR by the SDK's rules, time that never runs
backwards), and what the source does when firmware misbehaves: a stop of its own, silence, a rate other than
the advertised one, a PPG frame type nobody decodes. The device is the scripted one (no radio here)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from ppg_stream.stream.runtime.backoff import Backoff
from ppg_stream.stream.sources.ble.connection import DATA, BleConnection, Event
from ppg_stream.stream.sources.ble.device_stream import open_device_stream
from ppg_stream.stream.sources.ble.errors import DeviceError
from ppg_stream.stream.sources.ble.pmd_control import Measurement
from ppg_stream.stream.sources.ble.pmd_frames import decode_frame
from ppg_stream.stream.sources.ble.pmd_session import StreamSettings
from ppg_stream.stream.sources.ble.pmd_source import DATA_TAG, PmdSource
from ppg_stream.stream.sources.ble.pmd_time import FrameTiming
from ppg_stream.stream.sources.ble.uuids import PMD_DATA
from ppg_stream.stream.sources.ble.watchdog import DataWatchdog
from ppg_stream.stream.core.chunk import ACC, PPG
from ppg_stream.stream.cli.logs import configure_logging
from tests.fake_ble import FakeBackend, ScriptedDevice
from tests.pmd_encode import encode_compressed, encode_raw
from tests.sdk_vectors import PPG_DELTA_7, PPG_DELTA_8, PPG_DELTA_10_FRAME, TS_2E9

ADDRESS = "A0:9E:1A:00:11:22"


def _source(ppg_factor: float = 0.5, acc_factor: float = 1.0) -> PmdSource:
    conn = BleConnection(FakeBackend(ScriptedDevice()), ADDRESS)
    source = PmdSource(conn, "dev", frozenset({Measurement.PPG, Measurement.ACC}))
    source.streams = {Measurement.PPG: StreamSettings(1, 55.0, ppg_factor, {}), Measurement.ACC: StreamSettings(2, 52.0, acc_factor, {})}
    source.timing = {Measurement.PPG: FrameTiming(55.0), Measurement.ACC: FrameTiming(52.0)}
    return source


def _chunk(source: PmdSource, data: bytes, arrival_s: float = 100.0):
    m = data[0]
    return source.frame_to_chunk(decode_frame(data, source.streams[m].factor), arrival_s)


def test_ppg_type_0_is_the_mean_of_the_photodiodes_minus_ambient_and_acc_is_in_g():
    source = _source(ppg_factor=0.5)
    raw = _chunk(source, encode_raw(1, 0, 7_000_000_000, [[110, 120, 130, 20], [210, 220, 230, 20]], 3))
    assert raw.group == PPG and raw.x.shape == (2, 1)
    np.testing.assert_allclose(raw.x[:, 0], [120 - 20, 220 - 20])  # raw frames: FACTOR never applies (SDK)
    delta = _chunk(source, encode_compressed(1, 0, 7_600_000_000, [[110, 120, 130, 20], [210, 220, 230, 20]], 3))
    np.testing.assert_allclose(delta.x[:, 0], [0.5 * 120 - 0.5 * 20, 0.5 * 220 - 0.5 * 20])  # delta type 0: always
    acc = _chunk(source, encode_compressed(2, 1, 7_000_000_000, [[1000, -500, 0], [980, -510, 4]], 2))
    assert acc.group == ACC
    np.testing.assert_allclose(acc.x, [[1.0, -0.5, 0.0], [0.98, -0.51, 0.004]])


def test_acc_delta_type_0_is_in_g_times_factor():
    factor = float(np.float32(1 / 4096))
    source = _source(acc_factor=factor)
    counts = [[4096, -2048, 0], [4100, -2048, 41]]  # 1 g, -0.5 g, 0 g in units of 1/4096 g
    chunk = _chunk(source, encode_compressed(2, 0, 7_000_000_000, counts, 2))
    np.testing.assert_allclose(chunk.x, [[1.0, -0.5, 0.0], [1.0009, -0.5, 0.010]], atol=1e-3)


@pytest.mark.parametrize(
    ("data", "expected_first"),
    [
        (bytes([1]) + TS_2E9 + bytes([0x87]) + PPG_DELTA_7, None),  # mean of 16 PPG channels, status left out
        (bytes([1]) + TS_2E9 + bytes([0x88]) + PPG_DELTA_8, None),  # mean of 24 PPG channels
        (PPG_DELTA_10_FRAME, np.mean([1575733, 1957739, 1740229, 1761644, 1807181, 1489480, 1577122, 1822779])),  # green
    ],
)
def test_other_ppg_frame_types_become_one_trace(data, expected_first):
    source = _source(ppg_factor=1.0)
    frame = decode_frame(data, 1.0)
    chunk = source.frame_to_chunk(frame, 1e9)
    n_ppg = {7: 16, 8: 24, 10: 8}[frame.frame_type]
    np.testing.assert_allclose(chunk.x[:, 0], frame.samples[:, :n_ppg].mean(axis=1))
    if expected_first is not None:
        assert chunk.x[0, 0] == pytest.approx(expected_first)


def test_two_channel_ppg_type_13():
    source = _source(ppg_factor=1.0)
    chunk = _chunk(source, encode_compressed(1, 13, 7_000_000_000, [[1500, 500, 0x3C0F], [1600, 400, 0x3C0F]], 3))
    np.testing.assert_allclose(chunk.x[:, 0], [1000, 1000])


def test_a_frame_that_arrives_unusually_fast_does_not_make_time_run_backwards():
    source = _source()
    n, step_ns = 28, int(1e9 / 55)
    times = []
    for i, latency in enumerate([0.080, 0.075, 0.002, 0.040]):  # the third frame came through almost at once
        last_ns = 7_000_000_000 + (i + 1) * n * step_ns
        chunk = _chunk(source, encode_raw(1, 0, last_ns, [[1, 1, 1, 0]] * n, 3), arrival_s=last_ns * 1e-9 + 50.0 + latency)
        times.append(chunk.t)
    t = np.concatenate(times)
    assert np.all(np.diff(t) > 0) and np.diff(t).max() < 2 / 55  # neither backwards nor a hole
    assert t[0] == 0.0 and abs(t[-1] - (4 * n - 1) / 55) < 0.1  # stream time starts at the first sample


def test_one_frame_held_up_by_the_radio_leaves_no_hole_and_no_shift():
    source = _source()
    n, step_ns = 28, int(1e9 / 55)
    times = []
    for i in range(12):
        last_ns = 7_000_000_000 + (i + 1) * n * step_ns
        latency = 1.3 if i == 5 else 0.02  # frame 5 arrives 1.3 s late (a radio stall)
        times.append(_chunk(source, encode_raw(1, 0, last_ns, [[1, 1, 1, 0]] * n, 3), arrival_s=last_ns * 1e-9 + 50.0 + latency).t)
    t = np.concatenate(times)
    assert np.diff(t).max() < 2 / 55 and abs(t[-1] - (12 * n - 1) / 55) < 0.01
    assert source.clock.realignments == 0


def _event(data: bytes) -> Event:
    return Event(DATA, DATA_TAG, data, 100.0, 100.0)


def test_side_information_frames_carry_no_samples_and_are_not_errors():
    source = _source()
    assert source._event_to_chunk(_event(bytes([1]) + TS_2E9 + bytes([0x05]) + b"\xff\xff\xff\xff")) is None
    assert source.side_frames == 1 and source.parse_errors == 0


def test_an_undecodable_ppg_frame_type_refuses_the_device_once_at_the_first_frame():
    source = _source()
    unknown = encode_compressed(1, 3, 7_000_000_000, [[1, 2, 3]] * 4, 3)
    with pytest.raises(DeviceError, match="streams PPG as frame type 3 \\(delta-compressed\\).*not a supported wearable"):
        source._event_to_chunk(_event(unknown))
    # once PPG has been decoded, one odd frame is only a malformed frame
    assert source._event_to_chunk(_event(encode_raw(1, 0, 7_500_000_000, [[5, 5, 5, 1]] * 28, 3))) is not None
    assert source._event_to_chunk(_event(encode_compressed(1, 3, 8_000_000_000, [[1, 2, 3]] * 4, 3))) is None
    assert source.parse_errors == 1


# --- with the scripted device: what firmware does -----------------------------------------------------
def _device(duration_s: float, **kw) -> ScriptedDevice:
    n = int((duration_s + 5) * 55)
    m = int((duration_s + 5) * 52)
    t = np.arange(n) / 55.0
    ppg = 2000 * np.sin(2 * np.pi * 1.3 * t)
    acc = np.stack([1000 * np.ones(m), 100 * np.sin(np.arange(m) / 52.0), np.zeros(m)], axis=1)
    return ScriptedDevice(address=ADDRESS, ppg_counts=ppg, acc_mg=acc, duration_s=duration_s, **kw)


async def _stream(device: ScriptedDevice, until_s: float, time_scale: float = 5.0):
    """Run the real connection + PMD source against the device until device time `until_s`."""
    configure_logging()  # to this test's captured stderr
    backend = FakeBackend(device, time_scale=time_scale)
    conn = BleConnection(backend, ADDRESS, Backoff(start_s=0.05, max_s=0.2))
    await conn.find(1.0)
    source = await open_device_stream(conn, "dev", backend.time_scale)
    chunks = []

    async def consume() -> None:
        async for chunk, _ in source.chunks():
            chunks.append(chunk)
            if backend.now() >= until_s:
                return

    await asyncio.wait_for(consume(), timeout=until_s / time_scale + 20)
    await conn.close(source.teardown)
    return source, chunks, backend


def _span(chunks, group: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.concatenate([c.t for c in chunks if c.group == group])
    return t, np.diff(t)


async def test_acc_delta_type_0_streams_end_to_end():
    factor = float(np.float32(2.44e-4))
    source, chunks, _ = await _stream(_device(8.0, acc_delta_type0=True, acc_factor=factor), until_s=6.0)
    acc = np.concatenate([c.x for c in chunks if c.group == ACC])
    assert source.parse_errors == 0 and len(acc) > 4 * 52
    np.testing.assert_allclose(acc[:, 0], 1.0, atol=0.002)  # 1000 mG → 1 g through 16-bit counts × FACTOR


async def test_a_device_slower_than_advertised_gets_its_real_rate_and_times(capsys):
    source, chunks, _ = await _stream(_device(8.0, ppg_advertised_hz=135), until_s=6.0)
    assert source.rates[PPG] == pytest.approx(55.0, rel=0.01) and source.rates[ACC] == 52.0
    t, dt = _span(chunks, PPG)
    # spaced at the real 1/55 s, not packed at 1/135 s (the host clock's alignment may nudge a frame join)
    assert np.all(dt > 0) and np.median(dt) == pytest.approx(1 / 55, rel=0.01)
    assert np.mean(np.abs(dt * 55 - 1) < 0.1) > 0.95
    assert capsys.readouterr().err.count("streams at another rate than it advertised") == 1


async def test_a_stop_from_the_device_restarts_the_stream():
    device = _device(9.0, device_stop_at_s=3.0)
    source, chunks, backend = await _stream(device, until_s=7.0)
    assert source.device_stops == 1 and "device stop" in device.log
    after_stop = device.log[device.log.index("device stop") :]
    assert any(e.startswith("write 02 01") for e in after_stop)  # started again...
    assert len([c for c in backend.clients if c.subscriptions]) == 1  # ...on the same connection
    t, dt = _span(chunks, PPG)
    assert t[-1] > 6.0 and dt.max() < 1.0  # data again within a second of device time


@pytest.mark.slow
@pytest.mark.parametrize("cure", ["restart", "reconnect"])
async def test_silence_restarts_the_measurement_then_reconnects(cure):
    device = _device(16.0, stall_at_s=3.0, stall_cured_by=cure)
    source, chunks, backend = await _stream(device, until_s=14.0)
    assert f"stall cured by {cure}" in device.log
    assert source.silence_restarts >= 1
    assert (source.silence_reconnects >= 1) == (cure == "reconnect")
    assert len([c for c in backend.clients if c.subscriptions]) == (2 if cure == "reconnect" else 1)
    t, _ = _span(chunks, PPG)
    assert t[-1] > 12.0  # HR input flows again


async def test_a_restart_the_device_answers_already_running_gets_a_stop_and_a_fresh_start():
    from ppg_stream.stream.sources.ble.pmd_session import PmdControl

    device = _device(10.0)
    backend = FakeBackend(device, time_scale=20.0)
    conn = BleConnection(backend, ADDRESS)
    await conn.find(1.0)
    client = await conn.connect(lambda c: asyncio.sleep(0))
    control = PmdControl(client)
    await control.subscribe()
    await control.start(Measurement.PPG)
    settings = await control.restart(Measurement.PPG, stop_first=False)  # the stream is still running on the device
    writes = [e for e in device.log if e.startswith("write 0")]
    assert [w[:11] for w in writes] == ["write 01 01", "write 02 01", "write 01 01", "write 02 01", "write 03 01", "write 01 01", "write 02 01"]
    assert settings.sample_rate_hz == 55.0
    await conn.close()


# --- Ctrl-C (a cancellation) is honoured whenever it lands ---------------------------------------------
async def _cancel_after(task: asyncio.Task, turns: int) -> bool:
    """Cancel `task` after `turns` turns of the event loop; True if it took the cancel and still ran on."""
    for _ in range(turns):
        await asyncio.sleep(0)
    if not task.cancel():
        return False  # it had ended already: nothing was lost
    await asyncio.wait({task}, timeout=2.0)
    return not task.cancelled()


async def test_ctrl_c_that_lands_as_a_notification_arrives_stops_the_stream():
    """Python 3.11's `asyncio.wait_for` drops a cancellation that lands just as the event it waits for is
    handed over: the source then ran on after Ctrl-C, the device's watchdog restarting and reconnecting a
    stream that was over (test_ble_device's disconnect test, 1 run in 5 on a loaded machine)."""
    device = ScriptedDevice(address=ADDRESS, duration_s=0.0)  # its script is over: no frame but those handed over here
    conn = BleConnection(FakeBackend(device, time_scale=100.0), ADDRESS)
    source = PmdSource(conn, "dev", frozenset({Measurement.PPG, Measurement.ACC}), time_scale=100.0)
    source.watchdog = DataWatchdog(first_data_s=3600.0)  # quiet on purpose: the watchdog stays out of the way
    await conn.connect(source.setup)

    async def consume() -> None:
        async for _ in source.chunks():
            pass

    lost = []
    for turns in range(8):
        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.01)  # waiting for the next notification
        conn.client.notify(PMD_DATA, bytes([1, 1, 2, 3]))  # one arrives (malformed: skipped, as any frame is handed on)
        if await _cancel_after(consumer, turns):
            lost.append(turns)
    assert not lost, f"Ctrl-C {lost} event-loop turns after a notification was ignored"
    await conn.close(source.teardown)


async def test_a_frame_already_queued_when_the_watchdog_is_due_is_data_not_silence():
    """On a loaded machine the loop may get to the queue only after the watchdog's deadline: a frame waiting
    there is taken, not reported as silence (which restarted the measurement for nothing)."""
    device = ScriptedDevice(address=ADDRESS, duration_s=0.0)
    conn = BleConnection(FakeBackend(device, time_scale=100.0), ADDRESS)
    source = PmdSource(conn, "dev", frozenset({Measurement.PPG, Measurement.ACC}), time_scale=100.0)
    await conn.connect(source.setup)  # its rate probe outlasts the watchdog's first-data allowance
    assert source.watchdog.deadline() < conn.now()
    conn.client.notify(PMD_DATA, encode_raw(1, 0, 7_000_000_000, [[110, 120, 130, 20], [210, 220, 230, 20]], 3))
    chunks = source.chunks()
    chunk, _ = await asyncio.wait_for(anext(chunks), 2.0)
    assert chunk.group == PPG and len(chunk.t) == 2
    assert source.silence_restarts == 0 and not any(e.startswith("write 03") for e in device.log)
    await chunks.aclose()
    await conn.close(source.teardown)


async def test_a_host_stall_longer_than_the_watchdog_allows_does_not_restart_a_stream_that_flows():
    """The host freezes (load, swap, GC) past the watchdog's deadline while frames keep coming: when it wakes,
    the frame due before the deadline and the deadline are handled in one turn of the loop. The frame is data,
    not silence (before: the measurement was restarted and the samples around it lost, 1 run in 30 under load)."""
    configure_logging()
    device = _device(10.0)
    backend = FakeBackend(device, time_scale=5.0)
    conn = BleConnection(backend, ADDRESS)
    await conn.find(1.0)
    source = await open_device_stream(conn, "dev", backend.time_scale)
    stall_wall_s = 1.0  # 5 s of device time: more than the 2 s of silence the watchdog allows a flowing stream
    stalled_at = None
    async for _ in source.chunks():
        if stalled_at is None and backend.now() > 3.0:
            stalled_at = backend.now()
            asyncio.get_running_loop().call_soon(time.sleep, stall_wall_s)  # blocks the whole loop, radio included
        if backend.now() > 9.0:
            break
    assert stalled_at is not None and source.silence_restarts == 0 and source.silence_reconnects == 0
    assert not any(e.startswith("write 03") for e in device.log)  # no stop sent to the device
    await conn.close(source.teardown)


async def test_ctrl_c_that_lands_as_the_device_answers_a_command_is_honoured():
    from ppg_stream.stream.sources.ble.pmd_session import PmdControl

    backend = FakeBackend(ScriptedDevice(address=ADDRESS), time_scale=20.0)
    conn = BleConnection(backend, ADDRESS)
    await conn.find(1.0)
    client = await conn.connect(lambda c: asyncio.sleep(0))
    control = PmdControl(client)
    await control.subscribe()
    lost = [turns for turns in range(10) if await _cancel_after(asyncio.create_task(control.settings(Measurement.PPG)), turns)]
    assert not lost, f"Ctrl-C {lost} event-loop turns into a PMD command was ignored"
    await conn.close()
