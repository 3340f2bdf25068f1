"""The command line every `ppg-stream` command shares: one-line usage errors, exit statuses, argument
types, and the option groups (outputs, consumers, model) with their checks."""

from __future__ import annotations

import argparse

from ..core.message import DEFAULT_MIN_CONFIDENCE, topic_prefix_problem
from ..mqtt.settings import DEFAULT_PORT, BrokerUrlError, add_broker_arguments, broker_settings_from_args

EXIT_USAGE = 2
EXIT_UNDELIVERED = 1
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        raise UsageError(f"{message} (see {self.prog} --help)")


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


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


_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_arg(text: str) -> float:
    """`90`, `90s`, `30m`, `12h`, `7d` → seconds (positive)."""
    unit = text[-1:].lower() if text[-1:].lower() in _UNITS_S else "s"
    number = text[:-1] if text[-1:].lower() in _UNITS_S else text
    try:
        value = float(number) * _UNITS_S[unit]
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 30m, 12h or 7d, got {text!r}")
    return value


def port_arg(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: a number 1-65535 (0 picks a free one)")
    return port


def prefix_arg(text: str) -> str:
    problem = topic_prefix_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"invalid topic prefix {text!r:.60}: {problem}")
    return text


def embedded_port(text: str) -> int:
    """The port of `--broker embedded[:PORT]`."""
    if text == "embedded":
        return DEFAULT_PORT
    try:
        port = int(text.split(":", 1)[1])
    except (IndexError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise UsageError(f"--broker {text!r}: expected 'embedded' or 'embedded:PORT' (PORT 1-65535)")
    return port


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
    p.add_argument("--no-cues", action="store_true",
                   help="publish the model's (tracked) estimate as it is (default: beats and motion question it, docs/how-it-works.md)")
    p.add_argument("--min-confidence", type=fraction, default=DEFAULT_MIN_CONFIDENCE, metavar="C",
                   help=f"messages whose confidence is below C say reliable: false, shown as 'no reliable estimate' (default {DEFAULT_MIN_CONFIDENCE:g})")


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
