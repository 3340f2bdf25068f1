"""A Polar PMD wearable (Verity Sense, OH1…) as a pipeline `Source`: PPG (+ ACC) chunks.

Stream time is the host clock from the first sample, so a disconnection shows up as a hole in the
timestamps: the preprocessor resets its filters there and skips only the windows that touch it, and
window indices keep meaning "[2k, 2k+8) s since the stream started".

What real firmware does, and what happens here:
- it may stream at another rate than it advertises (Verity Sense 1.1.5-2.0.x: 55 Hz PPG sold as
  135 Hz): the first frames of the first connection are read before the pipeline exists, so `rates`
  (what the filters are designed for) is the real rate; sample times follow the device's timestamps;
- it may stop a stream on its own (`[0x01, types…]` on the control point): the stream is restarted;
- it may go silent without a word: the data watchdog restarts the measurement, and reconnects if that
  does not bring data back;
- it may send a PPG frame type nobody decodes: refused once, clearly, at the first frame.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import structlog

from .backend import BleClient
from .connection import DISCONNECTED, BleConnection, Event
from .errors import BleParseError, DeviceError
from .pmd_control import Measurement, measurement_name, parse_device_message
from .pmd_frames import PmdFrame, UnknownFrameType, decode_frame
from .pmd_session import PmdControl, StreamSettings
from .pmd_signals import carries_signal, signal_of
from .pmd_time import FrameTiming
from .sensor_clock import SensorClock
from .uuids import PMD_DATA, PMD_MIN_MTU
from .watchdog import Action, DataWatchdog
from ...core.chunk import ACC, PPG, Chunk

log = structlog.get_logger("ppg_stream.ble")

DATA_TAG = "pmd"
CONTROL_TAG = "pmd-cp"
RATE_PROBE_FRAMES = 3  # frames per stream read at the first connection to learn the real rates
RATE_PROBE_TIMEOUT_S = 5.0
GROUPS = {Measurement.PPG: PPG, Measurement.ACC: ACC}


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
        self.timing: dict[int, FrameTiming] = {}
        self.rates: dict[str, float] = {}
        self.clock = SensorClock()
        self.watchdog = DataWatchdog()
        self.parse_errors = 0
        self.disconnections = 0
        self.device_stops = 0
        self.silence_restarts = 0
        self.silence_reconnects = 0
        self.side_frames = 0  # PPG side information (gains, operation mode): no samples
        self._control: PmdControl | None = None
        self._held: deque[Event] = deque()  # events read during set-up, handed on first by chunks()
        self._t0: float | None = None
        self._last_t: dict[int, float] = {}
        self._ppg_decoded = False
        self._rate_told: set[int] = set()
        self._last_data_s: float | None = None  # device clock: when the last samples came

    # --- set-up and teardown (per connection) ---------------------------------------------------
    async def setup(self, client: BleClient) -> None:
        """Subscribe to both characteristics (before any write), start each stream, and on the first
        connection learn the real sample rates from the device's own timestamps."""
        control = PmdControl(client, on_device_message=self.conn.subscriber(CONTROL_TAG))
        await control.subscribe()
        await client.start_notify(PMD_DATA, self.conn.subscriber(DATA_TAG))
        self._control = control
        mtu = getattr(client, "mtu_size", PMD_MIN_MTU)
        if mtu < PMD_MIN_MTU:
            log.warning("the link's MTU is below what Polar devices ask for: streaming may be refused", device=self.name, mtu=mtu, wanted=PMD_MIN_MTU)
        for measurement in self.measurements:
            self.streams[measurement] = stream = await control.start(measurement)
            timing = self.timing.setdefault(measurement, FrameTiming(stream.sample_rate_hz))
            timing.reset()
        self.clock.reset()  # the device may have restarted its clock
        self.watchdog.forget()
        now = self.conn.now()
        for measurement in self.measurements:
            self.watchdog.expect(measurement, now)
        if not self.rates:
            await self._learn_rates()
        log.info("streaming", device=self.name, **{Measurement(m).name.lower() + "_hz": round(self.rates[GROUPS[m]], 2) for m in self.streams})

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

    async def _learn_rates(self) -> None:
        """Read the first frames (kept for `chunks()`) until each stream has shown its real rate."""
        frames: dict[int, int] = {m: 0 for m in self.streams}
        probe: dict[int, FrameTiming] = {m: FrameTiming(s.sample_rate_hz) for m, s in self.streams.items()}
        deadline = self.conn.now() + RATE_PROBE_TIMEOUT_S
        while min(frames.values()) < RATE_PROBE_FRAMES:
            event = await self._wait_event(deadline)
            if event is None:
                break
            self._held.append(event)
            if event.kind == DISCONNECTED:
                break
            if event.tag != DATA_TAG:
                continue
            try:
                frame = decode_frame(event.payload, self._factor(event.payload))
            except UnknownFrameType:
                break  # chunks() refuses the device at this frame
            except BleParseError:
                continue
            if frame.measurement in probe and carries_signal(frame):
                try:
                    probe[frame.measurement].times(frame.frame_type, frame.timestamp_ns, len(frame.samples))
                except BleParseError:
                    continue
                frames[frame.measurement] += 1
        self.rates = {}
        for measurement, stream in self.streams.items():
            learnt = probe[measurement]
            learnt.reset()  # keeps the periods: the held frames are timed with the real rate from the first one
            self.timing[measurement] = learnt
            differs = learnt.rate_differs()
            self.rates[GROUPS[measurement]] = learnt.real_hz if differs and learnt.real_hz else stream.sample_rate_hz
            if differs:
                self._tell_rate(measurement, learnt)

    def _tell_rate(self, measurement: int, timing: FrameTiming) -> None:
        if measurement in self._rate_told or timing.real_hz is None:
            return
        self._rate_told.add(measurement)
        log.warning(
            "the device streams at another rate than it advertised: following its own timestamps",
            device=self.name,
            measurement=measurement_name(measurement),
            advertised_hz=timing.nominal_hz,
            real_hz=round(timing.real_hz, 2),
        )

    # --- the stream ---------------------------------------------------------------------------
    async def chunks(self) -> AsyncIterator[tuple[Chunk, float]]:
        while True:
            event = self._held.popleft() if self._held else await self._wait_event(self.watchdog.deadline())
            if event is None:
                await self._on_silence()
                continue
            if event.kind == DISCONNECTED:
                if self.conn.is_current(event):
                    await self._recover(event.host_s)
                continue
            if event.tag == CONTROL_TAG:
                await self._on_device_message(event.payload)
                continue
            chunk = self._event_to_chunk(event)
            if chunk is not None:
                yield chunk, event.wall_s

    def _event_to_chunk(self, event: Event) -> Chunk | None:
        try:
            frame = decode_frame(event.payload, self._factor(event.payload))
            if frame.measurement not in self.streams:
                return None
            if not carries_signal(frame):
                self.side_frames += 1
                return None
            chunk = self.frame_to_chunk(frame, event.host_s)
        except UnknownFrameType as e:
            if e.measurement == Measurement.PPG and not self._ppg_decoded:
                raise DeviceError(
                    f"{self.conn.address} streams PPG as frame type {e.frame_type} ({'delta-compressed' if e.compressed else 'raw'}), "
                    "which neither Polar's SDK nor ppg-stream decodes: not a supported wearable"
                ) from None
            self._malformed(e)
            return None
        except BleParseError as e:
            self._malformed(e)
            return None
        if frame.measurement == Measurement.PPG:
            self._ppg_decoded = True
        stream = self.streams[frame.measurement]
        self.watchdog.fed(frame.measurement, event.host_s, len(frame.samples) / stream.sample_rate_hz)
        self._last_data_s = event.host_s
        return chunk

    def _factor(self, payload: bytes) -> float:
        stream = self.streams.get(payload[0]) if payload else None
        return stream.factor if stream is not None else 1.0

    def frame_to_chunk(self, frame: PmdFrame, arrival_s: float) -> Chunk | None:
        """A decoded signal frame → a chunk on the stream clock (BleParseError if its time is impossible)."""
        timing = self.timing.get(frame.measurement)
        if timing is None or not len(frame.samples):
            return None
        sensor_ns = timing.times(frame.frame_type, frame.timestamp_ns, len(frame.samples))
        if timing.rate_differs():
            self._tell_rate(frame.measurement, timing)
        self.clock.observe(frame.timestamp_ns, arrival_s)
        host = self.clock.to_host(sensor_ns)
        if self._t0 is None:
            self._t0 = float(host[0])
        t = host - self._t0
        last = self._last_t.get(frame.measurement)
        if last is not None and t[0] <= last:
            # the clock offset stepped down (a frame came through faster than any before): shift this frame
            # rather than let its first samples look like time going backwards
            t = t + (last - t[0]) + timing.period_ns * 1e-9
        self._last_t[frame.measurement] = float(t[-1])
        return Chunk(GROUPS[frame.measurement], t, signal_of(frame))

    def _malformed(self, error: BleParseError) -> None:
        self.parse_errors += 1
        if self.parse_errors == 1 or self.parse_errors % 100 == 0:
            log.warning("malformed PMD frame skipped", device=self.name, error=str(error), total=self.parse_errors)

    # --- what firmware does ---------------------------------------------------------------------
    async def _on_device_message(self, payload: bytes) -> None:
        try:
            message = parse_device_message(payload)
        except BleParseError as e:
            log.info("unknown message on the PMD control point ignored", device=self.name, error=str(e))
            return
        stopped = [m for m in message.measurements if m in self.streams]
        if not stopped:
            return
        self.device_stops += 1
        log.warning("the device stopped streaming on its own: starting again", device=self.name, measurements=[measurement_name(m) for m in stopped])
        await self._restart(stopped, stop_first=False)

    async def _on_silence(self) -> None:
        now = self.conn.now()
        due = self.watchdog.overdue(now)
        if not due:
            return
        if Action.RECONNECT in due.values() or self._control is None:
            self.silence_reconnects += 1
            log.warning("still no data after restarting the measurement: reconnecting", device=self.name, measurements=[measurement_name(m) for m in due])
            await self._reconnect(self._last_data_s or now)
            return
        self.silence_restarts += 1
        log.warning(
            "no data from the device: restarting the measurement",
            device=self.name,
            measurements=[measurement_name(m) for m in due],
            silent_s=round(max(self.watchdog.silence_s(m, now) for m in due), 1),
        )
        if await self._restart(list(due), stop_first=True):
            for m in due:
                self.watchdog.restarted_for_silence(m, self.conn.now())

    async def _restart(self, measurements: list[int], stop_first: bool) -> bool:
        """Start streams again on this connection; if the device will not, reconnect. True if restarted."""
        assert self._control is not None
        try:
            for m in measurements:
                self.streams[m] = await self._control.restart(m, stop_first)
                self.timing[m].reset()  # as the SDK forgets the previous timestamps on stop
                self.watchdog.expect(m, self.conn.now())
        except (DeviceError, BleParseError, *self.conn.backend.transient_errors) as e:
            log.warning("could not restart the measurement: reconnecting", device=self.name, error=f"{e.__class__.__name__}: {e}")
            await self._reconnect(self._last_data_s or self.conn.now())
            return False
        return True

    async def _recover(self, lost_at_s: float) -> None:
        self.disconnections += 1
        log.warning("device disconnected: reconnecting", device=self.name, disconnections=self.disconnections)
        await self._reconnect(lost_at_s)

    async def _reconnect(self, lost_at_s: float) -> None:
        await self.conn.reconnect(self.setup)
        if self._t0 is not None:
            log.warning("stream resumes after a gap: filters reset, windows touching it skipped", device=self.name, gap_s=round(self.conn.now() - lost_at_s, 2))

    async def _wait_event(self, deadline: float | None) -> Event | None:
        """The next event, or None once `deadline` (device clock) has passed without one."""
        if deadline is None:
            return await self.conn.events.get()
        wall_s = max(0.0, (deadline - self.conn.now()) / self.speed)
        try:  # not wait_for: on 3.11 it drops a Ctrl-C that lands as an event arrives (see stream/runtime/tasks.py)
            async with asyncio.timeout(wall_s):
                return await self.conn.events.get()
        except TimeoutError:
            # after a host stall the deadline and a frame due before it come in one turn of the loop, the frame
            # queued just after the deadline fired: that is data, not silence
            return None if self.conn.events.empty() else self.conn.events.get_nowait()

    def summary_fields(self) -> dict[str, int]:
        """For the run's summary line."""
        return {
            "disconnections": self.disconnections,
            "malformed_frames": self.parse_errors,
            "device_stops": self.device_stops,
            "silence_restarts": self.silence_restarts,
            "silence_reconnects": self.silence_reconnects,
        }
