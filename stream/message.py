"""The HR message of the contract: one JSON object per window, on `<prefix>/<device>/hr`."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


def device_id(text: str) -> str:
    """A topic-safe device id (MQTT wildcards and separators removed)."""
    cleaned = _TOPIC_UNSAFE.sub("-", text).strip("-")
    return cleaned or "device"


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


def hr_topic(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/hr"


def status_topic(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/status"
