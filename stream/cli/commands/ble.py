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

from ....replay.recording import source_rate_problem
from ..options import UsageError
from ...core.message import device_id

log = structlog.get_logger("ppg_stream")


async def run_ble(args: argparse.Namespace, backend: object | None) -> int:
    from ..compose import hr_over_mqtt, open_engine, open_local_run, run_config
    from ..lifecycle import finish
    from ...sources.ble.backend import BleakBackend
    from ...sources.ble.device_stream import ble_device_id
    from ...sources.ble.scan import DEFAULT_SCAN_S, format_scan, scan

    backend = backend or BleakBackend()
    if args.ble[0].lower() == "scan":
        print(format_scan(await scan(backend, args.scan_timeout or DEFAULT_SCAN_S)))
        return 0
    if args.device_id is not None and len(args.ble) > 1:
        raise UsageError(f"--device-id names one device, but {len(args.ble)} are given with --ble")
    model_runs = args.publish_raw != "only"
    config = run_config(args, speed=1.0, model_runs=model_runs, mqtt=hr_over_mqtt(args))
    engine = open_engine(config)  # a bad model fails before the radio is touched
    devices = [device_id(args.device_id or ble_device_id(a)) for a in args.ble]
    t_start = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        # outputs, then the warm-up: compiled before the radio, since a connected device streams at once
        local = await open_local_run(config, stack, engine, devices, "ble", args.nats, bool(args.publish_raw), t_start)
        wearables = [Wearable(address, device, backend, args.scan_timeout, local) for address, device in zip(args.ble, devices)]
        try:
            await asyncio.gather(*(w.connect() for w in wearables))
            log.info("BLE stream running: Ctrl-C stops the devices and exits", devices=devices, model=engine.spec.label if engine else "none (gateway)")
            _, interrupted = await local.feed(asyncio.gather(*(w.run() for w in wearables)))
            for w in wearables:
                await w.close()  # stop the measurement on the device, then disconnect
            fields, delivery = await local.finish(len(devices))
            for w in wearables:
                fields.update(w.counts(prefix=len(wearables) > 1))
        finally:
            for w in wearables:
                await w.close()
            if local.task is not None and not local.task.done():
                local.task.cancel()
    return finish("BLE stream", fields, interrupted, delivery, config.outputs.outbox, config.outputs.flush_timeout_s, interrupted_status=0)


class Wearable:
    """One BLE device: connection, the stream it offers, and where its data goes."""

    def __init__(self, address: str, device: str, backend, scan_timeout_s: float | None, local) -> None:
        from ...sources.ble.connection import BleConnection

        self.address, self.device, self.backend, self.scan_timeout_s = address, device, backend, scan_timeout_s
        self.runtime, self.gateway, self.outputs = local.runtime, local.gateway, local.outputs
        self.conn = BleConnection(backend, address)
        self.stream = None

    async def connect(self) -> None:
        from ...sources.ble.device_stream import open_device_stream
        from ...sources.ble.errors import DeviceError

        log.info("looking for the device", address=self.address, device=self.device)
        try:
            await self.conn.find(self.scan_timeout_s or 10.0)
            self.stream = await open_device_stream(self.conn, self.device, self.backend.time_scale)
        except self.backend.transient_errors as e:
            raise DeviceError(f"could not connect to {self.address}: {e.__class__.__name__}: {e or 'no reason given'}") from None
        self.conn.on_status = self._on_status
        for group, rate in getattr(self.stream, "rates", {}).items():
            problem = source_rate_problem(rate)
            if problem:
                raise DeviceError(f"{self.address}: {group.upper()} {problem}: ppg-stream cannot filter it")

    def _on_status(self, status: str) -> None:
        self.outputs.set_status(self.device, status)

    async def run(self) -> None:
        from ...sources.ble.heart_rate_relay import HeartRateRelay
        from ...runtime.source_pump import pump

        if isinstance(self.stream, HeartRateRelay):
            self.stream.publishers = self.outputs.publishers
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
        from ...sources.ble.heart_rate_relay import HeartRateRelay

        if self.stream is None:
            return {}
        if isinstance(self.stream, HeartRateRelay):
            fields = self.stream.summary().as_log_fields()
        else:
            fields = self.stream.summary_fields()
        return {f"{self.device}.{k}" if prefix else k: v for k, v in fields.items()}
