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

from ..options import (
    Parser,
    UsageError,
    add_consumer_arguments,
    add_model_arguments,
    add_output_arguments,
    check_output_args,
    positive_float,
)
from ...core.message import DeviceIdError, device_id

log = structlog.get_logger("ppg_stream")


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
    from ...runtime.budget import DEFAULT_BUDGET_MS

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
    p.add_argument("--nats", metavar="URL", help="gateway: with --publish-raw, send the raw chunks to NATS JetStream (nats://HOST[:PORT][,...]) for `serve --nats` instead of MQTT")
    add_model_arguments(p, DEFAULT_BUDGET_MS)
    add_output_arguments(p)
    add_consumer_arguments(p)
    return p


def check_args(args: argparse.Namespace) -> None:
    if args.ble is not None:
        from ...sources.ble.address import is_ble_address

        for address in args.ble:
            if address.lower() != "scan" and not is_ble_address(address):
                raise UsageError(f"--ble {address!r:.80}: expected a device address such as A0:9E:1A:12:34:56 "
                                 "(on macOS the UUID that --ble scan lists), or 'scan'")
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
    if args.nats is not None:
        check_nats_target(args)
    check_output_args(args)


def check_nats_target(args: argparse.Namespace) -> None:
    from ...nats.jetstream import parse_nats_urls

    if not args.publish_raw:
        raise UsageError("--nats is where --publish-raw sends raw chunks: give --publish-raw too")
    try:
        parse_nats_urls(args.nats)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.publish_raw == "only" and args.broker is None and args.dashboard is not None:
        raise UsageError("--dashboard reads the MQTT broker, but with --publish-raw only --nats nothing is published there (add --broker URL, or use --publish-raw also)")


async def run(args: argparse.Namespace, ble_backend: object | None = None) -> int:
    """`ble_backend` replaces bleak (the tests' scripted device); everything else is the real path."""
    if args.ble is not None:
        from .ble import run_ble

        return await run_ble(args, ble_backend)
    return await run_replay(args)


def replay_devices(args: argparse.Namespace) -> list[tuple[str, object]]:
    """(device id, recording) per file: ids from the subjects, else the file names; never ambiguous."""
    from ....replay.load import load_recording, recording_paths
    from ....replay.recording import WINDOW_S
    from ....replay.synthetic import DEMO_RECORDING

    paths = [DEMO_RECORDING] if args.demo else [p for given in args.replay for p in recording_paths(given)]
    if args.device_id is not None and len(paths) > 1:
        raise UsageError(f"--device-id names one device, but {len(paths)} recordings are replayed")
    out: list[tuple[str, object]] = []
    taken: set[str] = set()
    for path in paths:
        recording = load_recording(path)
        if recording.duration_s < WINDOW_S:
            raise UsageError(f"{path}: {recording.duration_s:.3g} s of PPG is shorter than one {WINDOW_S:g} s window: there is no heart rate to estimate in it")
        candidates = [args.device_id] if args.device_id is not None else [recording.subject, path.stem, str(path)]
        device = next((device_id(c) for c in candidates if c and device_id(c) not in taken), None)
        if device is None:
            raise UsageError(f"{path}: its device id {device_id(candidates[0])!r} is already taken by another recording")
        taken.add(device)
        out.append((device, recording))
    return out


async def run_replay(args: argparse.Namespace) -> int:
    """Replay the recordings; with --dashboard the dashboard (and an embedded broker) stay up after the
    replay until Ctrl-C, so its page still shows the run to whoever opens it later."""
    from ....replay.synthetic import DEMO_RECORDING
    from ..compose import hr_over_mqtt, open_engine, open_local_run, run_config
    from ..lifecycle import finish, until_done_or_interrupted
    from ...runtime.source_pump import pump
    from ...sources.replay import ReplaySource

    t_start = time.perf_counter()
    devices = replay_devices(args)
    sources = [(device, ReplaySource(rec, speed=args.speed, chunk_s=args.chunk_s)) for device, rec in devices]
    model_runs = args.publish_raw != "only"
    config = run_config(args, speed=args.speed, model_runs=model_runs, mqtt=hr_over_mqtt(args))
    engine = open_engine(config)
    async with contextlib.AsyncExitStack() as stack:
        local = await open_local_run(config, stack, engine, [d for d, _ in devices], "replay", args.nats, bool(args.publish_raw), t_start,
                                     rates=sources[0][1].rates)
        log.info(
            "replay starting",
            files=len(devices), **({"file": str(devices[0][1].source or (DEMO_RECORDING if args.demo else args.replay[0])), "device": devices[0][0],
                                   "duration_s": round(devices[0][1].duration_s, 1)} if len(devices) == 1 else {"devices": [d for d, _ in devices][:20]}),
            model=engine.spec.label if engine else "none (gateway)", speed=args.speed or "max",
            warm_up_ms=round((time.perf_counter() - t_start) * 1000, 1),
        )

        async def all_sources() -> None:
            feeds = []
            for device, source in sources:
                if local.gateway is not None:
                    source = local.gateway.tap(source, device)
                feeds.append(pump(local.runtime, source, device, wait=True) if local.runtime else local.gateway.consume(source))
            await asyncio.gather(*feeds)

        _, interrupted = await local.feed(all_sources())
        fields, delivery = await local.finish(len(devices))
        status = finish("replay", fields, interrupted, delivery, config.outputs.outbox, config.outputs.flush_timeout_s,
                        target="NATS JetStream or the MQTT broker" if args.nats else "the MQTT broker")
        dashboard = local.outputs.dashboard
        if dashboard is not None and not interrupted:
            log.info("replay done: the dashboard stays up until Ctrl-C", url=dashboard.url)
            await until_done_or_interrupted(dashboard.failed.wait())
    return status
