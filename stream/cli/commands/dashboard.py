"""`ppg-stream dashboard`: serve the live dashboard until Ctrl-C (then exit 0). A broker that refuses it
(credentials, certificates) or a mistake in --broker ends it with one line (exit 2); a broker that is
merely down is waited for."""

from __future__ import annotations

import argparse

from ..options import Parser, UsageError, duration_arg, embedded_port, port_arg, positive_int, prefix_arg
from ...mqtt.settings import DEFAULT_HOST, DEFAULT_PORT, BrokerSettings, BrokerUrlError, add_broker_arguments, broker_settings_from_args

DEFAULT_HTTP_PORT = 8080
DEFAULT_HTTP_HOST = "127.0.0.1"


def build_parser() -> argparse.ArgumentParser:
    from ...consumers.dashboard.dashboard import RETENTION_S
    from ...consumers.dashboard.fleet import MAX_DEVICES

    parser = Parser(prog="ppg-stream dashboard", description="Live heart rate of every device publishing under the topic prefix, in the browser.")
    add_broker_arguments(parser)  # --broker mqtt(s)://..., --ca-file, --cert, --key (default mqtt://127.0.0.1:1883)
    parser.add_argument("--topic-prefix", type=prefix_arg, default="ppg", help="topic prefix (default: ppg → ppg/+/hr, ppg/+/status)")
    parser.add_argument("--port", type=port_arg, default=DEFAULT_HTTP_PORT, help=f"HTTP port (default {DEFAULT_HTTP_PORT}; 0 picks a free one)")
    parser.add_argument("--host", default=DEFAULT_HTTP_HOST,
                        help=f"address to listen on (default {DEFAULT_HTTP_HOST}, this machine only; 0.0.0.0 shows the heart rates to the whole network)")
    parser.add_argument("--max-devices", type=positive_int, default=MAX_DEVICES, metavar="N",
                        help=f"devices kept at most; the one quiet for longest goes first (default {MAX_DEVICES})")
    parser.add_argument("--retention", type=duration_arg, default=RETENTION_S, metavar="DURATION",
                        help="forget a device offline for longer than this, and clear its retained status on the broker (default 1d; e.g. 12h, 30m)")
    parser.add_argument("--log-json", action="store_true", help="logs as JSON lines on stderr")
    return parser


def broker_settings(args: argparse.Namespace) -> BrokerSettings:
    """The broker to read (an embedded broker is another command's: here it is simply its address)."""
    if args.broker and args.broker.startswith("embedded"):
        return BrokerSettings(DEFAULT_HOST, embedded_port(args.broker))
    return broker_settings_from_args(args) or BrokerSettings(DEFAULT_HOST, DEFAULT_PORT)


def check_args(args: argparse.Namespace) -> None:
    try:
        broker_settings(args)
    except BrokerUrlError as e:
        raise UsageError(str(e)) from None


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 then (DashboardError, e.g. a port in use: one line, exit 2)."""
    from ..lifecycle import until_done_or_interrupted
    from ...consumers.dashboard.dashboard import Dashboard

    async def serve_until_refused() -> None:
        async with Dashboard(args.host, args.port, prefix=args.topic_prefix, broker=broker_settings(args), max_devices=args.max_devices,
                             retention_s=args.retention) as dashboard:
            await dashboard.failed.wait()
            raise dashboard.error

    await until_done_or_interrupted(serve_until_refused())
    return 0
