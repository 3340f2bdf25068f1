"""Where a gateway (`--publish-raw`) sends raw chunks: the MQTT publisher, or with `--nats URL`
JetStream (`<prefix>.<device>.raw`, each chunk acknowledged by the stream). The same bytes either way."""

from __future__ import annotations

import argparse
import contextlib

from stream.commands.common import UsageError


def add_gateway_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nats", metavar="URL", help="gateway: with --publish-raw, send the raw chunks to NATS JetStream (nats://HOST[:PORT][,...]) for `serve --nats` instead of MQTT")


def check_gateway_args(args: argparse.Namespace) -> None:
    if args.nats is None:
        return
    from stream.nats_setup import parse_nats_urls

    if not args.publish_raw:
        raise UsageError("--nats is where --publish-raw sends raw chunks: give --publish-raw too")
    try:
        parse_nats_urls(args.nats)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.publish_raw == "only" and args.broker is None:
        args.no_mqtt = True  # nothing else to send over MQTT unless a broker is named


async def raw_publisher(args: argparse.Namespace, stack: contextlib.AsyncExitStack, publishers: list) -> object:
    """The publisher a RawGateway forwards through. A NATS one is not in `publishers` (it takes raw
    chunks only): the caller closes it and counts what it could not deliver."""
    if args.nats is None:
        return publishers[0]
    from stream.nats_publisher import NatsRawPublisher
    from stream.nats_setup import NatsSetupError, connect, parse_nats_urls

    try:
        nc = await connect(parse_nats_urls(args.nats), name="ppg-stream gateway")
    except NatsSetupError as e:
        raise UsageError(str(e)) from None
    stack.push_async_callback(nc.close)
    publisher = NatsRawPublisher(nc.jetstream(timeout=3.0), outbox_size=args.outbox, flush_timeout_s=args.flush_timeout)
    await publisher.start()
    return publisher
