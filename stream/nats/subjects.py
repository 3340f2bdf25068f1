"""NATS subject names for raw chunks, heart rate and partitions: pure functions.

MQTT topics and NATS subjects carry the same names: nats-server's own MQTT listener turns a topic into
a subject by `/` → `.` and `.` → `//` (v2.10+; v2.9 refuses `.` in MQTT topics), so a device id
with a dot is one subject token here too. A gateway publishing `ppg/dev1/raw` over MQTT and one
publishing `ppg.dev1.raw` over NATS reach the same subject, and a dashboard subscribed to
`ppg/+/hr` on nats-server's MQTT port sees what a worker publishes on `ppg.<device>.hr`.

Partitioning is the server's job (subject mapping, nats-server ≥ 2.8): `<prefix>.*.raw` is mapped to
`<prefix>.raw.<partition>.<device>` with `partition(P, 1)`, a deterministic hash of the device token,
and one JetStream stream captures `<prefix>.raw.*.*`. Workers read one partition through the filter
`<prefix>.raw.<p>.*`.
"""

from __future__ import annotations

import re

_STREAM_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def topic_to_subject(topic: str) -> str:
    """An MQTT topic as nats-server names it on the NATS side (`/` → `.`, `.` → `//`)."""
    return ".".join(level.replace(".", "//") for level in topic.split("/"))


def subject_prefix(topic_prefix: str) -> str:
    """The `--topic-prefix` (an MQTT topic prefix) as a NATS subject prefix."""
    return topic_to_subject(topic_prefix.strip("/"))


def device_token(device: str) -> str:
    return device.replace(".", "//")


def token_device(token: str) -> str:
    return token.replace("//", ".")


def raw_subject(prefix: str, device: str) -> str:
    """Where a gateway publishes (before the server's partition mapping)."""
    return f"{prefix}.{device_token(device)}.raw"


def hr_subject(prefix: str, device: str) -> str:
    return f"{prefix}.{device_token(device)}.hr"


def status_subject(prefix: str, device: str) -> str:
    return f"{prefix}.{device_token(device)}.status"


def partitioned_subjects(prefix: str) -> str:
    """What the raw stream captures: every partition, every device."""
    return f"{prefix}.raw.*.*"


def partition_filter(prefix: str, partition: int) -> str:
    return f"{prefix}.raw.{partition}.*"


def parse_partitioned(prefix: str, subject: str) -> tuple[int, str] | None:
    """`<prefix>.raw.<p>.<token>` → (p, device), or None for any other shape."""
    head = prefix + ".raw."
    if not subject.startswith(head):
        return None
    p, sep, token = subject[len(head):].partition(".")
    if not sep or not p.isdigit() or not token or "." in token.replace("//", ""):
        return None
    return int(p), token_device(token)


def hr_subjects(prefix: str) -> str:
    return f"{prefix}.*.hr"


def mapping(prefix: str, partitions: int) -> tuple[str, str]:
    """The server's subject mapping (source, destination) that partitions raw chunks by device."""
    return f"{prefix}.*.raw", f"{prefix}.raw.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}"


def server_config(prefix: str, partitions: int) -> str:
    """The lines to add to every nats-server's configuration (the same on every node)."""
    source, destination = mapping(prefix, partitions)
    return f'mappings {{\n  "{source}": "{destination}"\n}}\n'


def stream_base(prefix: str) -> str:
    """Default JetStream names derive from the prefix, so deployments with different prefixes share a
    server without sharing streams: `ppg` → PPG_RAW, PPG_HR, bucket PPG_leases."""
    return _STREAM_NAME_UNSAFE.sub("_", prefix).strip("_").upper() or "PPG"
