"""Home Assistant MQTT discovery: the retained config that makes each device's heart rate appear in
Home Assistant as a sensor by itself, and the empty retained config that removes it.

Follows Home Assistant's MQTT discovery documentation (integrations/mqtt, "Discovery messages", and
integrations/sensor.mqtt): single-component discovery of a `sensor` on the topic
`<discovery_prefix>/sensor/<node_id>/<object_id>/config`, where node_id and object_id keep to the
documented character class [a-zA-Z0-9_-]. The sensor reads the contract's HR message as it is published
(no extra topics): state from `bpm`, attributes from the same JSON, availability from the device's
retained `online`/`offline` status (and, when given, the publishing service's own status: both must be
`online`). Pure functions: the caller publishes the (topic, payload) pairs retained.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from importlib import metadata

from ...core.message import hr_topic, status_topic

DEFAULT_DISCOVERY_PREFIX = "homeassistant"
MANUFACTURER = "ppg-stream"
ORIGIN_NAME = "ppg-stream"
ICON = "mdi:heart-pulse"
UNIT = "bpm"  # no Home Assistant device class covers heart rate: a plain measurement with its unit
PAYLOAD_ONLINE, PAYLOAD_OFFLINE = "online", "offline"
# A message that says `reliable: false` (its confidence below the stream's --min-confidence) renders as
# None, which Home Assistant's MQTT sensor shows as "unknown": no number where there is no reliable
# estimate. Messages without the field (a device's own HR, older streams) are reliable.
VALUE_TEMPLATE = "{{ value_json.bpm if value_json.get('reliable', true) else None }}"
# attributes shown beside the state; .get(): a device's own HR (source: device) has no confidence/late
ATTRIBUTES_TEMPLATE = (
    "{{ {'confidence': value_json.get('confidence'), 'late': value_json.get('late'),"
    " 'model': value_json.get('model'), 'reliable': value_json.get('reliable', true)} | tojson }}"
)
# A sensor with no new heart rate for this many hops becomes unavailable in Home Assistant (`expire_after`):
# a publisher that stalls while its connection (and so its `online` status) stays up no longer leaves the
# last value showing. Ten hops (20 s at the 2 s hop) ride out a short gap in the signal, whose windows are
# skipped (every window touching a hole: four and the hole), without showing a stale number for long.
EXPIRE_AFTER_HOPS = 10
DEFAULT_HOP_S = 2.0
_NOT_HA_ID = re.compile(r"[^a-zA-Z0-9_-]")


def ha_id(text: str) -> str:
    """`text` in Home Assistant's id characters [a-zA-Z0-9_-]; ids that had to change get a short hash
    of the original, so `wrist.1` and `wrist:1` stay two devices."""
    cleaned = _NOT_HA_ID.sub("_", text)
    if cleaned != text or not cleaned:
        cleaned = f"{cleaned}_{hashlib.sha1(text.encode()).hexdigest()[:6]}"
    return cleaned


def discovery_topic(prefix: str, device: str, discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX) -> str:
    _check(prefix, device, discovery_prefix)
    return f"{discovery_prefix}/sensor/{ha_id(prefix)}/{ha_id(device)}_heart_rate/config"


def unique_id(prefix: str, device: str) -> str:
    """Stable across runs and machines: the same prefix and device are the same sensor in Home Assistant."""
    return f"ppg_stream_{ha_id(prefix)}_{ha_id(device)}_heart_rate"


def discovery_messages(
    prefix: str,
    device: str,
    model_label: str,
    sw_version: str,
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX,
    service_status_topic: str | None = None,
    hop_s: float = DEFAULT_HOP_S,
) -> list[tuple[str, bytes]]:
    """The retained discovery config(s) for one device: (topic, payload) pairs to publish retained.
    `hop_s`: the model's hop; the sensor expires after EXPIRE_AFTER_HOPS of them without a message."""
    topic = discovery_topic(prefix, device, discovery_prefix)
    state = hr_topic(prefix, device)
    availability = [_availability(status_topic(prefix, device))]
    config: dict = {
        "name": "Heart rate",  # shown as "<device> Heart rate"
        "unique_id": unique_id(prefix, device),
        "state_topic": state,
        "value_template": VALUE_TEMPLATE,
        "unit_of_measurement": UNIT,
        "state_class": "measurement",
        "suggested_display_precision": 0,
        "expire_after": expire_after_s(hop_s),
        "icon": ICON,
        "json_attributes_topic": state,
        "json_attributes_template": ATTRIBUTES_TEMPLATE,
        "qos": 1,
        "availability": availability,
        "device": {
            "identifiers": [f"ppg_stream_{ha_id(prefix)}_{ha_id(device)}"],
            "name": device,
            "model": model_label,
            "manufacturer": MANUFACTURER,
            "sw_version": sw_version,
        },
        "origin": {"name": ORIGIN_NAME, "sw_version": sw_version},
    }
    if service_status_topic is not None:
        if not service_status_topic or any(c in service_status_topic for c in "#+"):
            raise ValueError(f"service status topic {service_status_topic!r}: must be non-empty and contain no MQTT wildcards")
        availability.append(_availability(service_status_topic))
        config["availability_mode"] = "all"  # the device is online AND the service that publishes it is
    return [(topic, json.dumps(config, separators=(",", ":")).encode())]


def expire_after_s(hop_s: float) -> int:
    """Whole seconds (Home Assistant's unit), at least one."""
    return max(1, math.ceil(EXPIRE_AFTER_HOPS * hop_s))


def removal_messages(prefix: str, device: str, discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX) -> list[tuple[str, bytes]]:
    """Empty retained configs: Home Assistant deletes the sensor (and the device, once it has no other
    entity), and the broker forgets the retained config."""
    return [(discovery_topic(prefix, device, discovery_prefix), b"")]


def ppg_stream_version() -> str:
    """The installed package's version, for `sw_version`."""
    try:
        return metadata.version("ppg-stream")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _availability(topic: str) -> dict:
    return {"topic": topic, "payload_available": PAYLOAD_ONLINE, "payload_not_available": PAYLOAD_OFFLINE}


def _check(prefix: str, device: str, discovery_prefix: str) -> None:
    for what, value in (("topic prefix", prefix), ("discovery prefix", discovery_prefix)):
        if not value.strip("/") or any(c in value for c in "#+"):
            raise ValueError(f"{what} {value!r}: must be non-empty and contain no MQTT wildcards (# +)")
    if not device or any(c in device for c in "#+/"):
        raise ValueError(f"device id {device!r}: must be non-empty, without '/', '#' or '+'")
