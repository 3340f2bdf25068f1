"""`python -m stream.dashboard [--broker URL] [--topic-prefix P] [--port 8080] [--host 127.0.0.1]`:
the `ppg-stream dashboard` command, runnable before the subcommand dispatcher exists."""

from __future__ import annotations

import argparse
import asyncio
import sys

from stream.dashboard.command import EXIT_USAGE, add_arguments, run
from stream.logs import configure_logging


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        print(f"ppg-stream: error: {message} (see ppg-stream dashboard --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="ppg-stream dashboard", description="Live heart rate of every device publishing under the topic prefix, in the browser.")
    add_arguments(parser)
    parser.add_argument("--log-json", action="store_true", help="logs as JSON lines on stderr")
    args = parser.parse_args(argv)
    configure_logging(json_lines=args.log_json)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
