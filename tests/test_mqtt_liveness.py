"""Liveness from traffic: a subscriber that is behind, reading a long backlog from a real Mosquitto, gets
its PINGRESP only after that backlog; the backlog itself proves the broker is there, so it must not
reconnect (a reconnect with a clean session makes the broker discard everything it still holds)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from ppg_stream.stream.mqtt.codec import encode_publish, encode_string
from ppg_stream.stream.mqtt.connection import connect
from ppg_stream.stream.mqtt.settings import BrokerSettings
from ppg_stream.stream.mqtt.subscriber import MqttSubscriber

pytestmark = [pytest.mark.network, pytest.mark.slow]

BACKLOG = 4000
KEEPALIVE_S = 2


def unlimited_broker(broker) -> BrokerSettings:
    """The private Mosquitto with no in-flight or queue limit: everything published goes to the subscriber's
    socket at once, so a PINGRESP is written behind the whole backlog."""
    broker.stop()
    with broker.conf.open("a") as f:
        f.write("max_inflight_messages 0\nmax_queued_messages 0\n")
    broker.start()
    return BrokerSettings("127.0.0.1", broker.port)


async def _publish(settings: BrokerSettings, items: list[tuple[str, bytes]]) -> None:
    acked: list[int] = []
    conn = await connect(settings, f"test-gw-{uuid.uuid4().hex[:8]}", on_pubacks=acked.extend)
    conn.write(b"".join(encode_publish(encode_string(t), p, 1, i % 65535 + 1) for i, (t, p) in enumerate(items)))
    deadline = time.monotonic() + 60
    while len(acked) < len(items) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    conn.disconnect()
    assert len(acked) == len(items)


async def test_a_ping_answer_behind_a_long_backlog_is_no_reason_to_reconnect(private_mosquitto):
    settings = unlimited_broker(private_mosquitto)
    got: list[bytes] = []

    def slow_handler(topic: str, payload: bytes, received: float) -> None:
        time.sleep(0.002)  # a service that is behind: the backlog takes ~8 s to read, four keepalives
        got.append(payload)

    subscriber = MqttSubscriber(settings, "live/+/raw", slow_handler, qos=1, keepalive_s=KEEPALIVE_S)
    await subscriber.start()
    await subscriber.subscribed.wait()
    sent = [(f"live/d{i % 50}/raw", i.to_bytes(4, "big") * 64) for i in range(BACKLOG)]
    await _publish(settings, sent)
    deadline = time.monotonic() + 120
    while len(got) < BACKLOG and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await subscriber.close()
    assert subscriber.reconnects == 0
    assert len(got) == BACKLOG and sorted(got) == sorted(p for _, p in sent)


async def test_a_broker_that_goes_silent_is_declared_dead_after_one_keepalive(private_mosquitto):
    """The other side of the rule: a broker that stops answering entirely (SIGSTOP) is given up on,
    and the subscriber is back once the broker is."""
    settings = BrokerSettings("127.0.0.1", private_mosquitto.port)
    subscriber = MqttSubscriber(settings, "live/+/raw", lambda t, p, r: None, qos=1, keepalive_s=KEEPALIVE_S)
    await subscriber.start()
    await subscriber.subscribed.wait()
    proc = private_mosquitto.proc
    proc.send_signal(19)  # SIGSTOP: the TCP connection stays open, nothing arrives
    try:
        deadline = time.monotonic() + 30
        while subscriber.subscribed.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not subscriber.subscribed.is_set()
    finally:
        proc.send_signal(18)  # SIGCONT
    deadline = time.monotonic() + 30
    while not subscriber.subscribed.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    back = subscriber.subscribed.is_set()
    await subscriber.close()
    assert back and subscriber.reconnects >= 1
