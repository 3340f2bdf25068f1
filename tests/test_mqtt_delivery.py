"""Every accepted message is counted exactly once (delivered, dropped, undelivered), against brokers that
misbehave in the ways an audit found: one that accepts connections and never acknowledges, one that
drops the connection on every publish, an outage longer than the outbox; plus retained status and
configuration topics, and memory that stays flat."""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
import uuid

import pytest
from structlog.testing import capture_logs

from ppg_stream.stream.runtime.backoff import Backoff
from ppg_stream.stream.mqtt.codec import CONNECT, PINGREQ, PUBLISH, PacketDecoder, encode_puback, parse_publish
from ppg_stream.stream.mqtt import publisher as mqtt_publisher
from ppg_stream.stream.mqtt.publisher import MqttPublisher
from ppg_stream.stream.mqtt.settings import BrokerSettings
from ppg_stream.stream.mqtt.subscriber import MqttSubscriber
from tests.conftest import Collector, start_cli

pytestmark = pytest.mark.network


class FakeBroker:
    """A tiny MQTT server: CONNACK to every CONNECT, PINGRESP to pings, and for PUBLISH whatever `mode` says:
    'swallow' (never acknowledge), 'close' (drop the connection), or 'ack-retained' (acknowledge retained
    publishes only). Counts connections and the HR publishes it saw."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections: list[float] = []
        self.hr_publishes = 0
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> "FakeBroker":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for writer in list(self._writers):
            writer.close()

    _writers: set = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        decoder = PacketDecoder()
        try:
            while data := await reader.read(65536):
                for kind, flags, body in decoder.feed(data):
                    if kind == CONNECT:
                        self.connections.append(time.monotonic())
                        writer.write(b"\x20\x02\x00\x00")
                    elif kind == PINGREQ:
                        writer.write(b"\xd0\x00")
                    elif kind == PUBLISH:
                        message = parse_publish(flags, body)
                        self.hr_publishes += message.topic.endswith("/hr")
                        if self.mode == "close":
                            writer.close()
                            return
                        if self.mode == "ack-retained" and message.retain:
                            writer.write(encode_puback(message.packet_id))
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)


def _messages(device: str, n: int, start: int = 0) -> list[dict]:
    return [{"device": device, "window": k, "bpm": 70.0 + k % 10} for k in range(start, start + n)]


@pytest.mark.slow
async def test_cli_against_a_broker_that_never_acknowledges_exits_1_with_the_count(synthetic_60s):
    async with FakeBroker("swallow") as broker:
        proc = await start_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--broker", f"mqtt://127.0.0.1:{broker.port}",
                               "--flush-timeout", "1", "--log-json")
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    n = synthetic_60s.n_windows
    assert broker.hr_publishes >= n  # every message went out and was in flight when the flush timed out
    assert proc.returncode == 1, stderr.decode()
    lines = stderr.decode().strip().splitlines()
    assert lines[-1] == f"ppg-stream: error: {n} of {n} messages were not delivered: {n} not acknowledged by the MQTT broker within 1 s"
    summary = json.loads(lines[-2])
    assert (summary["delivered"], summary["dropped_overflow"], summary["undelivered"]) == (0, 0, n)


@pytest.mark.slow
async def test_in_flight_messages_are_counted_exactly_once_after_an_ack_timeout():
    async with FakeBroker("ack-retained") as broker:  # takes the status, never an HR message
        publisher = MqttPublisher(BrokerSettings("127.0.0.1", broker.port), "p", "p/svc/status", flush_timeout_s=2.0,
                                  ack_timeout_s=0.5, max_inflight=20)
        await publisher.start()
        publisher.publish(_messages("a", 30) + _messages("b", 20))
        await asyncio.sleep(1.5)  # the ack timeout drops the connection; the 20 in flight go back to the queue
        report = await publisher.close()
    assert len(broker.connections) >= 2 and broker.hr_publishes >= 40
    assert (report.delivered, report.dropped_overflow, report.undelivered) == (0, 0, 50)


@pytest.mark.slow
async def test_backoff_does_not_reset_on_a_connection_that_takes_nothing():
    """A broker that accepts the connection and drops it at the first publish: ~25 reconnects in 5 s before."""
    async with FakeBroker("close") as broker:
        publisher = MqttPublisher(BrokerSettings("127.0.0.1", broker.port), "p", "p/svc/status", flush_timeout_s=0.1,
                                  reconnect=Backoff(start_s=0.2, factor=2.0, max_s=5.0, jitter=0.0))
        await publisher.start()
        publisher.publish(_messages("a", 5))
        await asyncio.sleep(3.5)
        report = await publisher.close()
    gaps = [b - a for a, b in zip(broker.connections, broker.connections[1:])]
    assert 3 <= len(broker.connections) <= 5, gaps  # at 0, 0.2, 0.6, 1.4, 3.0 s
    assert all(later > earlier * 1.5 for earlier, later in zip(gaps, gaps[1:])), gaps
    assert report.undelivered == 5


async def test_outbox_overflow_during_an_outage_keeps_the_newest_and_counts_per_device(private_mosquitto):
    settings = BrokerSettings("127.0.0.1", private_mosquitto.port)
    collector = await Collector("127.0.0.1", private_mosquitto.port, "ovf/+/hr").start()  # a persistent session
    private_mosquitto.stop()
    publisher = MqttPublisher(settings, "ovf", "ovf/svc/status", outbox_size=30, flush_timeout_s=15,
                              reconnect=Backoff(start_s=0.1, factor=2.0, max_s=0.5, jitter=0.0))
    with capture_logs() as logs:
        await publisher.start()
        for k in range(50):  # 100 messages in 50 calls, during the outage
            publisher.publish(_messages("a", 1, start=k) + _messages("b", 1, start=k))
        private_mosquitto.start()
        report = await publisher.close()
    for _ in range(200):
        if len(collector.messages) >= 30:
            break
        await asyncio.sleep(0.05)
    await collector.stop()
    assert (report.delivered, report.dropped_overflow, report.undelivered) == (30, 70, 0)
    assert sorted((m["device"], m["window"]) for m in collector.messages) == sorted((d, k) for k in range(35, 50) for d in "ab")
    drops = [entry for entry in logs if entry["event"] == "outbox full: dropping oldest messages"]
    assert 1 <= len(drops) <= 2  # rate-limited by time, not one line per drop (nor per 1000th)
    assert sum(sum(entry["devices"].values()) for entry in drops) == 70
    assert drops[-1]["dropped"] == 70


async def test_statuses_retained_per_device_and_the_will_on_the_service_topic(mosquitto_1883):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings = BrokerSettings(*mosquitto_1883)
    seen: list[tuple[str, bytes]] = []
    subscriber = MqttSubscriber(settings, f"{prefix}/#", lambda t, p, r: seen.append((t, p)), qos=1)
    await subscriber.start()
    publisher = MqttPublisher(settings, prefix, f"{prefix}/service/status")
    await publisher.start()
    publisher.set_status("d1", "online")
    publisher.set_status("d2", "online")
    publisher.set_status("d2", "offline")
    publisher.publish_retained(f"homeassistant/sensor/{prefix}/config", b'{"name": "HR"}')
    publisher.publish(_messages("d1", 3))
    await asyncio.sleep(0.5)
    publisher._conn.abort("test: the process died")  # as a crash looks to the broker: the will fires
    await asyncio.sleep(0.5)
    report = await publisher.close()
    await asyncio.sleep(0.3)
    await subscriber.close()
    status = {}
    for topic, payload in seen:
        status.setdefault(topic, []).append(payload)
    assert b"offline" in status[f"{prefix}/service/status"][:-1]  # the will, before the reconnect said online again
    assert status[f"{prefix}/service/status"][-1] == b"offline"
    assert status[f"{prefix}/d1/status"][0] == b"online" and status[f"{prefix}/d1/status"][-1] == b"offline"
    assert status[f"{prefix}/d2/status"][-1] == b"offline"
    assert report.delivered == 3 and report.lost == 0
    # retained: a subscriber arriving later gets the last values; an empty payload clears the config
    late: list[tuple[str, bytes]] = []
    watcher = MqttSubscriber(settings, f"{prefix}/#", lambda t, p, r: late.append((t, p)))
    await watcher.start()
    await asyncio.sleep(0.3)
    await watcher.close()
    assert dict(late) == {f"{prefix}/service/status": b"offline", f"{prefix}/d1/status": b"offline", f"{prefix}/d2/status": b"offline"}
    cleaner = MqttPublisher(settings, prefix, f"{prefix}/service/status")
    await cleaner.start()
    cleaner.publish_retained(f"homeassistant/sensor/{prefix}/config", b"")
    for device in ("d1", "d2", "service"):
        cleaner.publish_retained(f"{prefix}/{device}/status", b"")
    await cleaner.close()


async def test_retained_config_published_during_an_outage_arrives_when_the_broker_returns(private_mosquitto):
    settings = BrokerSettings("127.0.0.1", private_mosquitto.port)
    private_mosquitto.stop()
    publisher = MqttPublisher(settings, "ha", "ha/svc/status", flush_timeout_s=15,
                              reconnect=Backoff(start_s=0.1, factor=2.0, max_s=0.5, jitter=0.0))
    await publisher.start()
    publisher.publish_retained("homeassistant/sensor/x/config", b"first")
    publisher.publish_retained("homeassistant/sensor/x/config", b"second")  # the latest value wins
    private_mosquitto.start()
    await asyncio.wait_for(publisher.connected.wait(), 10)
    report = await publisher.close()
    got: list[tuple[str, bytes]] = []
    watcher = MqttSubscriber(settings, "homeassistant/#", lambda t, p, r: got.append((t, p)))
    await watcher.start()
    await asyncio.sleep(0.3)
    await watcher.close()
    assert got == [("homeassistant/sensor/x/config", b"second")]
    assert report.lost == 0


@pytest.mark.slow
async def test_memory_is_flat_across_devices_and_messages(mosquitto_1883, monkeypatch):
    """Nothing per message after its acknowledgement, nothing per device once it is offline; the cache of
    encoded topics is bounded (here to fewer devices than one round brings)."""
    monkeypatch.setattr(mqtt_publisher, "_TOPIC_CACHE_MAX", 200)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    publisher = MqttPublisher(BrokerSettings(*mosquitto_1883), prefix, f"{prefix}/svc/status")
    await publisher.start()

    async def round_of(r: int) -> None:
        devices = [f"r{r}-d{i}" for i in range(300)]  # new device ids every round, as a fleet churns
        for device in devices:
            publisher.set_status(device, "online")
        publisher.publish([m for device in devices for m in _messages(device, 5)])
        for device in devices:
            publisher.set_status(device, "offline")
        target = publisher.delivered + 0
        while publisher.report().undelivered or publisher._retained_unsent or publisher._inflight:
            await asyncio.sleep(0.02)
        assert publisher.delivered >= target

    tracemalloc.start()
    try:
        for r in range(3):
            await round_of(r)
        baseline = tracemalloc.get_traced_memory()[0]
        for r in range(3, 10):
            await round_of(r)
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    report = await publisher.close()
    assert report.delivered == 10 * 300 * 5 and report.lost == 0
    assert grown < 200_000, f"{grown} bytes more after 7 more rounds of 1,500 messages"
    # status topics of devices gone offline are not kept (only the service's own)
    assert list(publisher._status) == [f"{prefix}/svc/status"]
