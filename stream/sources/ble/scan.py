"""`ppg-stream --ble scan`: what is advertising nearby, and which of our services it says it offers."""

from __future__ import annotations

from .backend import Advertisement, BleBackend
from .uuids import SERVICE_NAMES

DEFAULT_SCAN_S = 5.0


async def scan(backend: BleBackend, timeout_s: float = DEFAULT_SCAN_S) -> list[Advertisement]:
    """Strongest signal first; devices without a name or a known service come last."""
    found = await backend.discover(timeout_s)
    return sorted(found, key=lambda a: (not offered_services(a), a.rssi is None, -(a.rssi or 0), a.address))


def offered_services(adv: Advertisement) -> list[str]:
    names = [SERVICE_NAMES[u] for u in adv.service_uuids if u in SERVICE_NAMES]
    if "polar-pmd" not in names and (adv.name or "").lower().startswith("polar"):
        names.append("polar-pmd?")  # Polar devices often advertise only 0x180D; PMD is confirmed on connect
    return names


def format_scan(found: list[Advertisement]) -> str:
    if not found:
        return "no BLE devices found (is the wearable on and not connected to a phone?)"
    rows = [("ADDRESS", "RSSI", "NAME", "SERVICES")]
    rows += [(a.address, "" if a.rssi is None else str(a.rssi), a.name or "-", ",".join(offered_services(a)) or "-") for a in found]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows)
