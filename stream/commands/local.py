"""`ppg-stream --replay FILE... | --demo | --ble ADDRESS...`: local sources in one process.

Every source is one device of the one runtime (a single recording is the fleet with one device).
With `--publish-raw` the process is a gateway: it forwards each device's raw PPG and ACC as raw
chunks on `<prefix>/<device>/raw` for a central `ppg-stream serve` (`only`, the default: no model runs
here; `also`: it publishes its own HR too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

import structlog

from stream.commands.common import (
    Parser,
    UsageError,
    add_consumer_arguments,
    add_model_arguments,
    add_output_arguments,
    check_output_args,
    close_publishers,
    finish,
    positive_float,
    start_publishers,
    until_done_or_interrupted,
)
from stream.commands.gateway_target import add_gateway_arguments, check_gateway_args, raw_publisher
from stream.message import DeviceIdError, device_id, service_status_topic, status_topic

log = structlog.get_logger("ppg_stream")

DEMO_RECORDING = Path(__file__).resolve().parent.parent.parent / "replay" / "demo_dalia.pkl"

DESCRIPTION = """\
Estimate heart rate from wrist PPG, one value per 8 s window every 2 s, and publish it over MQTT
(topic <prefix>/<device>/hr, JSON) and/or print it as JSON lines.

examples:
  ppg-stream --demo --speed 10 --stdout        bundled synthetic recording, 10x real time
  ppg-stream --replay S1.pkl --speed max        a PPG-DaLiA subject as fast as possible
  ppg-stream --replay S1.pkl S2.pkl DIR/        several recordings (or a folder), one device each
  ppg-stream --replay DATA_01_TYPE01.mat        an IEEE SPC 2015 recording in real time
  ppg-stream --ble scan                         list BLE wearables nearby
  ppg-stream --ble A0:9E:1A:12:34:56            a Polar Verity Sense / OH1 (raw PPG), or any
                                                Heart Rate Service device (its own HR passed through)
  ppg-stream --ble ADDR --publish-raw           a gateway: raw PPG+ACC to MQTT for `ppg-stream serve`
  ppg-stream --replay S1.pkl --publish-raw --nats nats://HOST:4222   the same into NATS JetStream
  ppg-stream serve                              the service: raw chunks of many devices in, HR out
  mosquitto_sub -t 'ppg/#' -v                   watch the messages from another terminal

With no --broker, the broker on 127.0.0.1:1883 is used if one answers; otherwise an embedded
broker is started there for the duration of the run.
"""


SPEED_RANGE = (0.01, 1e6)
CHUNK_S_RANGE = (0.1, 3600.0)  # a replay is cut into chunks up front: a tiny chunk means millions of them
MAX_BLE_ADDRESS = 64


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
    from stream.runtime import DEFAULT_BUDGET_MS

    p = Parser(prog="ppg-stream", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--replay", metavar="FILE", type=Path, nargs="+", help="replay recordings: PPG-DaLiA .pkl, IEEE SPC 2015 .mat, or .csv (t,ppg[,acc_x,acc_y,acc_z]); several files or folders, one device each")
    src.add_argument("--demo", action="store_true", help="replay the bundled synthetic demo recording (3 min, known heart rate)")
    src.add_argument("--ble", metavar="ADDRESS|scan", action="append", help="a BLE wearable by address (repeat for several; Ctrl-C stops them), or 'scan' to list devices nearby")
    p.add_argument("--scan-timeout", type=positive_float, default=None, metavar="S", help="BLE: how long to scan (default 5 for 'scan', 10 to find an address)")
    p.add_argument("--speed", type=speed_arg, default=1.0, metavar="N|max", help="replay speed: 1 = real time (default), N times faster, or max")
    p.add_argument("--chunk-s", type=chunk_seconds, default=None, metavar="S", help="replay chunk length in seconds (default 0.25 in real time, 32 at max)")
    p.add_argument("--device-id", help="device id in topics and messages (default: the recording's subject; one source only)")
    p.add_argument("--publish-raw", nargs="?", const="only", choices=("only", "also"), metavar="only|also",
                   help="gateway: forward raw PPG+ACC on <prefix>/<device>/raw for `ppg-stream serve` (only: no HR here, the default; also: HR too)")
    add_gateway_arguments(p)
    add_model_arguments(p, DEFAULT_BUDGET_MS)
    add_output_arguments(p)
    add_consumer_arguments(p)
    return p


def check_args(args: argparse.Namespace) -> None:
    if args.ble is not None:
        for address in args.ble:
            if not address.strip() or any(c.isspace() for c in address) or len(address) > MAX_BLE_ADDRESS:
                raise UsageError(f"--ble {address!r:.80}: expected a device address such as AA:BB:CC:DD:EE:FF, or 'scan'")
        if any(a.lower() == "scan" for a in args.ble) and len(args.ble) > 1:
            raise UsageError("--ble scan lists devices on its own: give it without device addresses")
        if len(set(a.lower() for a in args.ble)) != len(args.ble):
            raise UsageError("--ble: the same address is given twice")
        for option, default in (("speed", 1.0), ("chunk_s", None)):
            if getattr(args, option) != default:
                raise UsageError(f"--{option.replace('_', '-')} applies to replays only: a BLE device streams in real time")
    elif args.scan_timeout is not None:
        raise UsageError("--scan-timeout applies to --ble only")
    if args.device_id is not None:
        try:
            device_id(args.device_id)
        except DeviceIdError as e:
            raise UsageError(f"--device-id: {e}") from None
    if args.publish_raw and args.no_mqtt and args.nats is None:
        raise UsageError("--publish-raw forwards over MQTT (or NATS with --nats): it cannot be combined with --no-mqtt")
    if args.publish_raw == "only" and args.ha_discovery is not None:
        raise UsageError("--ha-discovery announces this process's heart rate, but --publish-raw only publishes none (use --publish-raw also, or --ha-discovery on serve)")
    check_gateway_args(args)
    check_output_args(args)


async def run(args: argparse.Namespace, ble_backend: object | None = None) -> int:
    """`ble_backend` replaces bleak (the tests' scripted device); everything else is the real path."""
    if args.ble is not None:
        from stream.commands.ble import run_ble

        return await run_ble(args, ble_backend)
    return await run_replay(args)


def replay_devices(args: argparse.Namespace) -> list[tuple[str, object]]:
    """(device id, recording) per file: ids from the subjects, else the file names; never ambiguous."""
    from replay.load import load_recording, recording_paths

    paths = [DEMO_RECORDING] if args.demo else [p for given in args.replay for p in recording_paths(given)]
    if args.device_id is not None and len(paths) > 1:
        raise UsageError(f"--device-id names one device, but {len(paths)} recordings are replayed")
    out: list[tuple[str, object]] = []
    taken: set[str] = set()
    for path in paths:
        recording = load_recording(path)
        candidates = [args.device_id] if args.device_id is not None else [recording.subject, path.stem, str(path)]
        device = next((device_id(c) for c in candidates if c and device_id(c) not in taken), None)
        if device is None:
            raise UsageError(f"{path}: its device id {device_id(candidates[0])!r} is already taken by another recording")
        taken.add(device)
        out.append((device, recording))
    return out


def process_will(prefix: str, devices: list[str], model_runs: bool, kind: str) -> str:
    """The last will's topic: the device's own status when this process publishes the HR of exactly
    one device (as ever); otherwise the process's own status, never a device's that others publish."""
    if model_runs and len(devices) == 1:
        return status_topic(prefix, devices[0])
    return service_status_topic(prefix, f"{'gateway' if not model_runs else kind}-{devices[0]}")


async def run_replay(args: argparse.Namespace) -> int:
    from replay.source import ReplaySource
    from stream.engine import InferenceEngine
    from stream.raw_gateway import RawGateway
    from stream.runtime import Runtime, RuntimeConfig, warm_up_runtime
    from stream.source_pump import pump

    t_start = time.perf_counter()
    devices = replay_devices(args)
    sources = [(device, ReplaySource(rec, speed=args.speed, chunk_s=args.chunk_s)) for device, rec in devices]
    model_runs = args.publish_raw != "only"
    engine = InferenceEngine(args.model) if model_runs else None
    if engine is not None:
        warm_up_runtime(engine, dict(sources[0][1].rates))
    log.info(
        "replay starting",
        files=len(devices), **({"file": str(devices[0][1].source or (DEMO_RECORDING if args.demo else args.replay[0])), "device": devices[0][0],
                               "duration_s": round(devices[0][1].duration_s, 1)} if len(devices) == 1 else {"devices": [d for d, _ in devices][:20]}),
        model=engine.spec.label if engine else "none (gateway)", speed=args.speed or "max",
        warm_up_ms=round((time.perf_counter() - t_start) * 1000, 1),
    )
    # the last will: the device's status when this process publishes its HR; a gateway has its own
    will = process_will(args.topic_prefix, [d for d, _ in devices], model_runs, "replay")
    async with contextlib.AsyncExitStack() as stack:
        publishers = await start_publishers(args, stack, will, engine.spec.label if engine else None,
                                            None if will.endswith(f"/{devices[0][0]}/status") else will)
        runtime = None
        if engine is not None:
            runtime = Runtime(engine, [p for p in publishers], RuntimeConfig(budget_ms=args.budget_ms, speed=args.speed, tracking=not args.no_tracking, beat_refinement=not args.no_beat_refinement))
        raw_out = await raw_publisher(args, stack, publishers) if args.publish_raw else None
        gateway = RawGateway(raw_out, args.topic_prefix) if raw_out is not None else None
        runtime_task = asyncio.create_task(runtime.run()) if runtime else None

        async def all_sources() -> None:
            feeds = []
            for device, source in sources:
                if gateway is not None:
                    source = gateway.tap(source, device)
                feeds.append(pump(runtime, source, device, wait=True) if runtime else gateway.consume(source))
            await asyncio.gather(*feeds)

        _, interrupted = await until_done_or_interrupted(all_sources())
        if runtime is not None:
            runtime.finish_all()
            await runtime_task
            fields = runtime.summary(time.perf_counter() - t_start).as_log_fields()
        else:
            fields = {"devices": len(devices), "wall_s": round(time.perf_counter() - t_start, 3)}
        if gateway is not None:
            fields.update(gateway.counts())
        delivery = await close_publishers(publishers if raw_out is None or raw_out in publishers else [*publishers, raw_out])
    return finish("replay", fields, interrupted, delivery, args, target="NATS JetStream or the MQTT broker" if args.nats else "the MQTT broker")
