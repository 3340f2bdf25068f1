"""The HR message of the contract: one JSON object per window, on `<prefix>/<device>/hr`."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timezone

MAX_TOPIC_BYTES = 65_535  # MQTT: a topic name is a UTF-8 string with a 16-bit length
MAX_DEVICE_ID_BYTES = 4_096
TOPIC_LEAVES = ("hr", "status", "raw")
# the longest topic is <prefix>/<device>/status: bounding both parts keeps every topic legal
MAX_PREFIX_BYTES = MAX_TOPIC_BYTES - MAX_DEVICE_ID_BYTES - len("//") - max(len(leaf) for leaf in TOPIC_LEAVES)
DEFAULT_MIN_CONFIDENCE = 0.5  # below this a message says `reliable: false` (ppg-stream --min-confidence)
_PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


class DeviceIdError(ValueError):
    """A device id that cannot name a topic level (empty, not UTF-8, or too long)."""


def _needs_escape(c: str) -> bool:
    """MQTT level separators and wildcards, our escape character, and what a reader cannot see or type."""
    if c in "/+#%" or c.isspace():
        return True
    code = ord(c)
    if 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE:  # Unicode non-characters
        return True
    return unicodedata.category(c) in ("Cc", "Cf")  # controls (NUL included) and invisible format marks


def _escape(c: str) -> str:
    return "".join(f"%{b:02X}" for b in c.encode("utf-8"))


def device_id(text: str) -> str:
    """The device's topic level: the id with `/ + # %`, whitespace, controls and invisible characters
    percent-encoded (UTF-8 bytes as %XX); every other character, non-ASCII included, is kept.

    An id is read as percent-encoded text first (unless its escapes do not decode to UTF-8, then
    its % are plain characters), so `a%2Fb` and `a/b` are the same device and
    `device_id(device_id(x)) == device_id(x)`; distinct ids give distinct levels. Raises
    DeviceIdError for an empty id, text that is not UTF-8, or a level over MAX_DEVICE_ID_BYTES.
    """
    if not isinstance(text, str) or not text:
        raise DeviceIdError("a device id cannot be empty")
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise DeviceIdError(f"device id {text!r:.80} is not valid UTF-8 text") from None
    try:
        identity = _PERCENT_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw).decode("utf-8")
    except UnicodeDecodeError:
        identity = text  # "%ff" is no escape of UTF-8 text: its % is a plain character
    level = "".join(_escape(c) if _needs_escape(c) else c for c in identity)
    size = len(level.encode("utf-8"))
    if size > MAX_DEVICE_ID_BYTES:
        raise DeviceIdError(f"device id is {size:,} bytes as a topic level; at most {MAX_DEVICE_ID_BYTES:,}")
    return level


def is_device_id(level: str) -> bool:
    """True if a topic level is exactly what `device_id` makes (e.g. the <device> of `<prefix>/<device>/raw`),
    so a device named there keeps that name on every topic it gets."""
    try:
        return device_id(level) == level
    except DeviceIdError:
        return False


def topic_prefix_problem(prefix: str) -> str | None:
    """Why a topic prefix cannot start the project's topics, or None if it can."""
    if not prefix.strip("/"):
        return "must be non-empty"
    if "#" in prefix or "+" in prefix:
        return "must contain no MQTT wildcards (# +)"
    if prefix.startswith("$"):
        return "must not start with '$' (topics beginning with $ belong to the broker, e.g. $SYS)"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in prefix):
        return "must be UTF-8 text without control characters"
    size = len(prefix.encode("utf-8"))
    if size > MAX_PREFIX_BYTES:
        return f"is {size:,} bytes; at most {MAX_PREFIX_BYTES:,} (an MQTT topic is at most {MAX_TOPIC_BYTES:,} bytes)"
    return None


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hr_message(device: str, window: int, t_end: float, ts: str, bpm: float, confidence: float, latency_ms: float, late: bool, model: str,
               reliable: bool = True) -> dict:
    """`reliable` is false where the estimate is no reliable heart rate (its confidence below the stream's
    --min-confidence): consumers show "no reliable estimate" there, not the number (docs/messages.md)."""
    return {
        "device": device,
        "window": window,
        "t_end": t_end,
        "ts": ts,
        "bpm": round(bpm, 1),
        "confidence": round(confidence, 3),
        "latency_ms": round(latency_ms, 3),
        "late": late,
        "model": model,
        "reliable": bool(reliable),
    }


def device_hr_message(device: str, seq: int, t_end: float, ts: str, bpm: int, rr_s: tuple[float, ...], contact: bool | None, energy_kj: int | None) -> dict:
    """The HR a device computed itself (Heart Rate Service), passed through with its RR intervals.

    No `window`/`confidence`/`latency_ms`: the device reports about once a second on its own schedule.
    Model messages carry no `source` key (the contract's fields only); these say `source: device`.
    """
    return {
        "device": device,
        "source": "device",
        "seq": seq,
        "t_end": round(t_end, 3),
        "ts": ts,
        "bpm": bpm,
        "rr_ms": [round(r * 1000.0, 1) for r in rr_s],
        "contact": contact,
        "energy_kj": energy_kj,
        "model": "device",
    }


def hr_topic(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/hr"


def status_topic(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/status"


def service_status_topic(prefix: str, service: str) -> str:
    """A process's own retained status (its last will), beside the devices' topics, never matching
    `<prefix>/+/status`."""
    return f"{prefix}/_service/{service}/status"
