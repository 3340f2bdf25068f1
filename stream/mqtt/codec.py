"""MQTT 3.1.1 packets as pure functions: encoders for what a client sends, an incremental decoder for
what a broker sends. No I/O here (that is `connection.py` beside it), so every byte is testable.

Why our own codec: the benchmark (`benchmarks/bench_mqtt.py`) measured the per-message cost of aiomqtt,
paho-mqtt and gmqtt against this one; a QoS-1 publish here is a few dict/bytes operations and a
PUBACK is four bytes read in a loop, with no future, task, lock or condition per message.
Only the parts of the protocol a QoS 0/1 client needs: CONNECT/CONNACK, PUBLISH/PUBACK,
SUBSCRIBE/SUBACK, PINGREQ/PINGRESP, DISCONNECT.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from ..core.message import MAX_TOPIC_BYTES

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    0x10, 0x20, 0x30, 0x40, 0x80, 0x90, 0xC0, 0xD0, 0xE0,
)
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
MAX_REMAINING_LENGTH = 268_435_455  # four bytes of variable-length integer (MQTT 3.1.1 §2.2.3)
SUBACK_FAILURE = 0x80

# CONNACK return codes (MQTT 3.1.1 §3.2.2.3)
CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
REFUSED_CREDENTIALS = frozenset({4, 5})

_U16 = struct.Struct(">H")


class MqttProtocolError(ValueError):
    """The peer sent bytes that are not MQTT 3.1.1 as a broker speaks it."""


def encode_length(n: int) -> bytes:
    """The variable-length "remaining length" of a fixed header."""
    if not 0 <= n <= MAX_REMAINING_LENGTH:
        raise ValueError(f"packet too large: {n} bytes")
    if n < 128:
        return bytes((n,))
    if n < 16384:  # the common case for HR messages and raw chunks, without the loop
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def encode_string(text: str | bytes) -> bytes:
    """A UTF-8 string (or binary data) with its 2-byte length."""
    data = text.encode() if isinstance(text, str) else text
    if len(data) > MAX_TOPIC_BYTES:
        raise ValueError(f"MQTT strings are at most {MAX_TOPIC_BYTES} bytes, got {len(data)}")
    return _U16.pack(len(data)) + data


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def encode_connect(
    client_id: str,
    keepalive_s: int,
    clean_session: bool = True,
    will: Will | None = None,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    flags = 0x02 if clean_session else 0
    payload = [encode_string(client_id)]
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += [encode_string(will.topic), encode_string(will.payload)]
    if username is not None:
        flags |= 0x80
        payload.append(encode_string(username))
        if password is not None:
            flags |= 0x40
            payload.append(encode_string(password))
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + _U16.pack(keepalive_s) + b"".join(payload)
    return bytes((CONNECT,)) + encode_length(len(body)) + body


def publish_head(topic: bytes, payload_len: int, qos: int = 0, retain: bool = False, dup: bool = False) -> bytes:
    """A PUBLISH up to its topic (`encode_string`-ed: callers cache it per device). With QoS 1 the
    2-byte packet id comes next, then the payload: a sender that numbers packets only when it sends
    them (after a reconnect, again) keeps this part ready."""
    first = PUBLISH | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    return bytes((first,)) + encode_length(len(topic) + (2 if qos else 0) + payload_len) + topic


def encode_publish(topic: bytes, payload: bytes, qos: int = 0, packet_id: int = 0, retain: bool = False, dup: bool = False) -> bytes:
    head = publish_head(topic, len(payload), qos, retain, dup)
    return b"".join((head, _U16.pack(packet_id), payload)) if qos else head + payload


def encode_puback(packet_id: int) -> bytes:
    return b"\x40\x02" + _U16.pack(packet_id)


def encode_subscribe(packet_id: int, topic_filter: str, qos: int) -> bytes:
    body = _U16.pack(packet_id) + encode_string(topic_filter) + bytes((qos,))
    return bytes((SUBSCRIBE | 0x02,)) + encode_length(len(body)) + body


class Publish(NamedTuple):  # a tuple: made for every message received, so as cheap as Python allows
    topic: str
    payload: bytes
    qos: int
    packet_id: int
    retain: bool


def parse_publish(flags: int, body: bytes) -> Publish:
    """The variable header and payload of a PUBLISH whose fixed-header flags are `flags`."""
    qos = (flags >> 1) & 0x03
    if qos == 3 or len(body) < 2:
        raise MqttProtocolError("malformed PUBLISH")
    n = (body[0] << 8) | body[1]
    start = 2 + n + (2 if qos else 0)
    if start > len(body):
        raise MqttProtocolError("PUBLISH shorter than its topic")
    try:
        topic = body[2 : 2 + n].decode()
    except UnicodeDecodeError:
        raise MqttProtocolError("PUBLISH topic is not UTF-8") from None
    packet_id = ((body[2 + n] << 8) | body[3 + n]) if qos else 0
    return Publish(topic, body[start:], qos, packet_id, bool(flags & 0x01))


class PacketDecoder:
    """Splits a byte stream into (packet type, flags, body) tuples, however the stream was chunked.

    A packet whose body exceeds `max_packet_bytes` is never buffered whole: its first bytes (enough for a
    PUBLISH's topic and packet id, so a QoS-1 one can still be acknowledged) come out as type `OVERSIZED`
    with the packet's original first byte as flags, and the rest is skipped.
    """

    OVERSIZED = -1
    _HEAD_KEEP = 2 + MAX_TOPIC_BYTES + 2

    def __init__(self, max_packet_bytes: int = 1 << 20) -> None:
        self.max_packet_bytes = max_packet_bytes
        self._buf = b""
        self._skip = 0  # bytes of an oversized packet still to discard
        self._oversized: tuple[int, int] | None = None  # (first byte, body length) while collecting its head

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return []
            data, self._skip = data[self._skip :], 0
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, int, bytes]] = []
        pos, n = 0, len(buf)
        while True:
            if self._oversized is not None:
                first, length = self._oversized
                keep = min(length, self._HEAD_KEEP)
                if n - pos < keep:
                    break
                out.append((self.OVERSIZED, first, bytes(buf[pos : pos + keep])))
                self._oversized = None
                rest = length - keep
                if n - pos - keep >= rest:
                    pos += keep + rest
                    continue
                self._skip = rest - (n - pos - keep)
                pos = n
                break
            if n - pos < 2:
                break
            first = buf[pos]
            length = buf[pos + 1]
            head = 2
            if length & 0x80:
                length &= 0x7F
                shift = 7
                while True:
                    if pos + head >= n:
                        length = -1
                        break
                    byte = buf[pos + head]
                    head += 1
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                    if head == 5:
                        raise MqttProtocolError("remaining length longer than 4 bytes")
                if length < 0:
                    break
            if length > self.max_packet_bytes:
                self._oversized = (first, length)
                pos += head
                continue
            end = pos + head + length
            if end > n:
                break
            out.append((first & 0xF0, first & 0x0F, buf[pos + head : end]))
            pos = end
        self._buf = buf[pos:] if pos < n else b""
        return out
