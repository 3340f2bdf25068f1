"""Raw chunks from gateways (`<prefix>/<device>/raw`) into the runtime: topic → device, payload →
chunk, and each device's stream identity (stream id, sequence, time) → duplicate, restart or next.
The MQTT intake hands over topics (`on_message`); the NATS intake, which knows the device from the
partitioned subject, hands over the device and a ticket (`accept`): the same rules for both.

Nothing a payload says can crash the service or touch another device: a bad topic or payload is
counted and logged (rate-limited) and dropped; a device beyond `--max-devices` is refused and
counted. A chunk repeated by an at-least-once delivery (same stream, sequence not advancing) is
dropped and counted. A new stream id, a sequence that jumps far back, or time going back (or leaping
forward by more than TIME_JUMP_S) within a group means the device restarted: its queued chunks are
processed, then it starts a new epoch. Two senders on one device id do not take turns resetting it:
a chunk of another stream id while the device's own stream is live (a chunk within STREAM_LIVE_S) is
held until the device's next chunk; if that one is of the device's own stream, the held chunk was an
interloper's and is dropped and counted (`contested_chunks`); if it is of the new stream, the device
really restarted and both go on in its new epoch. A device may start RESTART_LIMIT epochs in five
minutes; beyond, chunks of yet another stream are dropped and counted (`refused_restarts`), while a
stream that brought more chunks than the current one (the device's own, back) always takes it back. One chunk at most
is held per device.
"""

from __future__ import annotations

import time

import structlog

from ..core.message import is_device_id
from ...replay.recording import MAX_SOURCE_FS_HZ, MIN_SOURCE_FS_HZ, source_rate_problem
from ..core.raw_chunk import RawChunkError, RawHeader, decode_raw_header
from ..runtime.pipeline import Runtime, Ticket
from ..runtime.throttle import Throttle

log = structlog.get_logger("ppg_stream.serve")

REORDER_WINDOW = 256  # sequence numbers this far behind the last one are redeliveries, not a restart
TIME_BACK_S = 1.0  # a group's first-sample time going back more than this is a restart
# a group's time leaping forward this much between consecutive chunks is a clock jump or a hole longer
# than any idle timeout: a new epoch, not a hole of millions of skipped windows
TIME_JUMP_S = 300.0
STREAM_LIVE_S = 2.0  # a stream that sent a chunk this recently is live: another stream id cannot take the device over
TOPIC_CACHE = 65_536  # topics whose device id was checked, kept (then forgotten all at once: bounded, whatever arrives)


class RawIngest:
    def __init__(self, runtime: Runtime, prefix: str) -> None:
        self.runtime = runtime
        self.prefix = prefix
        self.chunks = 0
        self.malformed = 0
        self.bad_topics = 0
        self._malformed_log = Throttle(10.0)
        self._restart_log = Throttle(1.0)
        self._churn_log = Throttle(10.0)
        self._contest_log = Throttle(10.0)
        self._devices: dict[str, str] = {}  # topic → device, for topics already checked
        self._clock_read = float("-inf")
        self._clock_offset = 0.0

    def device_of(self, topic: str) -> str | None:
        """`<prefix>/<device>/raw` → device, or None for a topic that is not exactly that shape."""
        head, sep, rest = topic.partition(self.prefix + "/")
        if head or not sep or not rest.endswith("/raw"):
            return None
        device = rest[: -len("/raw")]
        return device if is_device_id(device) else None

    def on_message(self, topic: str, payload: bytes, received: float) -> None:
        """One MQTT message; returns quickly, never raises for anything a sender can put in it."""
        device = self._devices.get(topic)
        if device is None:
            device = self.device_of(topic)
            if device is None:
                self.bad_topics += 1
                self.reject(topic, "topic is not <prefix>/<device>/raw with a valid device id")
                return
            if len(self._devices) >= TOPIC_CACHE:
                self._devices.clear()
            self._devices[topic] = device
        self.accept(device, payload, received, None, topic)

    def on_messages(self, messages: list, received: float) -> list[tuple[str, Exception]]:
        """The MQTT messages (topic, payload, …) of one socket read, in order; returns the ones a bug
        made fail, (topic, exception), each failing alone (the subscriber counts and logs them)."""
        devices = self._devices
        failed: list[tuple[str, Exception]] = []
        for message in messages:
            topic = message[0]
            try:
                device = devices.get(topic)
                if device is None:
                    self.on_message(topic, message[1], received)
                else:
                    self.accept(device, message[1], received, None, topic)
            except Exception as e:  # a bug must not take the rest of the read with it
                failed.append((topic, e))
        return failed

    def accept(self, device: str, payload: bytes, received: float, ticket: Ticket | None, where: str) -> bool:
        """One payload of a known device (`where`: its topic or subject, for the log). True when the
        chunk went to the runtime (its ticket, if any, is then done by the runtime); False when it was
        refused, malformed or a duplicate (nothing to wait for)."""
        try:
            raw = decode_raw_header(payload)
        except RawChunkError as e:
            self.reject(where, str(e))
            return False
        if not MIN_SOURCE_FS_HZ <= raw.rate_hz <= MAX_SOURCE_FS_HZ:
            self.reject(where, source_rate_problem(raw.rate_hz) or "sampling rate out of range")
            return False
        self.chunks += 1
        runtime = self.runtime
        state = runtime.table.get(device)
        if state is None:
            state = runtime.open_device(device, raw.groups)
            if state is None:
                return False  # refused: the table is full (counted by the runtime)
        state.tally.received_chunks += 1
        if state.held is not None:  # a chunk of another stream waits to be confirmed by the next one
            held, state.held = state.held, None
            if raw.stream_id == held[0].stream_id:  # a second chunk of it: a real restart
                if not self._new_epoch(state, held[0], device):
                    return False
                self._enqueue(state, *held, None)
            else:  # the device's own stream went on: the held chunk was an interloper's
                self._contest(state, held[0], device)
        elif state.stream_id is not None and raw.stream_id != state.stream_id and time.monotonic() - state.last_seen < STREAM_LIVE_S:
            state.held = (raw, payload, received)  # another stream while the device's own is live: wait for a second chunk of it
            return False
        if self._restarted(state, raw):
            if not self._new_epoch(state, raw, device):
                return False
        elif raw.seq <= state.last_seq:
            state.tally.duplicate_chunks += 1
            return False
        self._enqueue(state, raw, payload, received, ticket)
        return True

    def _enqueue(self, state, raw: RawHeader, payload: bytes, received: float, ticket: Ticket | None) -> None:
        if state.last_seq >= 0 and raw.seq > state.last_seq + 1:  # a hole in the sequence (bridged or not, counted)
            state.tally.missing_chunks += raw.seq - state.last_seq - 1
        state.count_chunk(raw.stream_id)
        state.stream_id = raw.stream_id
        state.last_seq = raw.seq
        state.last_t0[raw.group] = raw.t0
        if raw.sent:  # the window's age counts from when the gateway sent it: broker queues included
            if received - self._clock_read > 1.0:  # perf_counter - Unix time, read again each second (the wall clock may be stepped)
                self._clock_read = received
                self._clock_offset = time.perf_counter() - time.time()
            received = min(received, raw.sent + self._clock_offset)
        # the header tuple (it holds the payload) is the queued chunk: no array per chunk here; the
        # preprocessor reads the samples of all the device's queued chunks in one batch
        self.runtime.offer(state, raw, received, raw.rate_hz, ticket)

    def _new_epoch(self, state, raw: RawHeader, device: str) -> bool:
        """Restart the device for `raw`'s stream, unless it restarted too often lately (then False)."""
        if not state.may_restart(raw.stream_id, time.monotonic()):
            if self._churn_log.ready():
                log.warning("device restarts too often: chunks of yet another stream dropped", device=device[:200],
                            refused=state.tally.refused_restarts, dropped_since_last_log=self._churn_log.take())
            return False
        if self._restart_log.ready():
            log.info("device restarted: new epoch", device=device[:200], stream_id=raw.stream_id, seq=raw.seq, restarts_since_last_log=self._restart_log.take())
        self.runtime.restart_device(state, raw.groups)
        return True

    def _contest(self, state, raw: RawHeader, device: str) -> None:
        state.tally.contested_chunks += 1
        if self._contest_log.ready():
            log.warning("chunk of a second stream for a live device dropped (two senders on one device id?)", device=device[:200],
                        stream_id=raw.stream_id, dropped=state.tally.contested_chunks, dropped_since_last_log=self._contest_log.take())

    @staticmethod
    def _restarted(state, raw: RawHeader) -> bool:
        if state.stream_id is None:
            return False
        if raw.stream_id != state.stream_id or raw.groups != state.groups:
            return True
        if raw.seq < state.last_seq - REORDER_WINDOW:
            return True
        last_t0 = state.last_t0.get(raw.group)
        return raw.seq > state.last_seq and last_t0 is not None and not last_t0 - TIME_BACK_S <= raw.t0 <= last_t0 + TIME_JUMP_S

    def reject(self, where: str, reason: str) -> None:
        self.malformed += 1
        if self._malformed_log.ready():
            log.warning("raw payload dropped", topic=where[:200], reason=reason, dropped_since_last_log=self._malformed_log.take(), total=self.malformed)

    def counts(self) -> dict:
        return {"raw_chunks": self.chunks, "malformed_payloads": self.malformed}
