"""`ppg-stream serve` as an operator runs it against its own Mosquitto: `/metrics` scraped over HTTP and
parsed by Prometheus' own parser (broker state, reconnects, outbox, every raw chunk accounted for),
and `--session NAME` resuming the backlog the broker kept while the service was away."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Collector, free_port, run_cli
from tests.serve_helpers import (
    Service,
    by_device,
    mae,
    raw_payloads,
    synthetic_recording,
    unique_prefix,
)

pytestmark = [pytest.mark.network, pytest.mark.slow]


async def _publish(port: int, items: list[tuple[str, bytes]]) -> None:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=200) as client:
        for topic, payload in items:
            await client.publish(topic, payload, qos=1)


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "le")
            if sample.name.endswith("_bucket"):
                continue
            out[sample.name + (f"{{{label}}}" if label else "")] = sample.value
    return out


async def _wait_windows(collector: Collector, device: str, n: int, timeout_s: float = 60.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if len(by_device(collector.messages).get(device, {})) >= n:
            return
        await asyncio.sleep(0.1)


async def test_metrics_over_http_account_for_every_chunk_and_the_broker(private_mosquitto):
    port = private_mosquitto.port
    prefix = unique_prefix("met")
    metrics_port = free_port()
    rec = synthetic_recording("dev", 20.0, seed=21)
    chunks = [(topic, payload) for _, topic, payload in raw_payloads(rec, prefix, "dev", chunk_s=0.25)]
    skipped = {7}  # a 0.25 s hole: bridged (every window still comes), but counted missing
    items = [c for i, c in enumerate(chunks) if i not in skipped]
    items.insert(5, items[4])  # one chunk delivered twice
    collector = await Collector("127.0.0.1", port, f"{prefix}/+/hr").start()
    service = await Service(("--broker", f"mqtt://127.0.0.1:{port}", "--topic-prefix", prefix, "--metrics-port", str(metrics_port),
                             "--stats-interval", "1")).start()
    try:
        await _publish(port, items)
        await _wait_windows(collector, "dev", len(rec.labels_bpm))
        await asyncio.sleep(1.5)  # a stats line after the last window
        metrics = await asyncio.to_thread(_scrape, metrics_port)
        rc = await service.stop()
    finally:
        service.kill()
        await collector.stop()
    assert rc == 130 and not service.tracebacks()
    assert metrics['ppg_broker_connected{client=intake}'] == 1 and metrics['ppg_broker_connected{client=publisher}'] == 1
    assert metrics['ppg_broker_reconnects_total{client=intake}'] == 0
    assert metrics["ppg_chunks_received_total"] == len(items)
    assert metrics["ppg_chunks_duplicate_total"] == 1 and metrics["ppg_chunks_missing_total"] == len(skipped)
    assert metrics["ppg_chunks_dropped_total"] == 0
    assert metrics["ppg_windows_published_total"] == len(rec.labels_bpm)
    assert "ppg_outbox_depth" in metrics and metrics["ppg_window_latency_seconds_count"] == len(rec.labels_bpm)
    stats = service.events("stats")[-1]
    assert (stats["received_chunks"], stats["duplicate_chunks"], stats["missing_chunks"], stats["dropped_chunks"]) == (len(items), 1, 1, 0)
    summary = service.events("serve interrupted")[-1]
    assert (summary["received_chunks"], summary["duplicate_chunks"], summary["missing_chunks"]) == (len(items), 1, 1)
    left = service.events("device left")[-1]  # and per device, when it leaves
    assert (left["device"], left["received_chunks"], left["duplicate_chunks"], left["missing_chunks"], left["dropped_chunks"]) == ("dev", len(items), 1, 1, 0)


async def test_a_persistent_session_resumes_the_backlog_the_broker_kept(private_mosquitto):
    port = private_mosquitto.port
    prefix = unique_prefix("sess")
    rec = synthetic_recording("dev", 40.0, seed=22)
    chunks = raw_payloads(rec, prefix, "dev", chunk_s=1.0)
    half = [(t, p) for end, t, p in chunks if end <= 20.0]
    rest = [(t, p) for end, t, p in chunks if end > 20.0]
    args = ("--broker", f"mqtt://127.0.0.1:{port}", "--topic-prefix", prefix, "--session", "svc-a", "--idle-timeout", "120")
    collector = await Collector("127.0.0.1", port, f"{prefix}/+/hr").start()
    first = await Service(args).start()
    try:
        await _publish(port, half)
        await _wait_windows(collector, "dev", 7)
        assert await first.stop() == 130
        await _publish(port, rest)  # nobody is subscribed now: the broker keeps these for the session
        second = await Service(args).start()
        try:
            await _wait_windows(collector, "dev", 14)
            assert await second.stop() == 130
        finally:
            second.kill()
    finally:
        first.kill()
        await collector.stop()
    got = by_device(collector.messages)["dev"]
    # windows 0-6 from the first run; the second starts the device afresh at 20 s of stream time, so its
    # first window is 10 ([20, 28) s), and every chunk sent while it was away arrived
    assert set(got) == set(range(7)) | set(range(10, 17))
    assert mae(got, rec.labels_bpm) < 5
    assert second.events("serve interrupted")[-1]["received_chunks"] == len(rest)


def test_session_needs_qos_1_and_a_plain_name():
    bad = run_cli("serve", "--session", "svc", "--raw-qos", "0")
    assert bad.returncode == 2 and "--session needs --raw-qos 1" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("serve", "--session", "a b")
    assert bad.returncode == 2 and "--session 'a b'" in bad.stderr and "Traceback" not in bad.stderr
