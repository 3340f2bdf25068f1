"""The HR message of the contract: one JSON object per window, on `<prefix>/<device>/hr`."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


def device_id(text: str) -> str:
    """A topic-safe device id (MQTT wildcards and separators removed)."""
    cleaned = _TOPIC_UNSAFE.sub("-", text).strip("-")
    return cleaned or "device"


def is_topic_safe_device_id(text: str) -> bool:
    """A topic segment `device_id` would produce unchanged (what a gateway publishes under)."""
    return bool(text) and device_id(text) == text


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hr_message(device: str, window: int, t_end: float, ts: str, bpm: float, confidence: float, latency_ms: float, late: bool, model: str) -> dict:
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
