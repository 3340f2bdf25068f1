"""`ppg-stream serve`: the service. Raw chunks of many devices in (`<prefix>/+/raw`), HR out on each
device's `<prefix>/<device>/hr` and retained `<prefix>/<device>/status`, exactly as a replay publishes.

Devices appear with their first chunk and leave after `--idle-timeout` without data (status
`offline`, state freed). The service's own retained status (and last will) is
`<prefix>/_service/<id>/status`. A periodic log line (and `/metrics` with `--metrics-port`) says how it
is doing. Ctrl-C: stop taking chunks, process what was received, `offline` for every device, flush,
exit 130.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import time

import structlog

from .serve_nats import add_nats_arguments, check_nats_args, run_nats
from ..options import (
    Parser,
    UsageError,
    add_consumer_arguments,
    add_model_arguments,
    add_output_arguments,
    check_output_args,
    positive_float,
    positive_int,
)
from ...core.message import device_id, is_device_id, service_status_topic

log = structlog.get_logger("ppg_stream.serve")

DEFAULT_IDLE_TIMEOUT_S = 30.0
DEFAULT_STATS_INTERVAL_S = 10.0

DESCRIPTION = """\
Serve many devices in one process: subscribe to raw sensor chunks on <prefix>/+/raw (the payload is
documented in docs/messages.md, "Raw chunks"), estimate heart rate per device every 2 s, and publish it on
<prefix>/<device>/hr with a retained <prefix>/<device>/status, as `ppg-stream --replay` does.

With --nats the raw chunks come from NATS JetStream instead, partitioned by device, and several
workers (processes or machines) share the partitions (docs/serve.md, "Many machines").

examples:
  ppg-stream serve                                       broker on 127.0.0.1:1883
  ppg-stream --replay S1.pkl --publish-raw               a gateway feeding it (another terminal)
  ppg-stream serve --idle-timeout 60 --metrics-port 9108 Prometheus metrics on :9108/metrics
  ppg-stream serve --session serve-1                     a persistent session: a restart resumes the broker's backlog
  ppg-stream serve --nats nats://10.0.0.1:4222,nats://10.0.0.2:4222   one worker of several
  ppg-stream --replay S1.pkl --publish-raw --nats nats://10.0.0.1:4222 a gateway into NATS
"""


def build_parser() -> argparse.ArgumentParser:
    from ...runtime.budget import DEFAULT_BUDGET_MS

    p = Parser(prog="ppg-stream serve", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--idle-timeout", type=positive_float, default=DEFAULT_IDLE_TIMEOUT_S, metavar="S", help=f"a device silent this long leaves: status offline, state freed (default {DEFAULT_IDLE_TIMEOUT_S:g})")
    p.add_argument("--max-devices", type=positive_int, default=10_000, metavar="N", help="devices served at once; beyond it new devices are refused and counted (default 10000)")
    p.add_argument("--queue-chunks", type=positive_int, default=64, metavar="N", help="chunks queued per device; a device that sends faster loses its oldest, counted (default 64)")
    p.add_argument("--max-backlog-s", type=positive_float, default=None, metavar="S",
                   help="seconds of data a device may have waiting while serve is behind; older chunks are dropped, counted "
                        "(dropped_chunks), so catching up after a peak stays quick (default: one window and two hops, 12)")
    p.add_argument("--raw-qos", type=int, choices=(0, 1), default=1, help="QoS of the raw-chunk subscription (default 1)")
    p.add_argument("--session", default=None, metavar="NAME",
                   help="a persistent MQTT session for the raw chunks (client id NAME, clean session off, QoS 1): the broker keeps "
                        "what arrives while serve is away or reconnecting and delivers it when it is back (docs/serve.md, \"Overload\")")
    p.add_argument("--service-id", default=None, help="the service's name in its status topic and MQTT client id (default serve-<hostname>)")
    p.add_argument("--stats-interval", type=positive_float, default=DEFAULT_STATS_INTERVAL_S, metavar="S", help=f"seconds between the periodic stats log lines (default {DEFAULT_STATS_INTERVAL_S:g})")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT", help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST", help="address for --metrics-port (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    add_nats_arguments(p)
    add_model_arguments(p, DEFAULT_BUDGET_MS)
    add_output_arguments(p)
    add_consumer_arguments(p)
    return p


def check_args(args: argparse.Namespace) -> None:
    check_nats_args(args)
    if args.no_mqtt and args.nats is None:
        raise UsageError("serve takes its input over MQTT: --no-mqtt does not apply (without --nats)")
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        raise UsageError(f"--metrics-port {args.metrics_port}: expected 1-65535")
    if args.session is not None:
        if args.nats is not None:
            raise UsageError("--session is an MQTT session: with --nats the durable consumer keeps the backlog")
        if not is_device_id(args.session) or len(args.session) > 64:
            raise UsageError(f"--session {args.session!r}: use up to 64 letters, digits and . _ : - only")
        if args.raw_qos == 0:
            raise UsageError("--session needs --raw-qos 1: a broker keeps only QoS 1 messages for a session that is away")
    if args.service_id is not None and not is_device_id(args.service_id):
        raise UsageError(f"--service-id {args.service_id!r}: use letters, digits and . _ : - only")
    check_output_args(args)


async def run(args: argparse.Namespace) -> int:
    if args.nats is not None:
        return await run_nats(args)
    from ..compose import build_runtime, open_engine, open_outputs, run_config, warm_up
    from ..lifecycle import finish, until_done_or_interrupted
    from ...mqtt.subscriber import MqttSubscriber
    from ...runtime.housekeeping import idle_sweeper, stats_logger
    from ...sources.raw_intake import RawIngest

    t_start = time.perf_counter()
    service = args.service_id or device_id(f"serve-{socket.gethostname()}")
    config = run_config(args, speed=1.0)
    engine = open_engine(config)
    async with contextlib.AsyncExitStack() as stack:
        service_topic = service_status_topic(args.topic_prefix, service)
        outputs = await open_outputs(config, stack, service_topic, engine, service_topic)
        if args.metrics_port is not None:
            from ...consumers.metrics import start_metrics_server

            start_metrics_server(args.metrics_host, args.metrics_port)  # a taken port is said now, not after the warm-up
            log.info("Prometheus metrics", url=f"http://{args.metrics_host}:{args.metrics_port}/metrics")
        await warm_up(engine)
        mqtt = outputs.mqtt
        runtime = build_runtime(engine, outputs, config)
        ingest = RawIngest(runtime, args.topic_prefix)
        subscriber = MqttSubscriber(mqtt.settings, f"{args.topic_prefix}/+/raw", None, on_messages=ingest.on_messages, qos=args.raw_qos,
                                    client_id=args.session or f"ppg-stream-{service}", clean_session=args.session is None)
        if args.metrics_port is not None:
            from ...consumers.metrics import register_runtime

            register_runtime(runtime, ingest, subscriber, mqtt)
        runtime_task = asyncio.create_task(runtime.run(), name="runtime")
        log.info("serving", subscribe=f"{args.topic_prefix}/+/raw", model=engine.spec.label, service=service,
                 idle_timeout_s=args.idle_timeout, max_devices=args.max_devices)

        async def service_loop() -> None:
            await subscriber.start()
            stack.push_async_callback(subscriber.close)
            await asyncio.gather(_announce(subscriber), idle_sweeper(runtime, args.idle_timeout),
                                 stats_logger(runtime, args.stats_interval, lambda: {"malformed_payloads": ingest.malformed, "oversized_payloads": subscriber.oversized,
                                                                            "reconnects": subscriber.reconnects, "outbox": mqtt.pending}),
                                 _until_refused(subscriber, mqtt))

        _, interrupted = await until_done_or_interrupted(service_loop())
        await subscriber.close()
        runtime.finish_all()
        await runtime_task
        fields = {**runtime.summary(time.perf_counter() - t_start).as_log_fields(), **ingest.counts(), "mqtt_messages": subscriber.received,
                  "oversized_payloads": subscriber.oversized, "reconnects": subscriber.reconnects}
        fields.pop("mae_bpm", None), fields.pop("mae_untracked_bpm", None)
        delivery = await outputs.close()
    return finish("serve", fields, interrupted, delivery, config.outputs.outbox, config.outputs.flush_timeout_s)


async def _announce(subscriber) -> None:
    await subscriber.subscribed.wait()
    log.info("subscribed", topic=subscriber.topic_filter, broker=subscriber.settings.url)


async def _until_refused(subscriber, publisher) -> None:
    """The broker refused our credentials mid-run: stop (the error ends the run as one line)."""
    await asyncio.wait([asyncio.ensure_future(subscriber.failed.wait()), asyncio.ensure_future(publisher.failed.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    raise subscriber.fatal_error or publisher.fatal_error
