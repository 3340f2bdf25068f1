"""`ppg-stream serve` end to end: real gateways and publishers → real Mosquitto → the service in its own
process → HR messages read back from Mosquitto."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ppg_stream.stream.core.raw_chunk import RawChunk, encode_raw_chunk
from tests.conftest import Collector, run_cli
from tests.serve_helpers import Service, by_device, direct_estimates, mae, publish_all, raw_payloads, synthetic_recording, unique_prefix

pytestmark = [pytest.mark.network, pytest.mark.slow]


async def test_gateway_through_mosquitto_to_serve_gives_the_same_heart_rate_as_a_direct_replay(mosquitto_1883, synthetic_60s):
    path = str(synthetic_60s.path)
    direct = await asyncio.to_thread(run_cli, "--replay", path, "--speed", "max", "--stdout", "--no-mqtt")
    assert direct.returncode == 0, direct.stderr
    prefix = unique_prefix("gw")
    collector = await Collector(*mosquitto_1883, f"{prefix}/#").start()
    service = await Service(("--topic-prefix", prefix, "--service-id", "svc1")).start()
    try:
        gateway = await asyncio.to_thread(run_cli, "--replay", path, "--speed", "max", "--publish-raw", "--topic-prefix", prefix, "--log-json")
        assert gateway.returncode == 0, gateway.stderr
        await collector.wait_for(synthetic_60s.n_windows)
        rc = await service.stop()
        await asyncio.sleep(0.3)
    finally:
        service.kill()
        await collector.stop()
    assert rc == 130
    served = {m["window"]: m for m in collector.messages}
    expected = {m["window"]: m for m in direct.messages}
    assert served.keys() == expected.keys() == set(range(synthetic_60s.n_windows))
    for k, m in expected.items():
        assert served[k]["device"] == m["device"] == "syn60"
        assert abs(served[k]["bpm"] - m["bpm"]) <= 0.1 and abs(served[k]["confidence"] - m["confidence"]) <= 0.002, k
        assert served[k]["t_end"] == m["t_end"] and served[k]["model"] == m["model"]
    assert collector.raw[f"{prefix}/syn60/status"] == [b"online", b"offline"]  # Ctrl-C: offline for every device, each once
    assert collector.raw[f"{prefix}/_service/svc1/status"] == [b"online", b"offline"]
    summary = service.events("serve interrupted")[-1]
    assert summary["windows"] == synthetic_60s.n_windows and summary["malformed_payloads"] == 0


async def test_fifty_devices_every_window_with_the_right_heart_rate_then_idle_offline(mosquitto_1883):
    prefix = unique_prefix("fleet")
    recordings = [synthetic_recording(f"dev{i:02d}", 40.0, seed=300 + i) for i in range(50)]
    chunks = []
    for rec in recordings:
        chunks += [(end, rec.subject, topic, payload) for end, topic, payload in raw_payloads(rec, prefix, rec.subject)]
    chunks.sort(key=lambda c: (c[0], c[1]))  # devices interleaved, as live streams arrive
    # HR and statuses only: a collector that also took the 2,000 raw chunks could fall behind on a loaded
    # machine, and the system broker's default queue (1,000 messages) would then drop HR messages for it
    collector = await Collector(*mosquitto_1883, f"{prefix}/+/hr").start()
    statuses = await Collector(*mosquitto_1883, f"{prefix}/+/status").start()
    service = await Service(("--topic-prefix", prefix, "--idle-timeout", "3")).start()
    n_windows = len(recordings[0].labels_bpm)
    try:
        await publish_all([(topic, payload) for _, _, topic, payload in chunks])
        for _ in range(600):
            if len(collector.messages) >= 50 * n_windows:
                break
            await asyncio.sleep(0.1)
        left = await service.wait_for_event("device left", 20)
        assert "no data for 3 s" in left["reason"]
        for _ in range(200):
            if all(statuses.raw.get(f"{prefix}/{r.subject}/status", [b""])[-1] == b"offline" for r in recordings):
                break
            await asyncio.sleep(0.1)
        rc = await service.stop()
    finally:
        service.kill()
        await collector.stop()
        await statuses.stop()
    assert rc == 130
    got = by_device(collector.messages)
    assert sorted(got) == sorted(r.subject for r in recordings)
    errors = []
    for rec in recordings:
        windows = got[rec.subject]
        assert sorted(windows) == list(range(n_windows)), rec.subject  # every window of every device
        errors.append(mae(windows, rec.labels_bpm))
        assert statuses.raw[f"{prefix}/{rec.subject}/status"] == [b"online", b"offline"]
    assert np.mean(errors) < 3.0
    expected = await asyncio.to_thread(direct_estimates, recordings)  # the same devices replayed directly
    for rec in recordings:
        served = {k: m["bpm"] for k, m in got[rec.subject].items()}
        assert served.keys() == expected[rec.subject].keys()
        assert max(abs(served[k] - expected[rec.subject][k]) for k in served) <= 0.1, rec.subject
    summary = service.events("serve interrupted")[-1]
    assert summary["devices"] == 50 and summary["windows"] == 50 * n_windows and summary["raw_chunks"] == len(chunks)


async def test_restart_duplicates_and_bad_payloads_never_touch_good_devices(mosquitto_1883):
    prefix = unique_prefix("bad")
    good = synthetic_recording("good", 30.0, seed=41)
    first = synthetic_recording("rst", 20.0, seed=42)
    second = synthetic_recording("rst", 20.0, seed=43)
    good_chunks = raw_payloads(good, prefix, "good")
    nan_rec = synthetic_recording("nanny", 20.0, seed=44)
    nan_rec.ppg[300:340] = np.nan
    junk = [
        (f"{prefix}/junk1/raw", b"garbage"),
        (f"{prefix}/junk2/raw", b""),
        (f"{prefix}/junk3/raw", encode_raw_chunk(RawChunk("ppg", frozenset({"ppg"}), 1, 0, 64.0, 0.0, np.zeros((4, 1), np.float32)))[:-3]),
        (f"{prefix}/junk4/raw", b"\x02" + b"\x00" * 40),
        (f"{prefix}/junk5/raw", b"\x01\x01\x01\x01" + b"\xff" * 28),
        (f"{prefix}/not a device/raw", encode_raw_chunk(RawChunk("ppg", frozenset({"ppg"}), 1, 0, 64.0, 0.0, np.ones((4, 1), np.float32)))),
    ]
    first_chunks = raw_payloads(first, prefix, "rst")
    items = []
    for i, (_, topic, payload) in enumerate(good_chunks):
        items.append((topic, payload))
        if i < len(first_chunks):
            items += [first_chunks[i][1:], first_chunks[i][1:]]  # every chunk of this device twice (at-least-once)
    items += junk
    items += [(t, p) for _, t, p in raw_payloads(second, prefix, "rst")]  # the device restarted: new stream id, t from 0
    items += [(t, p) for _, t, p in raw_payloads(nan_rec, prefix, "nanny")]
    collector = await Collector(*mosquitto_1883, f"{prefix}/+/hr").start()
    service = await Service(("--topic-prefix", prefix)).start()
    try:
        await publish_all(items)
        await service.wait_for_event("device restarted: new epoch", 20)
        for _ in range(300):
            if len(by_device(collector.messages).get("good", {})) >= len(good.labels_bpm):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        rc = await service.stop()
    finally:
        service.kill()
        await collector.stop()
    assert rc == 130
    got = by_device(collector.messages)
    assert sorted(got["good"]) == list(range(len(good.labels_bpm)))
    assert mae(got["good"], good.labels_bpm) < 4
    rst = [m["window"] for m in collector.messages if m["device"] == "rst"]
    assert sorted(rst) == sorted(list(range(len(first.labels_bpm))) * 2)  # both epochs, each window once
    nanny = sorted(got["nanny"])
    assert 0 < len(nanny) < len(nan_rec.labels_bpm)  # windows touching the NaN hole are skipped, no fake HR
    summary = service.events("serve interrupted")[-1]
    assert summary["malformed_payloads"] == len(junk)
    assert summary["duplicate_chunks"] == len(first_chunks) and summary["epochs"] == 1
    assert summary["nan_samples"] == 40 and summary["devices"] == 3
    assert not [e for e in service.logs if e.get("event") == "text" and "Traceback" in e["text"]]
