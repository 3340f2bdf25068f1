"""`serve` against senders that misbehave on purpose or by accident, through the real Mosquitto: a flood
of device ids, a clock that leaps, a stream id that changes every chunk, a payload over the size
limit. Each is counted, logged within bounds, and leaves the broker and the other devices as they were."""

from __future__ import annotations

import asyncio
import dataclasses

import aiomqtt
import numpy as np
import pytest

from ppg_stream.stream.core.raw_chunk import RawChunk, decode_raw_chunk, encode_raw_chunk
from tests.conftest import Collector
from tests.serve_helpers import Service, by_device, mae, publish_all, raw_payloads, synthetic_recording, unique_prefix

pytestmark = pytest.mark.network


def _chunk(stream_id: int, seq: int, t0: float, n: int = 64, groups=frozenset({"ppg"})) -> bytes:
    return encode_raw_chunk(RawChunk("ppg", groups, stream_id, seq, 64.0, t0, np.random.default_rng(seq).normal(size=(n, 1)).astype(np.float32)))


async def _retained(prefix: str, seconds: float = 1.5) -> dict[str, bytes]:
    """Every retained status under the prefix, as a new subscriber sees them."""
    found: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(f"{prefix}/+/status", qos=1)
        try:
            async with asyncio.timeout(seconds):
                async for message in client.messages:
                    if message.retain:
                        found[str(message.topic)] = bytes(message.payload)
        except TimeoutError:
            pass
    return found


async def _clear(topics) -> None:
    await publish_all([(t, b"") for t in topics], retain=True)


async def test_a_flood_of_device_ids_leaves_nothing_retained_and_logs_within_bounds(mosquitto_1883):
    """300 ids that each send one chunk and never make a window: no `online`/`offline` is retained for
    any of them (a dashboard sees no ghost), the log does not grow per id, and a real device beside
    them is served as usual."""
    prefix = unique_prefix("flood")
    good = synthetic_recording("real", 30.0, seed=51)
    flood = [(f"{prefix}/ghost-{i:03d}/raw", _chunk(1000 + i, 0, 0.0)) for i in range(300)]
    items = flood + [(t, p) for _, t, p in raw_payloads(good, prefix, "real")]
    collector = await Collector(*mosquitto_1883, f"{prefix}/+/hr").start()
    service = await Service(("--topic-prefix", prefix, "--idle-timeout", "1", "--stats-interval", "60")).start()
    try:
        await publish_all(items)
        await collector.wait_for(len(good.labels_bpm), 30)
        await service.wait_for_event("device left", 10)
        await asyncio.sleep(2.5)  # every ghost idles out
        retained = await _retained(prefix)
        rc = await service.stop()
    finally:
        service.kill()
        await collector.stop()
    await _clear([f"{prefix}/real/status"])
    assert rc == 130 and not service.tracebacks()
    assert sorted(by_device(collector.messages)["real"]) == list(range(len(good.labels_bpm)))
    assert retained == {f"{prefix}/real/status": b"offline"}, sorted(retained)[:5]  # it left too (idle), as a device does
    per_device_lines = [e for e in service.logs if e.get("event") in ("device left", "device has no accelerometer: the model's ACC channels are fed zeros")]
    assert len(per_device_lines) < 30, len(per_device_lines)
    assert 0 < sum(e.get("left_since_last_log", 1) for e in service.events("device left")) <= 301  # the lines stand for many
    assert service.events("serve interrupted")[-1]["devices"] == 301


async def test_a_clock_that_leaps_forward_starts_a_new_epoch_not_millions_of_skipped_windows(mosquitto_1883):
    prefix = unique_prefix("leap")
    rec = synthetic_recording("leaper", 20.0, seed=52)
    chunks = raw_payloads(rec, prefix, "leaper")
    leap = decode_raw_chunk(chunks[-1][2])
    leapt = encode_raw_chunk(dataclasses.replace(leap, seq=leap.seq + 1, t0=9.9e7))
    service = await Service(("--topic-prefix", prefix)).start()
    try:
        await publish_all([(t, p) for _, t, p in chunks] + [(chunks[-1][1], leapt)])
        await service.wait_for_event("device restarted: new epoch", 20)
        rc = await service.stop()
    finally:
        service.kill()
    await _clear([f"{prefix}/leaper/status"])
    summary = service.events("serve interrupted")[-1]
    assert rc == 130 and summary["epochs"] == 1 and summary["skipped_gap"] < 10, summary


async def _run_with_impostor(prefix: str, burst: int) -> tuple[Service, dict, object]:
    """The victim's own 60 s stream in 1 s chunks, and every 6th chunk an impostor's `burst` chunks
    under a fresh stream id (time from 0): two senders on one device id."""
    victim = synthetic_recording("victim", 60.0, seed=53)
    own = raw_payloads(victim, prefix, "victim", chunk_s=1.0)
    items = []
    for i, (_, topic, payload) in enumerate(own):
        items.append((topic, payload))
        if i % 6 == 5:
            items += [(topic, _chunk(50_000 + i, j, j * 1.0, groups=frozenset({"ppg", "acc"}))) for j in range(burst)]
    collector = await Collector("127.0.0.1", 1883, f"{prefix}/+/hr").start()
    service = await Service(("--topic-prefix", prefix)).start()
    try:
        await publish_all(items)
        await collector.wait_for(len(victim.labels_bpm) - 8, 30)
        await asyncio.sleep(1.0)
        rc = await service.stop()
    finally:
        service.kill()
        await collector.stop()
    await _clear([f"{prefix}/victim/status"])
    assert rc == 130 and not service.tracebacks()
    return service, by_device(collector.messages).get("victim", {}), victim


async def test_single_chunks_of_a_second_stream_cannot_reset_a_live_device(mosquitto_1883):
    """Each interloping chunk waits for the device's next chunk, which is the device's own: it is
    dropped and counted, and the device never restarts: every window, right."""
    service, got, victim = await _run_with_impostor(unique_prefix("interlope"), burst=1)
    summary = service.events("serve interrupted")[-1]
    impostors = len(range(5, 120, 6))  # 60 s in 1 s chunks, PPG and ACC: 120 of the device's own; the last one waits for ever
    assert summary["contested_chunks"] == impostors - 1 and summary.get("epochs", 0) == 0, summary
    assert sorted(got) == list(range(len(victim.labels_bpm))) and mae(got, victim.labels_bpm) < 4


async def test_a_device_restarted_again_and_again_is_limited_and_keeps_a_heart_rate(mosquitto_1883):
    """Bursts of a new stream do restart the device (a real restart looks like that), but only three
    times in five minutes; the device's own stream, which brought more chunks, takes it back each time;
    after that the impostor's chunks are dropped and counted, and the device goes on being estimated."""
    service, got, victim = await _run_with_impostor(unique_prefix("churn"), burst=2)
    summary = service.events("serve interrupted")[-1]
    assert summary["epochs"] <= 6 and summary["refused_restarts"] >= 10, summary
    assert service.events("device restarts too often: chunks of yet another stream dropped")
    assert len(got) >= 15 and mae(got, victim.labels_bpm) < 8, (len(got), summary)


async def test_a_payload_over_the_size_limit_is_counted(mosquitto_1883):
    prefix = unique_prefix("big")
    service = await Service(("--topic-prefix", prefix)).start()
    try:
        await publish_all([(f"{prefix}/big/raw", bytes(2 << 20)), (f"{prefix}/small/raw", b"junk")])
        for _ in range(100):
            await asyncio.sleep(0.05)
        rc = await service.stop()
    finally:
        service.kill()
    summary = service.events("serve interrupted")[-1]
    assert rc == 130 and summary["oversized_payloads"] == 1 and summary["malformed_payloads"] == 1, summary
