"""Raw ingest: binary payloads from many devices on one wildcard subscription through the real Mosquitto,
subscribing again after the broker restarts, and a consumer bug or an oversized message that costs
only that message."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from ppg_stream.stream.runtime.backoff import Backoff
from ppg_stream.stream.mqtt.codec import encode_publish, encode_string
from ppg_stream.stream.mqtt.connection import connect
from ppg_stream.stream.mqtt.settings import BrokerSettings
from ppg_stream.stream.mqtt.subscriber import MqttSubscriber

pytestmark = pytest.mark.network


async def _publish_raw(settings: BrokerSettings, items: list[tuple[str, bytes]], qos: int = 1) -> None:
    acked: list[int] = []
    conn = await connect(settings, f"test-gw-{uuid.uuid4().hex[:8]}", on_pubacks=acked.extend)
    conn.write(b"".join(encode_publish(encode_string(t), p, qos, i + 1) for i, (t, p) in enumerate(items)))
    for _ in range(200):
        if not qos or len(acked) == len(items):
            break
        await asyncio.sleep(0.01)
    conn.disconnect()


async def _wait(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("qos", [0, 1])
async def test_binary_chunks_from_many_devices_arrive_with_topic_and_receive_time(mosquitto_1883, qos):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings = BrokerSettings(*mosquitto_1883)
    got: list[tuple[str, bytes, float]] = []
    subscriber = MqttSubscriber(settings, f"{prefix}/+/raw", lambda t, p, r: got.append((t, p, r)), qos=qos)
    await subscriber.start()
    sent = [(f"{prefix}/dev{i % 200:03d}/raw", bytes([i % 256]) * (i % 300) + b"\x00\xff") for i in range(2000)]
    before = time.perf_counter()
    # in batches of 500: Mosquitto queues at most 1000 QoS 1 messages per subscriber by default
    # (max_queued_messages) and drops beyond that, which a loaded machine's subscriber could reach
    outside = [(f"{prefix}/dev1/hr", b"not raw")]  # first: everything after it arriving means it was routed (or not)
    for start in range(0, len(sent), 500):
        await _publish_raw(settings, (outside if start == 0 else []) + sent[start : start + 500], qos=1)
        await _wait(lambda: len(got) >= min(start + 500, len(sent)))
    await subscriber.close()
    assert sorted((t, p) for t, p, _ in got) == sorted(sent)  # byte-exact, nothing from outside the filter
    assert all(before <= r <= time.perf_counter() for _, _, r in got)
    assert subscriber.received == len(sent)


async def test_a_failing_handler_costs_only_its_message(mosquitto_1883):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings = BrokerSettings(*mosquitto_1883)
    good: list[bytes] = []

    def handler(topic: str, payload: bytes, received: float) -> None:
        if payload == b"boom":
            raise ValueError("a decoder bug")
        good.append(payload)

    subscriber = MqttSubscriber(settings, f"{prefix}/+/raw", handler, qos=1)
    await subscriber.start()
    await _publish_raw(settings, [(f"{prefix}/a/raw", b"1"), (f"{prefix}/a/raw", b"boom"), (f"{prefix}/b/raw", b"2")])
    await _wait(lambda: len(good) >= 2)
    await subscriber.close()
    assert good == [b"1", b"2"] and subscriber.callback_errors == 1


async def test_oversized_message_is_skipped_and_counted(mosquitto_1883):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings = BrokerSettings(*mosquitto_1883)
    got: list[bytes] = []
    subscriber = MqttSubscriber(settings, f"{prefix}/+/raw", lambda t, p, r: got.append(p), qos=1, max_packet_bytes=4096)
    await subscriber.start()
    await _publish_raw(settings, [(f"{prefix}/a/raw", bytes(100_000)), (f"{prefix}/a/raw", b"after")])
    await _wait(lambda: got == [b"after"])
    await asyncio.sleep(0.2)
    await subscriber.close()
    assert got == [b"after"] and subscriber.oversized == 1


async def test_subscribes_again_after_the_broker_restarts(private_mosquitto):
    settings = BrokerSettings("127.0.0.1", private_mosquitto.port)
    got: list[bytes] = []
    subscriber = MqttSubscriber(settings, "p/+/raw", lambda t, p, r: got.append(p), qos=1,
                                reconnect=Backoff(start_s=0.1, factor=2.0, max_s=0.5, jitter=0.0))
    await subscriber.start()
    await _publish_raw(settings, [("p/a/raw", b"before")])
    await _wait(lambda: got == [b"before"])
    private_mosquitto.stop()
    await asyncio.sleep(0.5)
    private_mosquitto.start()
    await asyncio.wait_for(subscriber.subscribed.wait(), 10)
    await _publish_raw(settings, [("p/b/raw", b"after")])
    await _wait(lambda: len(got) == 2)
    await subscriber.close()
    assert got == [b"before", b"after"] and subscriber.reconnects >= 1


async def test_serve_wiring_one_call_per_read_each_message_fails_alone(mosquitto_1883):
    """`on_messages` (serve's raw intake): every message arrives once, in order, the messages of a read
    in one call; one a handler fails on is counted, the rest of its read still handled."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings = BrokerSettings(*mosquitto_1883)
    good: list[bytes] = []
    calls: list[int] = []

    def handler(messages, received):
        calls.append(len(messages))
        failed = []
        for message in messages:
            if message.payload == b"boom":
                failed.append((message.topic, ValueError("a decoder bug")))
            else:
                good.append(message.payload)
        return failed

    subscriber = MqttSubscriber(settings, f"{prefix}/+/raw", None, on_messages=handler, qos=1)
    await subscriber.start()
    sent = [str(i).encode() for i in range(300)]
    await _publish_raw(settings, [(f"{prefix}/d{i % 7}/raw", p) for i, p in enumerate(sent[:150] + [b"boom"] + sent[150:])])
    await _wait(lambda: len(good) >= len(sent))
    await subscriber.close()
    assert good == sent and subscriber.callback_errors == 1 and subscriber.received == len(sent) + 1 == sum(calls)


async def test_the_messages_of_one_read_are_handed_over_in_one_call_before_their_pubacks():
    from ppg_stream.stream.mqtt.connection import MqttConnection

    written: list[bytes] = []
    handed: list[list] = []

    class Transport:
        def write(self, data):
            written.append(data)

        def is_closing(self):
            return False

    conn = MqttConnection(on_publishes=lambda messages, received: (handed.append(list(messages)), written.append(b"handled")))
    conn.connection_made(Transport())
    conn.data_received(b"".join(encode_publish(encode_string(f"p/d{i}/raw"), bytes([i]), 1, 10 + i) for i in range(3)))
    assert [(m.topic, m.payload, m.packet_id) for m in handed[0]] == [(f"p/d{i}/raw", bytes([i]), 10 + i) for i in range(3)]
    assert len(handed) == 1 and written == [b"handled", b"\x40\x02\x00\x0a\x40\x02\x00\x0b\x40\x02\x00\x0c"]  # acknowledged after
