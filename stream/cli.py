"""`ppg-stream`: heart rate from a replayed recording or a BLE wearable to MQTT and/or stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import structlog

from stream.broker import DEFAULT_HOST, DEFAULT_PORT, BrokerUrlError, EmbeddedBroker, broker_answers, parse_broker_url
from stream.logs import configure_logging
from stream.message import DeviceIdError, device_id, topic_prefix_problem
from stream.pipeline import DEFAULT_BUDGET_MS, Pipeline, PipelineConfig

log = structlog.get_logger("ppg_stream")

DEMO_RECORDING = Path(__file__).resolve().parent.parent / "replay" / "demo_dalia.pkl"
EXIT_USAGE = 2
EXIT_UNDELIVERED = 1

DESCRIPTION = """\
Estimate heart rate from wrist PPG, one value per 8 s window every 2 s, and publish it over MQTT
(topic <prefix>/<device>/hr, JSON) and/or print it as JSON lines.

examples:
  ppg-stream --demo --speed 10 --stdout        bundled synthetic recording, 10x real time
  ppg-stream --replay S1.pkl --speed max        a PPG-DaLiA subject as fast as possible
  ppg-stream --replay DATA_01_TYPE01.mat        an IEEE SPC 2015 recording in real time
  ppg-stream --ble scan                         list BLE wearables nearby
  ppg-stream --ble A0:9E:1A:12:34:56            a Polar Verity Sense / OH1 (raw PPG), or any
                                                Heart Rate Service device (its own HR passed through)
  mosquitto_sub -t 'ppg/#' -v                   watch the messages from another terminal

With no --broker, the broker on 127.0.0.1:1883 is used if one answers; otherwise an embedded
broker is started there for the duration of the run.
"""


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        raise UsageError(f"{message} (see ppg-stream --help)")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


SPEED_RANGE = (0.01, 1e6)
CHUNK_S_RANGE = (0.1, 3600.0)  # a replay is cut into chunks up front: a tiny chunk means millions of them


def speed_arg(text: str) -> float | None:
    if text.lower() == "max":
        return None
    try:
        value = positive_float(text)
    except argparse.ArgumentTypeError:
        value = 0.0
    if not SPEED_RANGE[0] <= value <= SPEED_RANGE[1]:
        raise argparse.ArgumentTypeError(f"invalid speed {text!r}: a number from {SPEED_RANGE[0]:g} to {SPEED_RANGE[1]:,.0f} (1 = real time) or 'max'")
    return value


def chunk_seconds(text: str) -> float:
    value = positive_float(text)
    if not CHUNK_S_RANGE[0] <= value <= CHUNK_S_RANGE[1]:
        raise argparse.ArgumentTypeError(f"expected {CHUNK_S_RANGE[0]:g}-{CHUNK_S_RANGE[1]:g} seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ppg-stream", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--replay", metavar="FILE", type=Path, help="replay a recording: PPG-DaLiA .pkl, IEEE SPC 2015 .mat, or .csv (t,ppg[,acc_x,acc_y,acc_z])")
    src.add_argument("--demo", action="store_true", help="replay the bundled synthetic demo recording (3 min, known heart rate)")
    src.add_argument("--ble", metavar="ADDRESS|scan", help="a BLE wearable by address (Ctrl-C stops it), or 'scan' to list devices nearby")
    p.add_argument("--scan-timeout", type=positive_float, default=None, metavar="S", help="BLE: how long to scan (default 5 for 'scan', 10 to find an address)")
    p.add_argument("--speed", type=speed_arg, default=1.0, metavar="N|max", help="replay speed: 1 = real time (default), N times faster, or max")
    p.add_argument("--chunk-s", type=chunk_seconds, default=None, metavar="S", help="replay chunk length in seconds (default 0.25 in real time, 32 at max)")
    p.add_argument("--broker", metavar="URL", help="mqtt://HOST[:PORT], or 'embedded[:PORT]' to start the built-in broker (default: auto)")
    p.add_argument("--topic-prefix", default="ppg", help="topic prefix (default: ppg → ppg/<device>/hr)")
    p.add_argument("--device-id", help="device id in topics and messages (default: the recording's subject)")
    p.add_argument("--model", default="student", metavar="PATH", help="ONNX model following the model contract, or a built-in: student (the shipped distilled model, default) or spectral (non-learned)")
    p.add_argument("--budget-ms", type=positive_float, default=DEFAULT_BUDGET_MS, metavar="MS", help=f"per-window latency budget; windows over it are flagged late (default {DEFAULT_BUDGET_MS:g})")
    p.add_argument("--no-tracking", action="store_true", help="publish each window's own estimate instead of the tracked one")
    p.add_argument("--stdout", action="store_true", help="print every message as a JSON line on stdout")
    p.add_argument("--no-mqtt", action="store_true", help="do not publish over MQTT")
    p.add_argument("--outbox", type=int, default=10_000, metavar="N", help="messages kept while the broker is away (default 10000)")
    p.add_argument("--flush-timeout", type=positive_float, default=10.0, metavar="S", help="how long to wait at the end for the broker to take buffered messages (default 10)")
    p.add_argument("--log-json", action="store_true", help="logs as JSON lines on stderr")
    return p


def _check_args(args: argparse.Namespace) -> None:
    if args.ble is not None:
        if not args.ble.strip() or any(c.isspace() for c in args.ble) or len(args.ble) > 64:
            raise UsageError(f"--ble {args.ble!r:.80}: expected a device address such as AA:BB:CC:DD:EE:FF, or 'scan'")
        for option, default in (("speed", 1.0), ("chunk_s", None)):
            if getattr(args, option) != default:
                raise UsageError(f"--{option.replace('_', '-')} applies to replays only: a BLE device streams in real time")
    elif args.scan_timeout is not None:
        raise UsageError("--scan-timeout applies to --ble only")
    problem = topic_prefix_problem(args.topic_prefix)
    if problem:
        raise UsageError(f"--topic-prefix {args.topic_prefix!r:.60}: {problem}")
    if args.device_id is not None:
        try:
            device_id(args.device_id)
        except DeviceIdError as e:
            raise UsageError(f"--device-id: {e}") from None
    if args.outbox < 1:
        raise UsageError("--outbox must be at least 1")
    if args.broker and args.broker.startswith("embedded"):
        _embedded_port(args.broker)
    elif args.broker:
        try:
            parse_broker_url(args.broker)
        except BrokerUrlError as e:
            raise UsageError(str(e)) from None
    if args.no_mqtt and args.broker:
        raise UsageError("--broker and --no-mqtt contradict each other")


def _embedded_port(text: str) -> int:
    if text == "embedded":
        return DEFAULT_PORT
    try:
        port = int(text.split(":", 1)[1])
    except (IndexError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise UsageError(f"--broker {text!r}: expected 'embedded' or 'embedded:PORT' (PORT 1-65535)")
    return port


async def _choose_broker(args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> tuple[str, int] | None:
    """Returns where to publish, starting the embedded broker inside `stack` when that is the choice."""
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
    port = _embedded_port(args.broker) if args.broker else DEFAULT_PORT
    await stack.enter_async_context(EmbeddedBroker(DEFAULT_HOST, port))
    log.info(
        "embedded MQTT broker listening",
        broker=f"mqtt://{DEFAULT_HOST}:{port}",
        subscribe=f"mosquitto_sub -h {DEFAULT_HOST} -p {port} -t '{args.topic_prefix}/#' -v",
    )
    return DEFAULT_HOST, port


async def run(args: argparse.Namespace, ble_backend: object | None = None) -> int:
    """`ble_backend` replaces bleak (the tests' scripted device); everything else is the real path."""
    if args.ble is not None:
        return await _run_ble(args, ble_backend)
    return await _run_replay(args)


async def _run_replay(args: argparse.Namespace) -> int:
    from replay.load import load_recording
    from replay.source import ReplaySource
    from stream.engine import InferenceEngine

    t_start = time.perf_counter()
    path = DEMO_RECORDING if args.demo else args.replay
    recording = load_recording(path)
    engine = InferenceEngine(args.model)
    source = ReplaySource(recording, speed=args.speed, chunk_s=args.chunk_s)
    device = device_id(args.device_id or recording.subject)
    pipeline = Pipeline(source, engine, [], PipelineConfig(device=device, budget_ms=args.budget_ms, tracking=not args.no_tracking))
    pipeline.warm_up()
    log.info(
        "replay starting",
        file=str(path), device=device, model=engine.spec.label, duration_s=round(recording.duration_s, 1),
        speed=args.speed or "max", warm_up_ms=round((time.perf_counter() - t_start) * 1000, 1),
    )
    async with contextlib.AsyncExitStack() as stack:
        await _start_publishers(args, stack, device, pipeline.publishers)
        summary, interrupted = await _until_done_or_interrupted(pipeline.run(), lambda: pipeline.summary(time.perf_counter() - t_start))
        undelivered = await _close_publishers(pipeline.publishers)
    return _finish("replay", summary.as_log_fields(), interrupted, undelivered, args)


async def _run_ble(args: argparse.Namespace, backend: object | None) -> int:
    from stream.ble.backend import BleakBackend
    from stream.ble.connection import BleConnection
    from stream.ble.device_stream import ble_device_id, open_device_stream
    from stream.ble.errors import DeviceError
    from stream.ble.heart_rate_relay import HeartRateRelay
    from stream.ble.scan import DEFAULT_SCAN_S, format_scan, scan
    from stream.chunk import ACC, PPG
    from stream.engine import InferenceEngine
    from stream.pipeline import warm_up_runtime

    backend = backend or BleakBackend()
    if args.ble.lower() == "scan":
        print(format_scan(await scan(backend, args.scan_timeout or DEFAULT_SCAN_S)))
        return 0
    engine = InferenceEngine(args.model)  # a bad model fails before the radio is touched
    warm_up_runtime(engine, {PPG: 55.0, ACC: 52.0})  # compile now: once connected, the device streams
    device = device_id(args.device_id or ble_device_id(args.ble))
    conn = BleConnection(backend, args.ble)
    log.info("looking for the device", address=args.ble, device=device)
    try:
        await conn.find(args.scan_timeout or 10.0)
        stream = await open_device_stream(conn, device, backend.time_scale)
    except backend.transient_errors as e:
        raise DeviceError(f"could not connect to {args.ble}: {e.__class__.__name__}: {e or 'no reason given'}") from None
    t_start = time.perf_counter()
    try:
        async with contextlib.AsyncExitStack() as stack:
            if isinstance(stream, HeartRateRelay):
                publishers = stream.publishers
                work, summarise = stream.run(), lambda: stream.summary().as_log_fields()
            else:
                pipeline = Pipeline(stream, engine, [], PipelineConfig(device=device, budget_ms=args.budget_ms, tracking=not args.no_tracking))
                publishers = pipeline.publishers
                work = pipeline.run()
                summarise = lambda: {**pipeline.summary(time.perf_counter() - t_start).as_log_fields(), "disconnections": stream.disconnections, "malformed_frames": stream.parse_errors}  # noqa: E731
            await _start_publishers(args, stack, device, publishers)
            conn.on_status = lambda status: [p.set_status(status) for p in publishers if hasattr(p, "set_status")]
            log.info("BLE stream running: Ctrl-C stops the device and exits", device=device, model=engine.spec.label if not isinstance(stream, HeartRateRelay) else "device")
            _, interrupted = await _until_done_or_interrupted(work, lambda: None)
            await conn.close(stream.teardown)  # stop the measurement on the device, then disconnect
            fields = summarise()
            undelivered = await _close_publishers(publishers)
    finally:
        await conn.close(stream.teardown)
    return _finish("BLE stream", fields, interrupted, undelivered, args)


async def _start_publishers(args: argparse.Namespace, stack: contextlib.AsyncExitStack, device: str, publishers: list) -> None:
    from stream.mqtt_publisher import MqttPublisher
    from stream.publisher import StdoutPublisher

    target = await _choose_broker(args, stack)
    if target is not None:
        publishers.append(MqttPublisher(*target, prefix=args.topic_prefix, device=device, outbox_size=args.outbox, flush_timeout_s=args.flush_timeout))
    if args.stdout:
        publishers.append(StdoutPublisher())
    for publisher in publishers:
        await publisher.start()


async def _until_done_or_interrupted(work, on_interrupt) -> tuple[object, bool]:
    """Run `work` until it ends or Ctrl-C/SIGTERM cancels it; returns (result, interrupted)."""
    task = asyncio.create_task(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        return await task, False
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # we were cancelled from outside, not by a signal
        return on_interrupt(), True


async def _close_publishers(publishers: list) -> int:
    undelivered = 0
    for publisher in publishers:
        undelivered += await publisher.close()
    return undelivered


def _finish(what: str, fields: dict, interrupted: bool, undelivered: int, args: argparse.Namespace) -> int:
    fields["undelivered"] = undelivered
    log.info(f"{what} interrupted" if interrupted else f"{what} finished", **fields)
    if undelivered:
        print(f"ppg-stream: error: {undelivered} messages were not delivered: the MQTT broker did not take them within {args.flush_timeout:g} s", file=sys.stderr)
        return EXIT_UNDELIVERED
    return 130 if interrupted and args.ble is None else 0


def main(argv: list[str] | None = None, ble_backend: object | None = None) -> int:
    from replay.recording import RecordingError
    from stream.ble.errors import BleParseError, DeviceError
    from stream.engine import ModelLoadError

    try:
        args = build_parser().parse_args(argv)
        _check_args(args)
        configure_logging(json_lines=args.log_json)
        return asyncio.run(run(args, ble_backend))
    except UsageError as e:
        print(f"ppg-stream: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (RecordingError, ModelLoadError, DeviceError, OSError) as e:
        print(f"ppg-stream: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BleParseError as e:
        print(f"ppg-stream: error: the device sent something ppg-stream cannot read: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ppg-stream: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
