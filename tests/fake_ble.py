"""A scripted wearable behind a bleak-shaped client: what cannot exist here (a radio), nothing more.

It answers PMD control commands the way a Polar Verity Sense does (features, settings, start with
a FACTOR, stop, error codes, "already in state" for a stream already running), streams raw and
delta-compressed frames with sensor timestamps from a drifting clock that was never set, drops the
link at a scripted moment, refuses to reconnect for a while, and can be a Heart Rate Service-only
strap instead. It also does what real firmware does: ACC as delta frames of type 0x80 (16-bit
reference, in G × FACTOR), PPG at another rate than it advertises, PPG of another frame type, a stop
of its own (`[0x01, types…]` on the control point), and going silent until restarted or reconnected.
Time runs `time_scale` times faster than the wall clock, so a minute of device time takes seconds.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field

import numpy as np
from bleak.exc import BleakError

from ppg_stream.stream.sources.ble.backend import Advertisement
from ppg_stream.stream.sources.ble.uuids import HEART_RATE_MEASUREMENT, HEART_RATE_SERVICE, PMD_CONTROL, PMD_DATA, PMD_SERVICE
from tests.pmd_encode import encode_compressed, encode_raw

PPG, ACC = 1, 2
NS_2000_TO_SENSOR_ZERO = 7_000_000_000  # the sensor clock was never set: it counts from ~7 s "after 2000"
ALREADY_IN_STATE = 6


@dataclass
class ScriptedDevice:
    address: str = "A0:9E:1A:00:11:22"
    name: str = "Polar Sense 0011223"
    ppg_counts: np.ndarray | None = None  # (n,) at ppg_hz: what the photodiodes see, in counts
    acc_mg: np.ndarray | None = None  # (m, 3) at acc_hz
    ppg_hz: float = 55.0
    acc_hz: float = 52.0
    ppg_factor: float = 0.5  # delta frames carry counts ×2 and it says FACTOR 0.5 (raw frames: plain counts, as the SDK reads them)
    ppg_frame: int = 28
    acc_frame: int = 36
    pmd: bool = True
    hrs: bool = True
    duration_s: float = 60.0  # device time after which it stops streaming and sets `finished`
    disconnect_at_s: float | None = None
    offline_s: float = 0.0  # connect attempts fail this long after the drop
    drift_ppm: float = 80.0
    start_error: int = 0  # e.g. 13: in charger
    hr_bpm: float = 72.0
    mtu: int = 247
    refuse_connects: int = 0  # connect attempts to refuse before accepting (reconnect tests)
    junk_every: int = 0  # also send a malformed notification after every Nth data frame
    ppg_advertised_hz: float | None = None  # what the settings say (Verity Sense 1.1.5-2.0.x: 135 for 55)
    ppg_frame_type: int = 0  # 0: 3 channels + ambient (raw and delta); 13: 2 channels + status (delta); other: unknown
    acc_delta_type0: bool = False  # ACC as 0x80 frames: 16-bit reference, values in G × acc_factor
    acc_factor: float = 1.0
    device_stop_at_s: float | None = None  # the device stops both streams on its own and says so
    stall_at_s: float | None = None  # the device stops sending frames without a word
    stall_cured_by: str = "restart"  # "restart": a stop + start brings data back; "reconnect": only a new link
    # what happened, for assertions
    log: list[str] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    stalled: bool = False

    def settings_response(self, measurement: int) -> bytes:
        if measurement == PPG:  # 55 Hz (or the advertised rate), 22-bit, 4 channels
            rate = int(55 if self.ppg_advertised_hz is None else self.ppg_advertised_hz)
            return bytes([0x00, 0x01]) + rate.to_bytes(2, "little") + bytes([0x01, 0x01, 0x16, 0x00, 0x04, 0x01, 0x04])
        # ACC: 52 Hz, 16-bit, ranges 2/4/8/16 g, 3 channels
        return bytes([0x00, 0x01, 0x34, 0x00, 0x01, 0x01, 0x10, 0x00, 0x02, 0x04, 0x02, 0x00, 0x04, 0x00, 0x08, 0x00, 0x10, 0x00, 0x04, 0x01, 0x03])


class FakeBackend:
    def __init__(self, device: ScriptedDevice, time_scale: float = 10.0) -> None:
        self.device = device
        self.time_scale = time_scale
        self.transient_errors = (BleakError, OSError, EOFError, asyncio.TimeoutError)
        self.clients: list[FakeClient] = []
        self._wall0 = time.perf_counter()
        self._found = False
        self.dropped_at: float | None = None
        self.reconnected_at: float | None = None
        self.stream_start: float | None = None  # device time of the first PPG START: signal time zero

    def now(self) -> float:
        return (time.perf_counter() - self._wall0) * self.time_scale

    async def sleep_until(self, device_t: float) -> None:
        await asyncio.sleep(max(0.0, (device_t - self.now()) / self.time_scale))

    async def discover(self, timeout_s: float) -> list[Advertisement]:
        d = self.device
        uuids = tuple(u for u, on in ((HEART_RATE_SERVICE, d.hrs),) if on)
        return [Advertisement(d.address, d.name, -58, uuids), Advertisement("11:22:33:44:55:66", None, -90, ())]

    async def find(self, address: str, timeout_s: float) -> object | None:
        if not self._found:
            self._wall0 = time.perf_counter()  # device time 0: when ppg-stream first looks for it
            self._found = True
        return self.device if address.lower() == self.device.address.lower() else None

    def client(self, device: object, disconnected) -> "FakeClient":
        c = FakeClient(self, disconnected)
        self.clients.append(c)
        return c

    async def after_connect(self, client: "FakeClient") -> None:
        return None


class _Services:
    def __init__(self, uuids: set[str]) -> None:
        self.uuids = uuids

    def get_service(self, uuid: str) -> object | None:
        return uuid if uuid in self.uuids else None


class FakeClient:
    def __init__(self, backend: FakeBackend, disconnected) -> None:
        self.backend = backend
        self.dev = backend.device
        self._disconnected = disconnected
        self.is_connected = False
        self.connected_at: float | None = None  # device time of the connection
        self.mtu_size = self.dev.mtu
        self.callbacks: dict[str, object] = {}
        self.subscriptions = 0
        self._streams: dict[int, asyncio.Task] = {}
        self._tasks: list[asyncio.Task] = []
        self.services = _Services({u for u, on in ((PMD_SERVICE, self.dev.pmd), (HEART_RATE_SERVICE, self.dev.hrs)) if on})

    # --- bleak's client surface ---
    async def connect(self) -> None:
        b, d = self.backend, self.dev
        if d.refuse_connects > 0 or (b.dropped_at is not None and b.now() < b.dropped_at + d.offline_s):
            d.refuse_connects -= 1
            d.log.append("connect refused")
            raise BleakError(f"Device with address {d.address} was not found.")
        self.is_connected = True
        self.connected_at = b.now()
        d.log.append("connect")
        if b.dropped_at is not None and b.reconnected_at is None:
            b.reconnected_at = b.now()
        if d.disconnect_at_s is not None and b.dropped_at is None:
            self._tasks.append(asyncio.create_task(self._drop_later()))
        if d.device_stop_at_s is not None and "device stop" not in d.log:
            self._tasks.append(asyncio.create_task(self._stop_later()))
        if d.stall_at_s is not None and "stall" not in d.log:
            self._tasks.append(asyncio.create_task(self._stall_later()))
        if d.stalled and d.stall_cured_by == "reconnect":
            d.stalled = False  # a new link wakes the firmware up
            d.log.append("stall cured by reconnect")

    async def disconnect(self) -> None:
        if self.is_connected:
            self.dev.log.append("disconnect")
        self._halt()

    async def read_gatt_char(self, uuid: str) -> bytearray:
        self._need_connection()
        assert uuid == PMD_CONTROL
        return bytearray([0x0F, (1 << PPG) | (1 << ACC) | (1 << 0) | (1 << 3)])  # ECG, PPG, ACC, PPI

    async def write_gatt_char(self, uuid: str, data: bytes, response: bool = True) -> None:
        self._need_connection()
        assert uuid == PMD_CONTROL and response
        op, measurement = data[0], data[1]
        self.dev.log.append(f"write {bytes(data).hex(' ')}")
        if op == 0x01:
            reply = bytes([0xF0, op, measurement, 0, 0]) + self.dev.settings_response(measurement)
        elif op == 0x02:
            if self.dev.start_error:
                reply = bytes([0xF0, op, measurement, self.dev.start_error, 0])
            elif measurement in self._streams:
                reply = bytes([0xF0, op, measurement, ALREADY_IN_STATE, 0])
            else:
                factor = self.dev.ppg_factor if measurement == PPG else self.dev.acc_factor
                reply = bytes([0xF0, op, measurement, 0, 0, 0x05, 0x01]) + struct.pack("<f", factor)
                if measurement == PPG and self.backend.stream_start is None:
                    self.backend.stream_start = self.backend.now()
                if self.dev.stalled and self.dev.stall_cured_by == "restart":
                    self.dev.stalled = False
                    self.dev.log.append("stall cured by restart")
                self._streams[measurement] = asyncio.create_task(self._stream(measurement))
        else:
            task = self._streams.pop(measurement, None)
            if task:
                task.cancel()
            reply = bytes([0xF0, op, measurement, 0, 0])
        cb = self.callbacks.get(PMD_CONTROL)
        if cb is not None:
            asyncio.get_running_loop().call_soon(cb, None, bytearray(reply))

    async def start_notify(self, uuid: str, callback) -> None:
        self._need_connection()
        self.callbacks[uuid] = callback
        self.subscriptions += 1
        if uuid == HEART_RATE_MEASUREMENT:
            self._tasks.append(asyncio.create_task(self._heart_rate()))

    async def stop_notify(self, uuid: str) -> None:
        self.callbacks.pop(uuid, None)

    def notify(self, uuid: str, payload: bytes) -> None:
        """The radio hands over one notification now, as the stack does: the subscriber's callback, in the loop."""
        self.callbacks[uuid](None, bytearray(payload))

    # --- the device's behaviour ---
    def _need_connection(self) -> None:
        if not self.is_connected:
            raise BleakError("Not connected")

    def _halt(self) -> None:
        self.is_connected = False
        for task in [*self._streams.values(), *self._tasks]:
            if task is not asyncio.current_task():
                task.cancel()
        self._streams.clear()

    async def _stop_later(self) -> None:
        await self.backend.sleep_until(self.dev.device_stop_at_s)
        self.dev.log.append("device stop")
        stopped = sorted(self._streams)
        for measurement in stopped:
            self._streams.pop(measurement).cancel()
        cb = self.callbacks.get(PMD_CONTROL)
        if cb is not None and self.is_connected:
            cb(None, bytearray([0x01, *stopped]))

    async def _stall_later(self) -> None:
        await self.backend.sleep_until(self.dev.stall_at_s)
        self.dev.log.append("stall")
        self.dev.stalled = True

    async def _drop_later(self) -> None:
        await self.backend.sleep_until(self.dev.disconnect_at_s)
        self.backend.dropped_at = self.backend.now()
        self.dev.log.append("link lost")
        self._halt()
        asyncio.get_running_loop().call_soon(self._disconnected)

    def _sensor_ns(self, device_t: float) -> int:
        return NS_2000_TO_SENSOR_ZERO + int(device_t * (1 + self.dev.drift_ppm * 1e-6) * 1e9)

    async def _stream(self, measurement: int) -> None:
        d, b = self.dev, self.backend
        rate, per_frame = (d.ppg_hz, d.ppg_frame) if measurement == PPG else (d.acc_hz, d.acc_frame)
        start = b.stream_start
        j = int(np.ceil((b.now() - start) * rate))  # samples during a disconnection are lost
        frame_no = 0
        try:
            while True:
                last = j + per_frame - 1
                t_last = start + last / rate
                if t_last - start > d.duration_s:
                    d.finished.set()
                    return
                await b.sleep_until(t_last + 0.005 + 0.02 * (frame_no % 3))  # radio latency with jitter
                cb = self.callbacks.get(PMD_DATA)
                if cb is None or not self.is_connected:
                    return
                if not d.stalled:  # a stalled firmware measures on, but sends nothing
                    cb(None, bytearray(self._frame(measurement, j, per_frame, self._sensor_ns(t_last), compressed=frame_no % 2 == 1)))
                if d.junk_every and frame_no % d.junk_every == d.junk_every - 1:
                    cb(None, bytearray([measurement, 1, 2, 3]))  # truncated: a parse error, no samples lost
                j += per_frame
                frame_no += 1
        except asyncio.CancelledError:
            pass

    def _frame(self, measurement: int, j: int, n: int, ts_ns: int, compressed: bool) -> bytes:
        d = self.dev
        if measurement == PPG:
            # the SDK scales delta PPG frames by FACTOR and never raw ones: so does this device's firmware
            counts = np.round(d.ppg_counts[j : j + n] / (d.ppg_factor if compressed or d.ppg_frame_type != 0 else 1.0)).astype(int)
            if d.ppg_frame_type != 0:  # two channels + a status word, delta frames only
                samples = [[int(c) + 500, int(c) - 500, 0x3C0F] for c in counts]
                return encode_compressed(measurement, d.ppg_frame_type, ts_ns, samples, 3, block=10)
            ambient = 1000 + (np.arange(j, j + n) % 7)
            samples = [[int(c) + 1000, int(c) + 1000, int(c) + 1000, int(a)] for c, a in zip(counts, ambient)]
            samples = [[s[0] + s[3] - 1000, s[1] + s[3] - 1000, s[2] + s[3] - 1000, s[3]] for s in samples]
            frame_type, width = 0, 3
        elif d.acc_delta_type0:  # 16-bit reference and deltas in G / FACTOR: mG = value × FACTOR × 1000
            counts = np.round(d.acc_mg[j : j + n] / (np.float32(d.acc_factor) * 1000)).astype(int).tolist()
            return encode_compressed(measurement, 0, ts_ns, counts, 2, block=12)
        else:
            samples = np.round(d.acc_mg[j : j + n]).astype(int).tolist()
            frame_type, width = 1, 2
        if compressed:
            return encode_compressed(measurement, frame_type, ts_ns, samples, width, block=10)
        return encode_raw(measurement, frame_type, ts_ns, samples, width)

    async def _heart_rate(self) -> None:
        d, b = self.dev, self.backend
        seq = 0
        try:
            while self.is_connected and b.now() < d.duration_s:
                await b.sleep_until(b.now() + 1.0)
                cb = self.callbacks.get(HEART_RATE_MEASUREMENT)
                if cb is None or not self.is_connected:
                    return
                rr = round(60.0 / d.hr_bpm * 1024)
                # flags: uint8 HR, contact supported + detected, RR present; two RR intervals
                payload = bytes([0x16, int(round(d.hr_bpm))]) + rr.to_bytes(2, "little") + (rr + 8).to_bytes(2, "little")
                cb(None, bytearray(payload))
                seq += 1
            d.finished.set()
        except asyncio.CancelledError:
            pass
