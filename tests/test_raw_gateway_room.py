"""A gateway replaying as fast as possible never outruns its MQTT publisher: while the broker does not
acknowledge (here: a real Mosquitto paused with SIGSTOP), the gateway waits at half the outbox instead
of making the outbox drop its oldest chunks. And a gateway says when it sent a chunk (payload version
2) only when its source runs in real time."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from ppg_stream.stream.core.raw_chunk import decode_raw_chunk
from ppg_stream.stream.mqtt.publisher import MqttPublisher
from ppg_stream.stream.mqtt.settings import BrokerSettings
from ppg_stream.stream.sources.raw_gateway import RawGateway
from ppg_stream.stream.sources.replay import ReplaySource

from tests.serve_helpers import synthetic_recording

pytestmark = pytest.mark.network

OUTBOX = 10


async def test_a_gateway_at_full_speed_waits_for_room_instead_of_dropping(private_mosquitto):
    publisher = MqttPublisher(BrokerSettings("127.0.0.1", private_mosquitto.port), "room", "room/_gw/status", outbox_size=OUTBOX)
    await publisher.start()
    await publisher.connected.wait()
    gateway = RawGateway(publisher, "room")
    recording = synthetic_recording("dev", 20.0, seed=5)
    source = gateway.tap(ReplaySource(recording, speed=None, chunk_s=0.25), "dev")
    proc = private_mosquitto.proc
    proc.send_signal(signal.SIGSTOP)  # the broker holds still: nothing is acknowledged
    try:
        feeding = asyncio.create_task(gateway.consume(source))
        await asyncio.sleep(1.0)
        assert not feeding.done()  # it waits...
        assert publisher.pending <= OUTBOX // 2 + 1 and publisher.dropped_overflow == 0  # ...with room left
    finally:
        proc.send_signal(signal.SIGCONT)
    await asyncio.wait_for(feeding, 60)
    report = await publisher.close()
    assert publisher.dropped_overflow == 0 and report.lost == 0
    assert report.delivered == gateway.chunks == 2 * 80  # PPG and ACC, 0.25 s chunks of 20 s


class _Sink:
    def __init__(self):
        self.payloads: list[bytes] = []

    def publish_payload(self, topic: str, payload: bytes) -> None:
        self.payloads.append(payload)


@pytest.mark.parametrize("speed, version", [(1.0, 2), (None, 1), (4.0, 1)])
async def test_a_gateway_stamps_the_send_time_only_when_its_source_runs_in_real_time(speed, version):
    sink = _Sink()
    gateway = RawGateway(sink, "stamp")
    recording = synthetic_recording("dev", 1.0, seed=6)
    before = time.time()
    await gateway.consume(gateway.tap(ReplaySource(recording, speed=speed, chunk_s=0.25), "dev"))
    after = time.time()
    raws = [decode_raw_chunk(p) for p in sink.payloads]
    assert raws and {p[0] for p in sink.payloads} == {version}
    if version == 2:
        assert all(before <= r.sent <= after for r in raws)
        assert [r.sent for r in raws] == sorted(r.sent for r in raws)
    else:
        assert all(r.sent == 0.0 for r in raws)
