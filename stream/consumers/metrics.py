"""Prometheus `/metrics` for `serve`: the same figures as the periodic log line, read from the
runtime's counters when scraped (nothing is computed per window for it)."""

from __future__ import annotations

import errno

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class RuntimeCollector(Collector):
    """`subscriber`: the raw-chunk intake's MQTT client (None with NATS); `publisher`: the HR publisher
    (None without MQTT output). Their connection state, reconnects and the outbox are read when scraped."""

    def __init__(self, runtime, ingest, subscriber=None, publisher=None) -> None:
        self.runtime = runtime
        self.ingest = ingest
        self.subscriber = subscriber
        self.publisher = publisher

    def collect(self):
        rt = self.runtime
        totals = rt.totals()
        yield GaugeMetricFamily("ppg_devices", "Devices served now", value=len(rt.table))
        yield from self._broker()
        counters = {
            "ppg_chunks_received": ("Raw chunks received for a device (valid payloads, duplicates included)", totals.received_chunks),
            "ppg_chunks_missing": ("Raw chunks never received: sequence numbers skipped within a device's stream", totals.missing_chunks),
            "ppg_chunks_accepted": ("Raw chunks accepted from gateways (valid payloads, before device checks)", self.ingest.chunks),
            "ppg_malformed_payloads": ("Raw payloads dropped as malformed (or on a bad topic)", self.ingest.malformed),
            "ppg_windows_published": ("HR messages handed to the publishers", totals.windows),
            "ppg_windows_late": ("Windows over the latency budget", totals.late),
            "ppg_windows_dropped_stale": ("Windows dropped because the service fell behind", totals.dropped_stale),
            "ppg_windows_skipped_gap": ("Windows touching a gap, never estimated", totals.skipped_gap),
            "ppg_windows_invalid": ("Windows without a usable estimate", totals.invalid_windows),
            "ppg_chunks_dropped": ("Chunks dropped because a device sent faster than it was served", totals.dropped_chunks),
            "ppg_chunks_duplicate": ("Chunks received twice", totals.duplicate_chunks),
            "ppg_device_restarts": ("New epochs of devices that restarted", totals.epochs),
            "ppg_devices_refused": ("Devices refused at --max-devices", rt.table.refused),
        }
        for name, (text, value) in counters.items():
            yield CounterMetricFamily(name, text, value=value)
        below = rt.latency.count_below([le * 1000.0 for le in LATENCY_BUCKETS_S])
        buckets = [(str(le), n) for le, n in zip(LATENCY_BUCKETS_S, below)]
        buckets.append(("+Inf", rt.latency.count))
        yield HistogramMetricFamily("ppg_window_latency_seconds",
                                    "Window age when handed to the publishers: from when the gateway sent the chunk that completed it "
                                    "(payload version 2), else from when the service read it",
                                    buckets=buckets, sum_value=rt.latency.sum_ms / 1000.0)

    def _broker(self):
        connected = GaugeMetricFamily("ppg_broker_connected", "1 while the MQTT connection is up (and the raw subscription made)", labels=["client"])
        reconnects = CounterMetricFamily("ppg_broker_reconnects", "MQTT connections lost or attempts failed", labels=["client"])
        for name, client, up in (("intake", self.subscriber, lambda c: c.subscribed.is_set()),
                                 ("publisher", self.publisher, lambda c: c.connected.is_set())):
            if client is not None:
                connected.add_metric([name], 1 if up(client) else 0)
                reconnects.add_metric([name], client.reconnects)
        yield connected
        yield reconnects
        if self.publisher is not None:
            yield GaugeMetricFamily("ppg_outbox_depth", "HR messages accepted and not yet acknowledged by the broker", value=self.publisher.pending)
            yield GaugeMetricFamily("ppg_outbox_size", "The outbox's bound (--outbox)", value=self.publisher.outbox_size)
            yield CounterMetricFamily("ppg_outbox_dropped", "HR messages dropped because the outbox was full", value=self.publisher.dropped_overflow)


class MetricsPortError(OSError):
    """The metrics port cannot be listened on (taken, or an address not of this machine): one line."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def start_metrics_server(host: str, port: int) -> None:
    """Listen on `/metrics` (a daemon thread) before the warm-up, so a taken port is said at once; the
    runtime's figures appear there once `register_runtime` is called."""
    try:
        start_http_server(port, addr=host)
    except OSError as e:
        reason = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e)).lower()
        raise MetricsPortError(e.errno, f"--metrics-port {port}: cannot listen on {host}:{port}: {reason}") from None


def register_runtime(runtime, ingest, subscriber=None, publisher=None) -> None:
    REGISTRY.register(RuntimeCollector(runtime, ingest, subscriber, publisher))
