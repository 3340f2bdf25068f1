"""A device with only the Heart Rate Service has no raw PPG: publish the HR it computes (with its RR
intervals) on the same topic, marked `source: device`, so chest straps and watches are still useful."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from .backend import BleClient
from .connection import DISCONNECTED, BleConnection
from .errors import BleParseError
from .heart_rate import parse_heart_rate
from .uuids import HEART_RATE_MEASUREMENT
from ...core.message import device_hr_message, utc_now_iso
from ...runtime.publisher import Publisher

log = structlog.get_logger("ppg_stream.ble")

HR_TAG = "hrs"


@dataclass(frozen=True)
class RelaySummary:
    messages: int
    parse_errors: int
    disconnections: int
    mean_bpm: float | None

    def as_log_fields(self) -> dict:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in self.__dict__.items() if v is not None}


class HeartRateRelay:
    def __init__(self, conn: BleConnection, device: str) -> None:
        self.conn = conn
        self.device = device
        self.publishers: list[Publisher] = []
        self.messages = 0
        self.parse_errors = 0
        self.disconnections = 0
        self._bpm_sum = 0.0
        self._t0: float | None = None

    async def setup(self, client: BleClient) -> None:
        await client.start_notify(HEART_RATE_MEASUREMENT, self.conn.subscriber(HR_TAG))

    async def teardown(self, client: BleClient) -> None:
        await client.stop_notify(HEART_RATE_MEASUREMENT)

    async def run(self) -> RelaySummary:
        """Until cancelled (Ctrl-C): reconnects on its own, like the PMD source."""
        while True:
            event = await self.conn.events.get()
            if event.kind == DISCONNECTED:
                if not self.conn.is_current(event):
                    continue
                self.disconnections += 1
                log.warning("device disconnected: reconnecting", device=self.device)
                await self.conn.reconnect(self.setup)
                continue
            try:
                m = parse_heart_rate(event.payload)
            except BleParseError as e:
                self.parse_errors += 1
                log.warning("malformed heart rate notification skipped", device=self.device, error=str(e))
                continue
            if self._t0 is None:
                self._t0 = event.host_s
            message = device_hr_message(self.device, self.messages, event.host_s - self._t0, utc_now_iso(), m.bpm, m.rr_s, m.contact, m.energy_kj)
            self.messages += 1
            self._bpm_sum += m.bpm
            for publisher in self.publishers:
                publisher.publish([message])

    def summary(self) -> RelaySummary:
        mean = self._bpm_sum / self.messages if self.messages else None
        return RelaySummary(self.messages, self.parse_errors, self.disconnections, mean)
