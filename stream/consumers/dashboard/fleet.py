"""The dashboard's picture of the fleet, built only from the public MQTT topics.

One `DeviceCard` (what a card shows) per device id seen on `<prefix>/<device>/hr` or `<prefix>/<device>/status`. Memory is
bounded: each device keeps its last `history_points` chart points (pre-serialised JSON, ~10 KB), and the
table holds at most `max_devices`, evicting the device quiet for longest. A device offline for longer than
a retention is forgotten (`expire`), and one can be removed on request (`remove`). Pure: the caller passes
the topic, the payload and the arrival time, and takes the changes as JSON for the browsers.

Missed windows are gaps in `window` (or `seq` for a device's own HR). Delivery is at-least-once and
may reorder a little after a reconnection, so a bit mask of the last 64 windows tells a redelivered
duplicate (ignored) from a late arrival that fills a gap (the gap is un-counted). A window number that
goes back with a newer `ts` than the last message is a new stream (a replay started again): the card
starts afresh.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime

from .band import band_half_width

HISTORY_POINTS = 150  # 5 minutes of windows at the 2 s hop
MAX_DEVICES = 2000
MAX_DEVICE_ID_CHARS = 128
MAX_PAYLOAD_BYTES = 16_384
MAX_MODEL_CHARS = 80
REORDER_WINDOWS = 64
_MASK = (1 << REORDER_WINDOWS) - 1
STATUSES = ("online", "offline")


@dataclass
class DeviceCard:
    id: str
    status: str | None = None
    bpm: float | None = None
    confidence: float | None = None
    reliable: bool = True  # the last message's `reliable` (absent: true); false shows "no reliable estimate"
    model: str | None = None
    source: str | None = None
    late: int = 0
    missed: int = 0
    messages: int = 0
    duplicates: int = 0
    t_end: float | None = None
    last_seen: float | None = None  # arrival (epoch s) of the last HR message
    offline_since: float | None = None  # when this dashboard learnt the device is offline (epoch s)
    restarts: int = 0
    _first_key: int | None = None
    _last_key: int | None = None
    _last_ts: float | None = None
    _seen: int = 0  # bit i set: window (_last_key - i) arrived
    history: deque[str] = field(default_factory=deque)
    fresh: list[str] = field(default_factory=list)  # points not yet sent to browsers
    reset: bool = False  # history restarted since the last changes were taken

    def scalars(self, now: float) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "bpm": self.bpm,
            "conf": self.confidence,
            "ok": self.reliable,
            "model": self.model,
            "source": self.source,
            "late": self.late,
            "missed": self.missed,
            "n": self.messages,
            "t": self.t_end,
            "age": None if self.last_seen is None else round(max(now - self.last_seen, 0.0), 1),
        }


@dataclass(frozen=True)
class HrReading:
    """The fields of one HR message the dashboard uses, checked."""

    bpm: float
    key: int | None  # `window`, or `seq` for a device's own HR
    ts: float | None
    t_end: float | None
    confidence: float | None
    late: bool
    model: str | None
    source: str
    reliable: bool = True  # false: no reliable estimate (the stream's --min-confidence); absent means true


def parse_hr(payload: bytes) -> HrReading | None:
    """None for anything that is not an HR message of the contract (counted, never fatal)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        msg = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(msg, dict):
        return None
    bpm = _finite(msg.get("bpm"))
    if bpm is None or not 0 < bpm < 1000:
        return None
    key = msg.get("window", msg.get("seq"))
    confidence = _finite(msg.get("confidence"))
    model = msg.get("model")
    return HrReading(
        bpm=round(bpm, 1),
        key=key if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < 2**53 else None,
        ts=_parse_ts(msg.get("ts")),
        t_end=_finite(msg.get("t_end")),
        confidence=confidence if confidence is not None and 0 <= confidence <= 1 else None,
        late=msg.get("late") is True,
        model=model[:MAX_MODEL_CHARS] if isinstance(model, str) else None,
        source="device" if msg.get("source") == "device" else "model",
        reliable=msg.get("reliable") is not False,
    )


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _parse_ts(value: object) -> float | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def chart_point(t_end: float, bpm: float, confidence: float | None) -> str:
    band = band_half_width(confidence)
    return f"[{round(t_end, 1)},{bpm},{'null' if band is None else round(band, 1)}]"


class Fleet:
    def __init__(self, prefix: str, max_devices: int = MAX_DEVICES, history_points: int = HISTORY_POINTS) -> None:
        self.prefix = prefix
        self.max_devices = max_devices
        self.history_points = history_points
        self.devices: OrderedDict[str, DeviceCard] = OrderedDict()  # least recently active first
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self.received = 0
        self.ignored = 0  # malformed payloads, unknown topics, over-long ids
        self.evicted = 0

    def handle(self, topic: str, payload: bytes, now: float) -> None:
        """One MQTT message on `<prefix>/<device>/hr` or `<prefix>/<device>/status`."""
        self.received += 1
        parsed = self._split_topic(topic)
        if parsed is None:
            self.ignored += 1
            return
        device, kind = parsed
        if kind == "status":
            self._handle_status(device, payload, now)
        else:
            reading = parse_hr(payload)
            if reading is None:
                self.ignored += 1
                return
            self._handle_hr(self._device(device), reading, now)

    def _split_topic(self, topic: str) -> tuple[str, str] | None:
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        device, _, kind = topic[len(head):].rpartition("/")
        if kind not in ("hr", "status") or not device or "/" in device or len(device) > MAX_DEVICE_ID_CHARS:
            return None
        return device, kind

    def _device(self, device: str) -> DeviceCard:
        state = self.devices.get(device)
        if state is None:
            while len(self.devices) >= self.max_devices:
                gone, _ = self.devices.popitem(last=False)
                self._forget(gone)
                self.evicted += 1
            # reset: a browser that still shows an evicted or removed card of that id starts it afresh
            state = self.devices[device] = DeviceCard(device, history=deque(maxlen=self.history_points), reset=True)
            self._removed.discard(device)
        else:
            self.devices.move_to_end(device)
        self._dirty.add(device)
        return state

    def _forget(self, device: str) -> None:
        self._dirty.discard(device)
        self._removed.add(device)

    def _handle_status(self, device: str, payload: bytes, now: float) -> None:
        text = payload.decode("utf-8", "replace").strip().lower()
        if not text:  # the retained status was cleared: the device is gone
            self.remove(device)
            return
        if text not in STATUSES:
            self.ignored += 1
            return
        card = self._device(device)
        card.status = text
        # a status retained before this dashboard started is as old as the dashboard as far as it can tell
        card.offline_since = (card.offline_since or now) if text == "offline" else None

    def remove(self, device: str) -> bool:
        """Forget a device (its card goes from every browser); False if it was not there."""
        if self.devices.pop(device, None) is None:
            return False
        self._forget(device)
        return True

    def expire(self, now: float, retention_s: float) -> list[str]:
        """Forget the devices offline for longer than `retention_s`; the ids forgotten."""
        gone = [d for d, card in self.devices.items()
                if card.status == "offline" and card.offline_since is not None and now - card.offline_since > retention_s]
        for device in gone:
            self.remove(device)
        return gone

    def _handle_hr(self, state: DeviceCard, r: HrReading, now: float) -> None:
        if not self._accept_key(state, r):
            return
        state.messages += 1
        state.late += r.late
        state._last_ts = r.ts if r.ts is not None else state._last_ts
        state.bpm, state.confidence, state.model, state.source = r.bpm, r.confidence, r.model, r.source
        state.reliable = r.reliable
        state.last_seen = now
        if r.t_end is not None:
            if state.t_end is not None and r.t_end < state.t_end:  # a stream without window numbers restarted
                self._restart(state, r)
            state.t_end = r.t_end
            if not r.reliable:  # no reliable estimate: a gap in the line, not a number
                return
            point = chart_point(r.t_end, r.bpm, r.confidence)
            state.history.append(point)
            state.fresh.append(point)
            if len(state.fresh) > self.history_points:
                del state.fresh[: len(state.fresh) - self.history_points]

    def _accept_key(self, state: DeviceCard, r: HrReading) -> bool:
        """Window bookkeeping; False for a duplicate (ignored) or a late arrival (counted, not displayed)."""
        key = r.key
        if key is None:
            return True
        last = state._last_key
        if last is None:
            state._first_key = state._last_key = key
            state._seen = 1
            return True
        if key > last:
            state.missed += key - last - 1
            state._seen = ((state._seen << (key - last)) | 1) & _MASK
            state._last_key = key
            return True
        if r.ts is not None and state._last_ts is not None and r.ts > state._last_ts:
            self._restart(state, r)
            return True
        back = last - key
        if back < REORDER_WINDOWS and not state._seen >> back & 1:
            state._seen |= 1 << back
            if state._first_key is not None and key > state._first_key:
                state.missed -= 1  # it was counted as missed when the window after it came
            state.messages += 1
            state.late += r.late
        else:
            state.duplicates += 1
        return False

    def _restart(self, state: DeviceCard, r: HrReading) -> None:
        state.restarts += 1
        state.late = state.missed = state.messages = 0
        state._first_key = state._last_key = r.key
        state._seen = 1
        state.t_end = None
        state.history.clear()
        state.fresh.clear()
        state.reset = True

    def snapshot_json(self, now: float) -> str:
        """Every device with its whole history: what a browser that just connected needs."""
        return "[" + ",".join(_device_json(s, s.history, now, reset=True) for s in self.devices.values()) + "]"

    def take_changes_json(self, now: float) -> str | None:
        """Devices changed since the last call (new points only), removals; None when nothing changed."""
        if not self._dirty and not self._removed:
            return None
        parts = [json.dumps({"id": d, "removed": True}) for d in sorted(self._removed)]
        for device in self._dirty:
            state = self.devices[device]
            parts.append(_device_json(state, state.fresh, now, reset=state.reset))
            state.fresh = []
            state.reset = False
        self._dirty.clear()
        self._removed.clear()
        return "[" + ",".join(parts) + "]"

    def counts(self) -> dict:
        online = sum(1 for s in self.devices.values() if s.status == "online")
        offline = sum(1 for s in self.devices.values() if s.status == "offline")
        return {"devices": len(self.devices), "online": online, "offline": offline,
                "received": self.received, "ignored": self.ignored, "evicted": self.evicted}


def _device_json(state: DeviceCard, points, now: float, reset: bool) -> str:
    head = json.dumps({**state.scalars(now), "reset": reset})
    return head[:-1] + ',"pts":[' + ",".join(points) + "]}"
