"""`ppg-stream dashboard`: serve the live dashboard until Ctrl-C.

`add_arguments` and `run` are what the subcommand dispatcher wires; `python -m stream.dashboard` runs the
same thing on its own (see `__main__.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from stream.broker import DEFAULT_HOST, DEFAULT_PORT, BrokerUrlError, parse_broker_url
from stream.dashboard.dashboard import Dashboard, DashboardError
from stream.dashboard.fleet import MAX_DEVICES

DEFAULT_HTTP_PORT = 8080
DEFAULT_HTTP_HOST = "127.0.0.1"
EXIT_USAGE = 2


def broker_arg(text: str) -> tuple[str, int]:
    try:
        return parse_broker_url(text)
    except BrokerUrlError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix(f"--broker {text!r}: ")) from None


def port_arg(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: a number 1-65535 (0 picks a free one)")
    return port


def prefix_arg(text: str) -> str:
    if any(c in text for c in "#+") or not text.strip("/"):
        raise argparse.ArgumentTypeError(f"invalid topic prefix {text!r}: must be non-empty and contain no MQTT wildcards (# +)")
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", type=broker_arg, default=(DEFAULT_HOST, DEFAULT_PORT), metavar="URL",
                        help=f"MQTT broker to subscribe to, mqtt://HOST[:PORT] (default mqtt://{DEFAULT_HOST}:{DEFAULT_PORT})")
    parser.add_argument("--topic-prefix", type=prefix_arg, default="ppg", help="topic prefix (default: ppg → ppg/+/hr, ppg/+/status)")
    parser.add_argument("--port", type=port_arg, default=DEFAULT_HTTP_PORT, help=f"HTTP port (default {DEFAULT_HTTP_PORT}; 0 picks a free one)")
    parser.add_argument("--host", default=DEFAULT_HTTP_HOST,
                        help=f"address to listen on (default {DEFAULT_HTTP_HOST}, this machine only; 0.0.0.0 shows the heart rates to the whole network)")
    parser.add_argument("--max-devices", type=positive_int, default=MAX_DEVICES, metavar="N",
                        help=f"devices kept at most; the one quiet for longest goes first (default {MAX_DEVICES})")


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 then, 2 if the dashboard cannot listen."""
    broker_host, broker_port = args.broker
    stop = asyncio.Event()
    with _stop_on_signals(stop):  # before starting: a signal during start-up still ends the run cleanly
        try:
            async with Dashboard(args.host, args.port, broker_host, broker_port, args.topic_prefix, max_devices=args.max_devices):
                await stop.wait()
        except DashboardError as e:
            print(f"ppg-stream: error: {e}", file=sys.stderr)
            return EXIT_USAGE
    return 0


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event):
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
