"""Connect to a wearable and pick the best stream it offers: raw PPG (+ ACC) over Polar PMD, which the
model runs on, else the Heart Rate Service's own HR, passed through."""

from __future__ import annotations

import structlog

from .backend import BleClient
from .connection import BleConnection
from .errors import DeviceError
from .heart_rate_relay import HeartRateRelay
from .pmd_control import Measurement, parse_features
from .pmd_source import PmdSource
from .uuids import HEART_RATE_SERVICE, PMD_CONTROL, PMD_SERVICE

log = structlog.get_logger("ppg_stream.ble")


def ble_device_id(address: str) -> str:
    """Stable and topic-safe: `ble-aabbccddeeff` (macOS gives a UUID instead of an address: same rule)."""
    return "ble-" + "".join(c for c in address.lower() if c.isalnum())


async def open_device_stream(conn: BleConnection, device: str, time_scale: float = 1.0) -> PmdSource | HeartRateRelay:
    """Connect once, inspect the services, and set up the chosen stream on that same connection."""
    chosen: list[PmdSource | HeartRateRelay] = []

    async def probe_then_setup(client: BleClient) -> None:
        services = client.services
        features: frozenset[int] = frozenset()
        if services.get_service(PMD_SERVICE) is not None:
            features = parse_features(await client.read_gatt_char(PMD_CONTROL))
        if Measurement.PPG in features:
            stream: PmdSource | HeartRateRelay = PmdSource(conn, device, features, time_scale)
        elif services.get_service(HEART_RATE_SERVICE) is not None:
            stream = HeartRateRelay(conn, device)
            log.warning("the device offers no raw PPG: publishing its own heart rate (source: device)", device=device)
        else:
            raise DeviceError(f"{conn.address} offers neither Polar PMD PPG nor the Heart Rate Service: not a supported wearable")
        await stream.setup(client)
        chosen.append(stream)

    await conn.connect(probe_then_setup)
    return chosen[0]
