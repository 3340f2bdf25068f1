"""`ppg-stream serve --nats URL`: one worker of a fleet spread over several processes or machines.

Raw chunks come from the JetStream stream that the servers' subject mapping partitions by device;
this worker consumes the partitions it holds leases for (stream/nats/worker.py) into the same
runtime as `serve` on MQTT, and publishes heart rate to JetStream on `<prefix>.<device>.hr` (and, with
`--broker`, to the MQTT topics as today). Ctrl-C hands every partition over (drained, acknowledged)
before it exits, so the others take over at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import socket
import time

import structlog

from ..options import UsageError, positive_float, positive_int
from ...core.message import device_id, service_status_topic

log = structlog.get_logger("ppg_stream.serve")

DEFAULT_PARTITIONS = 16
DEFAULT_LEASE_S = 6.0
DEFAULT_HISTORY_S = 30.0
DEFAULT_BUFFER_S = 600.0
DEFAULT_BUFFER_MIB = 1024


def add_nats_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale-out on NATS JetStream (docs/serve.md, \"Many machines\")")
    g.add_argument("--nats", metavar="URL", help="take raw chunks from NATS JetStream instead of MQTT: nats://HOST[:PORT][,nats://...] (several workers share the partitions)")
    g.add_argument("--nats-partitions", type=positive_int, default=DEFAULT_PARTITIONS, metavar="P", help=f"partitions of the raw stream; the same P as the servers' subject mapping (default {DEFAULT_PARTITIONS})")
    g.add_argument("--nats-stream", default=None, metavar="NAME", help="base name of the streams and lease bucket (default from --topic-prefix: ppg → PPG_RAW, PPG_HR, PPG_leases)")
    g.add_argument("--nats-replicas", type=positive_int, default=None, metavar="R", help="replicas of streams and bucket when this worker creates them (default 3 in a cluster of 3+, else 1)")
    g.add_argument("--nats-lease-s", type=positive_float, default=DEFAULT_LEASE_S, metavar="S", help=f"partition lease time: a dead worker's partitions are taken over this long after its last renewal (default {DEFAULT_LEASE_S:g})")
    g.add_argument("--nats-history-s", type=positive_float, default=DEFAULT_HISTORY_S, metavar="S", help=f"a new owner of a partition re-reads this much history to rebuild its devices' state (default {DEFAULT_HISTORY_S:g}; at least the 8 s window plus a margin)")
    g.add_argument("--nats-buffer-s", type=positive_float, default=DEFAULT_BUFFER_S, metavar="S", help=f"how long the streams keep raw chunks and heart rate (default {DEFAULT_BUFFER_S:g}: a buffer, not an archive)")
    g.add_argument("--nats-buffer-mib", type=positive_int, default=DEFAULT_BUFFER_MIB, metavar="MIB", help=f"and at most this much per stream, the oldest out first (default {DEFAULT_BUFFER_MIB}; ~0.85 MB/s per 1000 devices with 1 s chunks)")


def check_nats_args(args: argparse.Namespace) -> None:
    from ...nats.jetstream import parse_nats_urls

    nats_only = ("nats_stream", "nats_replicas")
    if args.nats is None:
        for option in nats_only:
            if getattr(args, option) is not None:
                raise UsageError(f"--{option.replace('_', '-')} applies to --nats only")
        return
    try:
        parse_nats_urls(args.nats)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.nats_stream is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", args.nats_stream):
        raise UsageError(f"--nats-stream {args.nats_stream!r}: use 1-32 letters, digits, _ or -")
    if args.nats_history_s < 10.0:
        raise UsageError(f"--nats-history-s {args.nats_history_s:g}: at least 10 s (the 8 s window and a hop)")
    if args.nats_buffer_s < 2 * args.nats_history_s:
        raise UsageError(f"--nats-buffer-s {args.nats_buffer_s:g}: at least twice --nats-history-s")
    if args.nats_lease_s < 2.0:
        raise UsageError(f"--nats-lease-s {args.nats_lease_s:g}: at least 2 s")
    for option, what in (("dashboard", "reads"), ("ha_discovery", "publishes over")):
        if getattr(args, option) is not None and args.broker is None:
            raise UsageError(f"--{option.replace('_', '-')} {what} MQTT, but with --nats heart rate goes to MQTT only when --broker URL names a broker")


def worker_name(service: str) -> str:
    """Unique per process (a restarted worker is a new member), usable as a KV key."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{service}-{os.getpid()}-{secrets.token_hex(2)}")


async def run_nats(args: argparse.Namespace) -> int:
    import nats.errors
    import nats.js.errors

    from ..compose import build_runtime, open_engine, open_outputs, run_config, warm_up
    from ..lifecycle import finish, until_done_or_interrupted
    from ...runtime.housekeeping import idle_sweeper, stats_logger
    from ...nats.leases import LeaseConfigError, Leases, Progress
    from ...nats.publisher import NatsHrPublisher
    from ...nats.jetstream import NatsSetupError, StreamPlan, auto_replicas, check_mapping, connect, ensure_streams, has_jetstream, parse_nats_urls, retry_while_electing
    from ...nats.subjects import stream_base, subject_prefix
    from ...nats.worker import NatsWorker, WorkerConfig
    from ...sources.raw_intake import RawIngest

    t_start = time.perf_counter()
    service = args.service_id or device_id(f"serve-{socket.gethostname()}")
    worker_id = worker_name(service)
    config = run_config(args, speed=None, mqtt=args.broker is not None)  # MQTT copies of the heart rate only when asked for
    engine = open_engine(config)
    prefix = subject_prefix(args.topic_prefix)
    base = args.nats_stream or stream_base(prefix)
    urls = parse_nats_urls(args.nats)
    try:
        nc = await connect(urls, name=f"ppg-stream {worker_id}")
    except NatsSetupError as e:
        raise UsageError(str(e)) from None
    try:
        js = nc.jetstream(timeout=3.0)
        plan = StreamPlan(prefix, f"{base}_RAW", f"{base}_HR", args.nats_partitions, args.nats_replicas or auto_replicas(nc),
                          args.nats_buffer_s, args.nats_buffer_mib << 20)

        async def set_up() -> tuple[Leases, Progress]:
            """Every step is idempotent, so the whole set-up is retried while the cluster elects."""
            await ensure_streams(js, plan)
            await check_mapping(js, plan)
            return (await Leases.open(js, f"{base}_leases", worker_id, args.nats_lease_s, plan.replicas),
                    await Progress.open(js, f"{base}_progress", plan.replicas))

        no_jetstream = f"JetStream does not answer at {args.nats} (is nats-server running with JetStream, -js?)"
        if not has_jetstream(nc):
            raise UsageError(f"{no_jetstream}: the server says it has none")
        try:
            leases, progress = await retry_while_electing(set_up)
        except (NatsSetupError, LeaseConfigError) as e:
            raise UsageError(str(e)) from None
        except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError) as e:
            raise UsageError(f"{no_jetstream}: {e}") from None
        except nats.errors.Error as e:
            raise UsageError(f"NATS at {args.nats} did not answer the set-up: {e or type(e).__name__}") from None
        async with contextlib.AsyncExitStack() as stack:
            hr = NatsHrPublisher(nc, js, prefix, flush_timeout_s=args.flush_timeout)
            await hr.start()
            outputs = await open_outputs(config, stack, service_status_topic(args.topic_prefix, worker_id), engine, first=hr)
            if args.metrics_port is not None:
                from ...consumers.metrics import register_runtime, start_metrics_server

                start_metrics_server(args.metrics_host, args.metrics_port)
            await warm_up(engine)
            runtime = build_runtime(engine, outputs, config)
            ingest = RawIngest(runtime, args.topic_prefix)
            worker_config = WorkerConfig(partitions=args.nats_partitions, lease_s=args.nats_lease_s, history_s=args.nats_history_s)
            worker = NatsWorker(nc, js, plan.raw_stream, prefix, ingest, hr, leases, progress, worker_config)
            if args.metrics_port is not None:
                register_runtime(runtime, ingest)
            runtime_task = asyncio.create_task(runtime.run(), name="runtime")
            log.info("serving", nats=nc.connected_url.netloc if nc.connected_url else args.nats, stream=plan.raw_stream, partitions=plan.partitions,
                     replicas=plan.replicas, hr_stream=plan.hr_stream, worker=worker_id, model=engine.spec.label)

            async def service_loop() -> None:
                extra = lambda: {"malformed_payloads": ingest.malformed, "partitions": worker.owned(), "members": len(worker.members), "hr_unstored": hr.queued}  # noqa: E731
                await asyncio.gather(worker.run(), idle_sweeper(runtime, args.idle_timeout, worker.prune),
                                     stats_logger(runtime, args.stats_interval, extra))

            _, interrupted = await until_done_or_interrupted(service_loop())
            await worker.leave()
            runtime.finish_all()
            await runtime_task
            fields = {**runtime.summary(time.perf_counter() - t_start).as_log_fields(), **ingest.counts(), **worker.counts(),
                      "rebuilt_windows": runtime.rebuilt_windows, "hr_stored": hr.delivered, "hr_republished": hr.republished}
            fields.pop("mae_bpm", None), fields.pop("mae_untracked_bpm", None)
            delivery = await outputs.close()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)
    return finish("serve", fields, interrupted, delivery, config.outputs.outbox, config.outputs.flush_timeout_s,
                  target="NATS JetStream (or the MQTT broker)")
