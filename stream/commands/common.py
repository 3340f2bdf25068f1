"""What every `ppg-stream` command shares: one-line usage errors, the output options (MQTT broker,
topics, stdout), publisher start/stop, Ctrl-C handling and the final exit status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import structlog

from stream.broker import DEFAULT_HOST, DEFAULT_PORT, BrokerUrlError, EmbeddedBroker, broker_answers, parse_broker_url

log = structlog.get_logger("ppg_stream")

EXIT_USAGE = 2
EXIT_UNDELIVERED = 1
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        raise UsageError(f"{message} (see {self.prog} --help)")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return value


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", metavar="URL", help="mqtt://HOST[:PORT], or 'embedded[:PORT]' to start the built-in broker (default: auto)")
    p.add_argument("--topic-prefix", default="ppg", help="topic prefix (default: ppg → ppg/<device>/hr)")
    p.add_argument("--stdout", action="store_true", help="print every message as a JSON line on stdout")
    p.add_argument("--no-mqtt", action="store_true", help="do not publish over MQTT")
    p.add_argument("--outbox", type=positive_int, default=10_000, metavar="N", help="messages kept while the broker is away (default 10000)")
    p.add_argument("--flush-timeout", type=positive_float, default=10.0, metavar="S", help="how long to wait at the end for the broker to take buffered messages (default 10)")
    p.add_argument("--log-json", action="store_true", help="logs as JSON lines on stderr")


def add_model_arguments(p: argparse.ArgumentParser, default_budget_ms: float) -> None:
    p.add_argument("--model", default="student", metavar="PATH", help="ONNX model following the model contract, or a built-in: student (the shipped distilled model, default) or spectral (non-learned)")
    p.add_argument("--budget-ms", type=positive_float, default=default_budget_ms, metavar="MS", help=f"per-window latency budget; windows over it are flagged late (default {default_budget_ms:g})")
    p.add_argument("--no-tracking", action="store_true", help="publish each window's own estimate instead of the tracked one")


def check_output_args(args: argparse.Namespace) -> None:
    if any(c in args.topic_prefix for c in "#+") or not args.topic_prefix.strip("/"):
        raise UsageError(f"--topic-prefix {args.topic_prefix!r}: must be non-empty and contain no MQTT wildcards (# +)")
    if args.broker and args.broker.startswith("embedded"):
        embedded_port(args.broker)
    elif args.broker:
        try:
            parse_broker_url(args.broker)
        except BrokerUrlError as e:
            raise UsageError(str(e)) from None
    if args.no_mqtt and args.broker:
        raise UsageError("--broker and --no-mqtt contradict each other")


def embedded_port(text: str) -> int:
    if text == "embedded":
        return DEFAULT_PORT
    try:
        port = int(text.split(":", 1)[1])
    except (IndexError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise UsageError(f"--broker {text!r}: expected 'embedded' or 'embedded:PORT' (PORT 1-65535)")
    return port


async def choose_broker(args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> tuple[str, int] | None:
    """Where to publish, starting the embedded broker inside `stack` when that is the choice."""
    if args.no_mqtt:
        return None
    if args.broker and not args.broker.startswith("embedded"):
        host, port = parse_broker_url(args.broker)
        if not await broker_answers(host, port):
            log.warning("broker not answering yet: messages are buffered until it does", broker=f"mqtt://{host}:{port}")
        return host, port
    if args.broker is None and await broker_answers(DEFAULT_HOST, DEFAULT_PORT):
        log.info("using the MQTT broker already running", broker=f"mqtt://{DEFAULT_HOST}:{DEFAULT_PORT}")
        return DEFAULT_HOST, DEFAULT_PORT
    port = embedded_port(args.broker) if args.broker else DEFAULT_PORT
    await stack.enter_async_context(EmbeddedBroker(DEFAULT_HOST, port))
    log.info(
        "embedded MQTT broker listening",
        broker=f"mqtt://{DEFAULT_HOST}:{port}",
        subscribe=f"mosquitto_sub -h {DEFAULT_HOST} -p {port} -t '{args.topic_prefix}/#' -v",
    )
    return DEFAULT_HOST, port


async def start_publishers(args: argparse.Namespace, stack: contextlib.AsyncExitStack, will_topic: str, stdout: bool | None = None) -> list:
    """The MQTT publisher (last will on `will_topic`) and/or stdout, started."""
    from stream.mqtt_publisher import MqttPublisher
    from stream.publisher import StdoutPublisher

    publishers: list = []
    target = await choose_broker(args, stack)
    if target is not None:
        publishers.append(MqttPublisher(*target, prefix=args.topic_prefix, will_topic=will_topic, outbox_size=args.outbox, flush_timeout_s=args.flush_timeout))
    if args.stdout if stdout is None else stdout:
        publishers.append(StdoutPublisher())
    for publisher in publishers:
        await publisher.start()
    return publishers


async def close_publishers(publishers: list) -> int:
    undelivered = 0
    for publisher in publishers:
        undelivered += await publisher.close()
    return undelivered


async def until_done_or_interrupted(work) -> tuple[object, bool]:
    """Run `work` until it ends or Ctrl-C/SIGTERM cancels it; returns (result or None, interrupted)."""
    async def awaited():  # a Task of our own: a cancelled gather() future reports an exception, not cancelled()
        return await work

    task = asyncio.create_task(awaited())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        return await task, False
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # we were cancelled from outside, not by a signal
        return None, True
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def finish(what: str, fields: dict, interrupted: bool, undelivered: int, flush_timeout_s: float, interrupted_status: int = EXIT_INTERRUPTED,
           target: str = "the MQTT broker") -> int:
    fields["undelivered"] = undelivered
    log.info(f"{what} interrupted" if interrupted else f"{what} finished", **fields)
    if undelivered:
        print(f"ppg-stream: error: {undelivered} messages were not delivered: {target} did not take them within {flush_timeout_s:g} s", file=sys.stderr)
        return EXIT_UNDELIVERED
    return interrupted_status if interrupted else 0
