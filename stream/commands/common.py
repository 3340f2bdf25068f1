"""What every `ppg-stream` command shares: one-line usage errors, the output options (MQTT broker,
topics, stdout), publisher start/stop, Ctrl-C handling and the final exit status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import structlog

from stream.broker import DEFAULT_HOST, DEFAULT_PORT, EmbeddedBroker, broker_answers
from stream.message import topic_prefix_problem
from stream.mqtt_publisher import DeliveryReport, delivery_loss_line
from stream.mqtt_settings import BrokerSettings, BrokerUrlError, add_broker_arguments, broker_settings_from_args

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
    add_broker_arguments(p)
    p.add_argument("--topic-prefix", default="ppg", help="topic prefix (default: ppg → ppg/<device>/hr)")
    p.add_argument("--stdout", action="store_true", help="print every message as a JSON line on stdout")
    p.add_argument("--no-mqtt", action="store_true", help="do not publish over MQTT")
    p.add_argument("--outbox", type=positive_int, default=10_000, metavar="N", help="messages kept while the broker is away (default 10000)")
    p.add_argument("--flush-timeout", type=positive_float, default=10.0, metavar="S", help="how long to wait at the end for the broker to take buffered messages (default 10)")
    p.add_argument("--log-json", action="store_true", help="logs as JSON lines on stderr")


def add_consumer_arguments(p: argparse.ArgumentParser) -> None:
    """The consumers the card names, next to a streaming command: the dashboard and Home Assistant."""
    from stream.dashboard.command import port_arg

    p.add_argument("--dashboard", nargs="?", const=8080, type=port_arg, default=None, metavar="PORT",
                   help="also serve the live dashboard on http://127.0.0.1:PORT/ (default 8080; it reads the broker like any subscriber)")
    p.add_argument("--ha-discovery", nargs="?", const="homeassistant", default=None, metavar="PREFIX",
                   help="publish Home Assistant MQTT discovery configs for every device (discovery prefix, default homeassistant)")
    p.add_argument("--ha-remove-on-leave", action="store_true",
                   help="with --ha-discovery: remove a device's entity when it leaves (default: it shows as unavailable)")


def add_model_arguments(p: argparse.ArgumentParser, default_budget_ms: float) -> None:
    p.add_argument("--model", default="student", metavar="PATH", help="ONNX model following the model contract, or a built-in: student (the shipped distilled model, default) or spectral (non-learned)")
    p.add_argument("--budget-ms", type=positive_float, default=default_budget_ms, metavar="MS", help=f"per-window latency budget; windows over it are flagged late (default {default_budget_ms:g})")
    p.add_argument("--no-tracking", action="store_true", help="publish each window's own estimate instead of the tracked one")
    p.add_argument("--no-beat-refinement", action="store_true",
                   help="keep the model's estimate in still, clean windows too (default: refined from beat intervals there)")


def check_output_args(args: argparse.Namespace) -> None:
    problem = topic_prefix_problem(args.topic_prefix)
    if problem:
        raise UsageError(f"--topic-prefix {args.topic_prefix!r:.60}: {problem}")
    if args.broker and args.broker.startswith("embedded"):
        embedded_port(args.broker)
    try:
        broker_settings_from_args(args)
    except BrokerUrlError as e:
        raise UsageError(str(e)) from None
    if args.no_mqtt and args.broker:
        raise UsageError("--broker and --no-mqtt contradict each other")
    if getattr(args, "dashboard", None) is not None and args.no_mqtt:
        raise UsageError("--dashboard reads the MQTT broker: it cannot be combined with --no-mqtt")
    if getattr(args, "ha_discovery", None) is not None:
        if args.no_mqtt:
            raise UsageError("--ha-discovery publishes over MQTT: it cannot be combined with --no-mqtt")
        if any(c in args.ha_discovery for c in "#+") or not args.ha_discovery.strip("/"):
            raise UsageError(f"--ha-discovery {args.ha_discovery!r}: a non-empty topic prefix without MQTT wildcards (# +)")
    elif getattr(args, "ha_remove_on_leave", False):
        raise UsageError("--ha-remove-on-leave applies to --ha-discovery only")


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


async def choose_broker(args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> BrokerSettings | None:
    """Where to publish, starting the embedded broker inside `stack` when that is the choice."""
    if args.no_mqtt:
        return None
    settings = broker_settings_from_args(args)
    if settings is not None:
        if not await broker_answers(settings.host, settings.port):
            log.warning("broker not answering yet: messages are buffered until it does", broker=settings.url)
        return settings
    if args.broker is None and await broker_answers(DEFAULT_HOST, DEFAULT_PORT):
        log.info("using the MQTT broker already running", broker=f"mqtt://{DEFAULT_HOST}:{DEFAULT_PORT}")
        return BrokerSettings(DEFAULT_HOST, DEFAULT_PORT)
    port = embedded_port(args.broker) if args.broker else DEFAULT_PORT
    await stack.enter_async_context(EmbeddedBroker(DEFAULT_HOST, port))
    log.info(
        "embedded MQTT broker listening",
        broker=f"mqtt://{DEFAULT_HOST}:{port}",
        subscribe=f"mosquitto_sub -h {DEFAULT_HOST} -p {port} -t '{args.topic_prefix}/#' -v",
    )
    return BrokerSettings(DEFAULT_HOST, port)


async def start_publishers(args: argparse.Namespace, stack: contextlib.AsyncExitStack, will_topic: str,
                           model_label: str | None = None, service_topic: str | None = None, stdout: bool | None = None) -> list:
    """The MQTT publisher (last will on `will_topic`) and/or stdout, started; with `--dashboard` the
    dashboard is subscribed before anything is published, and with `--ha-discovery` every device's
    config is published when it first comes online (`service_topic`: the process's own status, which
    Home Assistant then also requires for availability)."""
    from stream.mqtt_publisher import MqttPublisher
    from stream.publisher import StdoutPublisher

    publishers: list = []
    target = await choose_broker(args, stack)
    if target is not None and getattr(args, "dashboard", None) is not None:
        from stream.dashboard.dashboard import Dashboard

        dashboard = await stack.enter_async_context(Dashboard("127.0.0.1", args.dashboard, prefix=args.topic_prefix, broker=target))
        await dashboard.ready(5.0)
    if target is not None:
        mqtt = MqttPublisher(target, args.topic_prefix, will_topic, args.outbox, args.flush_timeout)
        publishers.append(mqtt)
        if getattr(args, "ha_discovery", None) is not None:
            from stream.ha_announcer import HaAnnouncer

            publishers.append(HaAnnouncer(mqtt, args.topic_prefix, args.ha_discovery, model_label or "device",
                                          service_topic, remove_on_leave=args.ha_remove_on_leave))
    if args.stdout if stdout is None else stdout:
        publishers.append(StdoutPublisher())
    for publisher in publishers:
        await publisher.start()
    return publishers


async def close_publishers(publishers: list) -> DeliveryReport | None:
    """Flush and stop every publisher; their delivery reports added up (None when none publishes over a
    network). A publisher that only counts what it could not deliver (NATS) adds that as undelivered."""
    report = None
    for publisher in publishers:
        result = await publisher.close()
        if isinstance(result, int) and not isinstance(result, bool):
            result = DeliveryReport(undelivered=result)
        if isinstance(result, DeliveryReport):
            report = result if report is None else report + result
    return report


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


def finish(what: str, fields: dict, interrupted: bool, delivery: DeliveryReport | None, args: argparse.Namespace,
           interrupted_status: int = EXIT_INTERRUPTED, target: str = "the MQTT broker") -> int:
    """The final log line and the exit status: 1 if any message was lost (dropped or undelivered)."""
    if delivery is not None:
        fields.update(delivered=delivery.delivered, dropped_overflow=delivery.dropped_overflow, undelivered=delivery.undelivered)
    log.info(f"{what} interrupted" if interrupted else f"{what} finished", **fields)
    if delivery is not None and delivery.lost:
        line = delivery_loss_line(delivery, args.outbox, args.flush_timeout).replace("the MQTT broker", target)
        print(f"ppg-stream: error: {line}", file=sys.stderr)
        return EXIT_UNDELIVERED
    return interrupted_status if interrupted else 0
