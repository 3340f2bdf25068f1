"""`ppg-stream`: a thin dispatcher. Each command lives in its own module:

    ppg-stream [--replay FILE... | --demo | --ble ADDRESS...] ...   commands/local.py (BLE: commands/ble.py)
    ppg-stream serve ...                                            commands/serve.py (--nats: commands/serve_nats.py)
    ppg-stream dashboard ...                                        commands/dashboard.py

and builds what it runs through the one composition root, `compose.py`.

Every user mistake ends here as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import sys

from .options import EXIT_INTERRUPTED, EXIT_USAGE, UsageError

SUBCOMMANDS = ("serve", "dashboard")


def _command(argv: list[str]):
    """(module's build_parser, check_args, run) for the command `argv` names."""
    if argv and argv[0] == "serve":
        from .commands import serve as command
    elif argv and argv[0] == "dashboard":
        from .commands import dashboard as command
    else:
        from .commands import local as command
    return command, argv[1:] if argv and argv[0] in SUBCOMMANDS else argv


def main(argv: list[str] | None = None, ble_backend: object | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        command, rest = _command(argv)
        args = command.build_parser().parse_args(rest)
        command.check_args(args)
        from .logs import configure_logging

        configure_logging(json_lines=getattr(args, "log_json", False))
        if ble_backend is not None:
            return asyncio.run(command.run(args, ble_backend))
        return asyncio.run(command.run(args))
    except UsageError as e:
        print(f"ppg-stream: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ppg-stream: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        line = _mistake_line(e)
        if line is None:
            raise
        print(f"ppg-stream: error: {line}", file=sys.stderr)
        return EXIT_USAGE


def _mistake_line(error: Exception) -> str | None:
    """The one line for an error that is the user's to fix (a file, a model, a device, the broker, a port);
    None for anything else (a bug: its traceback is wanted). The error types are imported only here, so a
    usage error is answered without loading the signal-processing stack."""
    from ...replay.recording import RecordingError
    from ..core.engine import ModelLoadError
    from ..mqtt.connection import MqttFatalError
    from ..sources.ble.errors import BleParseError, DeviceError

    if isinstance(error, BleParseError):
        return f"the device sent something ppg-stream cannot read: {error}"
    if isinstance(error, (RecordingError, ModelLoadError, DeviceError, MqttFatalError, OSError)):
        return str(error)
    return None


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
