"""Talking to the PMD control point of a connected Polar device: features, settings, start, stop.

A command is written with response; the device answers with an indication on the same characteristic
(possibly over several frames when `more_frames` is set), which is matched to the command by op and type.
What the device writes there unasked (`[0x01, types…]`: it stopped those streams) goes to
`on_device_message` instead, so the stream's consumer hears of it in order with the data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backend import BleClient
from .errors import BleParseError, DeviceError
from .pmd_control import (
    ControlResponse,
    Setting,
    get_settings_command,
    is_control_response,
    measurement_name,
    parse_control_response,
    parse_features,
    parse_settings,
    raise_for_error,
    start_command,
    stop_command,
)
from .uuids import PMD_CONTROL, PMD_MIN_MTU

RESPONSE_TIMEOUT_S = 5.0
ALREADY_IN_STATE = 6
MIN_RATE_HZ = 50.0  # headroom over the model's 25 Hz grid for the causal band-pass and the resampler
PREFERRED_ACC_RANGE_G = 8  # walking and running stay well inside ±8 g


@dataclass(frozen=True)
class StreamSettings:
    measurement: int
    sample_rate_hz: float
    factor: float  # multiply decoded samples by this (from the start response; 1.0 if absent)
    settings: dict[int, int]


def choose_settings(available: dict[int, list[float]]) -> dict[int, int]:
    """From what the device offers: the lowest sample rate ≥ 50 Hz (else the highest), the finest
    resolution, an ACC range of 8 g when offered (else the widest), and every channel."""
    chosen: dict[int, int] = {}
    rates = sorted(available.get(Setting.SAMPLE_RATE, []))
    if rates:
        fast_enough = [r for r in rates if r >= MIN_RATE_HZ]
        chosen[Setting.SAMPLE_RATE] = int(fast_enough[0] if fast_enough else rates[-1])
    if available.get(Setting.RESOLUTION):
        chosen[Setting.RESOLUTION] = int(max(available[Setting.RESOLUTION]))
    if available.get(Setting.RANGE):
        ranges = available[Setting.RANGE]
        chosen[Setting.RANGE] = PREFERRED_ACC_RANGE_G if PREFERRED_ACC_RANGE_G in ranges else int(max(ranges))
    if available.get(Setting.CHANNELS):
        chosen[Setting.CHANNELS] = int(max(available[Setting.CHANNELS]))
    return chosen


class PmdControl:
    """Request/response over the control point of one connected client."""

    def __init__(
        self,
        client: BleClient,
        timeout_s: float = RESPONSE_TIMEOUT_S,
        on_device_message: Callable[[Any, bytearray], None] | None = None,
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.on_device_message = on_device_message
        self._responses: asyncio.Queue[bytes] = asyncio.Queue()

    def on_indication(self, sender: object, data: bytearray) -> None:
        if is_control_response(data):
            self._responses.put_nowait(bytes(data))
        elif self.on_device_message is not None:
            self.on_device_message(sender, data)

    async def subscribe(self) -> None:
        await self.client.start_notify(PMD_CONTROL, self.on_indication)

    async def features(self) -> frozenset[int]:
        return parse_features(await self.client.read_gatt_char(PMD_CONTROL))

    async def request(self, command: bytes) -> ControlResponse:
        while not self._responses.empty():
            self._responses.get_nowait()
        await self.client.write_gatt_char(PMD_CONTROL, command, response=True)
        params = b""
        while True:
            try:  # not wait_for: on 3.11 it drops a Ctrl-C that lands as the answer arrives (see stream/runtime/tasks.py)
                async with asyncio.timeout(self.timeout_s):
                    raw = await self._responses.get()
            except TimeoutError:
                raise DeviceError(f"the device did not answer PMD command {command.hex(' ')} within {self.timeout_s:g} s") from None
            try:
                response = parse_control_response(raw)
            except BleParseError:
                continue  # not a response frame: ignore
            if response.op != command[0] or response.measurement != command[1]:
                continue  # a late answer to an earlier command
            params += response.params
            if not response.more_frames or not response.ok:
                break
        raise_for_error(response)
        return ControlResponse(response.op, response.measurement, response.error, False, params)

    async def settings(self, measurement: int) -> dict[int, list[float]]:
        return parse_settings((await self.request(get_settings_command(measurement))).params)

    async def start(self, measurement: int) -> StreamSettings:
        mtu = getattr(self.client, "mtu_size", PMD_MIN_MTU)
        chosen = choose_settings(await self.settings(measurement))
        rate = chosen.get(Setting.SAMPLE_RATE)
        if not rate:  # refused before starting: a stream without a rate cannot be placed in time
            raise DeviceError(f"the device offered no sample rate for {measurement_name(measurement)}: its samples cannot be placed in time")
        try:
            response = await self.request(start_command(measurement, chosen))
        except DeviceError as e:
            if mtu < PMD_MIN_MTU:
                raise DeviceError(f"{e} (link MTU is {mtu} bytes)", code=e.code) from None
            raise
        granted = parse_settings(response.params) if response.params else {}
        factor = granted.get(Setting.FACTOR, [1.0])[0]
        return StreamSettings(measurement, float(rate), float(factor), chosen)

    async def stop(self, measurement: int) -> None:
        await self.request(stop_command(measurement))

    async def restart(self, measurement: int, stop_first: bool) -> StreamSettings:
        """Start a stream again; `stop_first` for one that went silent but may still count as running.
        A device that says the stream is already running gets a stop and a fresh start."""
        if stop_first:
            try:
                await self.stop(measurement)
            except DeviceError:
                pass  # already stopped: what we wanted
        try:
            return await self.start(measurement)
        except DeviceError as e:
            if e.code != ALREADY_IN_STATE:
                raise
        await self.stop(measurement)
        return await self.start(measurement)
