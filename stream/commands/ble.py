"""`ppg-stream --ble ADDRESS [--ble ADDRESS ...]`: BLE wearables, each one device of the one runtime.

A wearable with raw PPG (Polar PMD) is a live source of the runtime; one with only the Heart Rate
Service has its own HR passed through (`source: device`). Each connection reconnects on its own;
Ctrl-C stops every device's measurement, then disconnects, then exits 0 (the way to stop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

import structlog

from stream.commands.common import close_publishers, finish, start_publishers, until_done_or_interrupted
from stream.message import device_id

log = structlog.get_logger("ppg_stream")


async def run_ble(args: argparse.Namespace, backend: object | None) -> int:
    from stream.ble.backend import BleakBackend
    from stream.ble.scan import DEFAULT_SCAN_S, format_scan, scan
    from stream.chunk import ACC, PPG
    from stream.commands.local import process_will
    from stream.engine import InferenceEngine
    from stream.runtime import Runtime, RuntimeConfig, warm_up_runtime
    from stream.ble.device_stream import ble_device_id

    backend = backend or BleakBackend()
    if args.ble[0].lower() == "scan":
        print(format_scan(await scan(backend, args.scan_timeout or DEFAULT_SCAN_S)))
        return 0
    if args.device_id is not None and len(args.ble) > 1:
        from stream.commands.common import UsageError

        raise UsageError(f"--device-id names one device, but {len(args.ble)} are given with --ble")
    model_runs = args.publish_raw != "only"
    engine = InferenceEngine(args.model) if model_runs else None  # a bad model fails before the radio is touched
    if engine is not None:
        warm_up_runtime(engine, {PPG: 55.0, ACC: 52.0})  # compile now: once connected, the device streams
    devices = [device_id(args.device_id or ble_device_id(a)) for a in args.ble]
    t_start = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        will = process_will(args.topic_prefix, devices, model_runs, "ble")
        publishers = await start_publishers(args, stack, will, engine.spec.label if engine else None,
                                            None if will.endswith(f"/{devices[0]}/status") else will)
        runtime = Runtime(engine, publishers, RuntimeConfig(budget_ms=args.budget_ms, speed=1.0, tracking=not args.no_tracking, beat_refinement=not args.no_beat_refinement)) if engine else None
        gateway = raw_out = None
        if args.publish_raw:
            from stream.commands.gateway_target import raw_publisher
            from stream.raw_gateway import RawGateway

            raw_out = await raw_publisher(args, stack, publishers)
            gateway = RawGateway(raw_out, args.topic_prefix)
        runtime_task = asyncio.create_task(runtime.run()) if runtime else None
        wearables = [Wearable(address, device, backend, args, runtime, gateway, publishers) for address, device in zip(args.ble, devices)]
        try:
            await asyncio.gather(*(w.connect() for w in wearables))
            log.info("BLE stream running: Ctrl-C stops the devices and exits", devices=devices, model=engine.spec.label if engine else "none (gateway)")
            _, interrupted = await until_done_or_interrupted(asyncio.gather(*(w.run() for w in wearables)))
            for w in wearables:
                await w.close()  # stop the measurement on the device, then disconnect
            fields: dict = {}
            if runtime is not None:
                runtime.stop()
                await runtime_task
                fields.update(runtime.summary(time.perf_counter() - t_start).as_log_fields())
            for w in wearables:
                fields.update(w.counts(prefix=len(wearables) > 1))
            if gateway is not None:
                fields.update(gateway.counts())
            delivery = await close_publishers(publishers if raw_out is None or raw_out in publishers else [*publishers, raw_out])
        finally:
            for w in wearables:
                await w.close()
            if runtime_task is not None and not runtime_task.done():
                runtime_task.cancel()
    return finish("BLE stream", fields, interrupted, delivery, args, interrupted_status=0)


class Wearable:
    """One BLE device: connection, the stream it offers, and where its data goes."""

    def __init__(self, address: str, device: str, backend, args: argparse.Namespace, runtime, gateway, publishers: list) -> None:
        from stream.ble.connection import BleConnection

        self.address, self.device, self.backend, self.args = address, device, backend, args
        self.runtime, self.gateway, self.publishers = runtime, gateway, publishers
        self.conn = BleConnection(backend, address)
        self.stream = None

    async def connect(self) -> None:
        from stream.ble.device_stream import open_device_stream
        from stream.ble.errors import DeviceError

        log.info("looking for the device", address=self.address, device=self.device)
        try:
            await self.conn.find(self.args.scan_timeout or 10.0)
            self.stream = await open_device_stream(self.conn, self.device, self.backend.time_scale)
        except self.backend.transient_errors as e:
            raise DeviceError(f"could not connect to {self.address}: {e.__class__.__name__}: {e or 'no reason given'}") from None
        self.conn.on_status = self._on_status
        from stream.model_spec import source_rate_problem

        for group, rate in getattr(self.stream, "rates", {}).items():
            problem = source_rate_problem(rate)
            if problem:
                raise DeviceError(f"{self.address}: {group.upper()} {problem}: ppg-stream cannot filter it")

    def _on_status(self, status: str) -> None:
        for p in self.publishers:
            if hasattr(p, "set_status"):
                p.set_status(self.device, status)

    async def run(self) -> None:
        from stream.ble.heart_rate_relay import HeartRateRelay
        from stream.source_pump import pump

        if isinstance(self.stream, HeartRateRelay):
            self.stream.publishers = self.publishers
            self._on_status("online")
            await self.stream.run()
            return
        source = self.gateway.tap(self.stream, self.device) if self.gateway else self.stream
        if self.runtime is not None:
            await pump(self.runtime, source, self.device, wait=False)
        else:
            async for _ in source.chunks():
                pass

    async def close(self) -> None:
        if self.stream is not None:
            await self.conn.close(self.stream.teardown)
        else:
            await self.conn.close()

    def counts(self, prefix: bool) -> dict:
        from stream.ble.heart_rate_relay import HeartRateRelay

        if self.stream is None:
            return {}
        if isinstance(self.stream, HeartRateRelay):
            fields = self.stream.summary().as_log_fields()
        else:
            fields = self.stream.summary_fields()
        return {f"{self.device}.{k}" if prefix else k: v for k, v in fields.items()}
