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

from stream.broker import DEFAULT_HOST, DEFAULT_PORT
from stream.dashboard.dashboard import Dashboard, DashboardError
from stream.commands.common import positive_int
from stream.dashboard.fleet import MAX_DEVICES
from stream.message import topic_prefix_problem
from stream.mqtt_settings import BrokerSettings, BrokerUrlError, add_broker_arguments, broker_settings_from_args

DEFAULT_HTTP_PORT = 8080
DEFAULT_HTTP_HOST = "127.0.0.1"
EXIT_USAGE = 2


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_broker_arguments(parser)  # --broker mqtt(s)://..., --ca-file, --cert, --key (default mqtt://127.0.0.1:1883)
    parser.add_argument("--topic-prefix", type=prefix_arg, default="ppg", help="topic prefix (default: ppg → ppg/+/hr, ppg/+/status)")
    parser.add_argument("--port", type=port_arg, default=DEFAULT_HTTP_PORT, help=f"HTTP port (default {DEFAULT_HTTP_PORT}; 0 picks a free one)")
    parser.add_argument("--host", default=DEFAULT_HTTP_HOST,
                        help=f"address to listen on (default {DEFAULT_HTTP_HOST}, this machine only; 0.0.0.0 shows the heart rates to the whole network)")
    parser.add_argument("--max-devices", type=positive_int, default=MAX_DEVICES, metavar="N",
                        help=f"devices kept at most; the one quiet for longest goes first (default {MAX_DEVICES})")


def broker_settings(args: argparse.Namespace) -> BrokerSettings:
    """The broker to read (an embedded broker is another command's: here it is simply its address)."""
    if args.broker and args.broker.startswith("embedded"):
        port = args.broker.partition(":")[2]
        return BrokerSettings(DEFAULT_HOST, int(port) if port.isdigit() else DEFAULT_PORT)
    return broker_settings_from_args(args) or BrokerSettings(DEFAULT_HOST, DEFAULT_PORT)


def build_parser() -> argparse.ArgumentParser:
    from stream.commands.common import Parser

    parser = Parser(prog="ppg-stream dashboard", description="Live heart rate of every device publishing under the topic prefix, in the browser.")
    add_arguments(parser)
    parser.add_argument("--log-json", action="store_true", help="logs as JSON lines on stderr")
    return parser


def check_args(args: argparse.Namespace) -> None:
    from stream.commands.common import UsageError

    try:
        broker_settings(args)
    except BrokerUrlError as e:
        raise UsageError(str(e)) from None


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 then, 2 if the dashboard cannot listen."""
    stop = asyncio.Event()
    with _stop_on_signals(stop):  # before starting: a signal during start-up still ends the run cleanly
        try:
            async with Dashboard(args.host, args.port, prefix=args.topic_prefix, broker=broker_settings(args), max_devices=args.max_devices):
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
