"""A Polar PMD wearable (Verity Sense, OH1…) as a pipeline `Source`: raw PPG (+ ACC) chunks.

Stream time is the host clock from the first sample, so a disconnection shows up as a hole in the
timestamps: the preprocessor resets its filters there and skips only the windows that touch it, and
window indices keep meaning "[2k, 2k+8) s since the stream started".
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import structlog

from stream.ble.backend import BleClient
from stream.ble.connection import DISCONNECTED, BleConnection
from stream.ble.errors import BleParseError, DeviceError
from stream.ble.pmd_control import Measurement
from stream.ble.pmd_frames import PmdFrame, parse_frame
from stream.ble.pmd_session import PmdControl, StreamSettings
from stream.ble.sensor_clock import SensorClock, spread_sample_times
from stream.ble.uuids import PMD_DATA
from stream.chunk import ACC, PPG, Chunk

log = structlog.get_logger("ppg_stream.ble")

DATA_TAG = "pmd"
MG_PER_G = 1000.0
PPG_CHANNELS = 3  # frame type 0: three PPG channels then the ambient-light channel


def ppg_from_frame(samples: np.ndarray, factor: float) -> np.ndarray:
    """(n, 1): mean of the PPG channels minus ambient light (what reaches every photodiode regardless of pulse)."""
    x = samples.astype(np.float64) * factor
    return (x[:, :PPG_CHANNELS].mean(axis=1) - x[:, PPG_CHANNELS]).reshape(-1, 1)


def acc_from_frame(samples: np.ndarray, factor: float) -> np.ndarray:
    """(n, 3) in g, from mG."""
    return samples.astype(np.float64) * (factor / MG_PER_G)


class PmdSource:
    def __init__(self, conn: BleConnection, name: str, features: frozenset[int], time_scale: float = 1.0) -> None:
        if Measurement.PPG not in features:
            raise DeviceError("the device streams no PPG over Polar PMD")
        self.conn = conn
        self.name = name
        self.speed = time_scale  # device seconds per wall second: 1 for real devices
        self.labels_bpm = None
        self.measurements = [Measurement.PPG] + ([Measurement.ACC] if Measurement.ACC in features else [])
        self.streams: dict[int, StreamSettings] = {}
        self.rates: dict[str, float] = {}
        self.clock = SensorClock()
        self.parse_errors = 0
        self.disconnections = 0
        self._control: PmdControl | None = None
        self._prev_ns: dict[int, int] = {}
        self._t0: float | None = None
        self._last_t: dict[int, float] = {}

    async def setup(self, client: BleClient) -> None:
        """Per connection: subscribe to both characteristics (before any write), then start each stream."""
        control = PmdControl(client)
        await control.subscribe()
        await client.start_notify(PMD_DATA, self.conn.subscriber(DATA_TAG))
        self._control = control
        for measurement in self.measurements:
            self.streams[measurement] = await control.start(measurement)
        self.rates = {PPG: self.streams[Measurement.PPG].sample_rate_hz}
        if Measurement.ACC in self.streams:
            self.rates[ACC] = self.streams[Measurement.ACC].sample_rate_hz
        self.clock.reset()  # the device may have restarted its clock
        self._prev_ns.clear()
        log.info("streaming", device=self.name, **{Measurement(m).name.lower() + "_hz": s.sample_rate_hz for m, s in self.streams.items()})

    async def teardown(self, client: BleClient) -> None:
        """Stop every stream on the device (Ctrl-C), so it does not keep measuring into the void."""
        if self._control is None:
            return
        failures = []
        for measurement in self.streams:  # one failing stop must not leave the other stream running
            try:
                await self._control.stop(measurement)
            except Exception as e:  # noqa: BLE001 - reported together below
                failures.append(f"{Measurement(measurement).name}: {e.__class__.__name__}: {e}")
        if failures:
            raise DeviceError("; ".join(failures))

    async def chunks(self) -> AsyncIterator[tuple[Chunk, float]]:
        while True:
            event = await self.conn.events.get()
            if event.kind == DISCONNECTED:
                if self.conn.is_current(event):
                    await self._recover(event.host_s)
                continue
            try:
                frame = parse_frame(event.payload)
            except BleParseError as e:
                self.parse_errors += 1
                if self.parse_errors == 1 or self.parse_errors % 100 == 0:
                    log.warning("malformed PMD frame skipped", device=self.name, error=str(e), total=self.parse_errors)
                continue
            chunk = self.frame_to_chunk(frame, event.host_s)
            if chunk is not None:
                yield chunk, event.wall_s

    def frame_to_chunk(self, frame: PmdFrame, arrival_s: float) -> Chunk | None:
        stream = self.streams.get(frame.measurement)
        if stream is None or not len(frame.samples):
            return None
        sensor_ns = spread_sample_times(self._prev_ns.get(frame.measurement), frame.timestamp_ns, len(frame.samples), stream.sample_rate_hz)
        self._prev_ns[frame.measurement] = frame.timestamp_ns
        self.clock.observe(frame.timestamp_ns, arrival_s)
        host = self.clock.to_host(sensor_ns)
        if self._t0 is None:
            self._t0 = float(host[0])
        t = host - self._t0
        last = self._last_t.get(frame.measurement)
        if last is not None and t[0] <= last:
            # the clock offset stepped down (a frame came through faster than any before): shift this frame
            # rather than let its first samples look like time going backwards
            t = t + (last - t[0]) + 1.0 / stream.sample_rate_hz
        self._last_t[frame.measurement] = float(t[-1])
        if frame.measurement == Measurement.PPG:
            return Chunk(PPG, t, ppg_from_frame(frame.samples, stream.factor))
        return Chunk(ACC, t, acc_from_frame(frame.samples, stream.factor))

    async def _recover(self, lost_at_s: float) -> None:
        self.disconnections += 1
        log.warning("device disconnected: reconnecting", device=self.name, disconnections=self.disconnections)
        await self.conn.reconnect(self.setup)
        if self._t0 is not None:
            log.warning("stream resumes after a gap: filters reset, windows touching it skipped", device=self.name, gap_s=round(self.conn.now() - lost_at_s, 2))
