"""Keeping one MQTT connection up, for the publisher and the subscriber alike: connect, retry an outage
with backoff (one warning per outage, one line when the broker is back), stop for good when the
broker refuses us (credentials, certificates, a refused subscription).

A subclass says how to open its connection (`_open`: connect, and subscribe for a subscriber) and
what to do when it is up or has gone (`_up`, `_down`); whether the connection that just ended
counted as a recovery (`_recovered`: a broker that accepts connections and then ignores us keeps
backing off instead of being retried at once, so there is no reconnect storm)."""

from __future__ import annotations

import asyncio

import structlog

from .connection import MqttConnection, MqttConnectionError, MqttFatalError, describe_outage
from .diagnose import settings_mistake
from .settings import BrokerSettings
from ..runtime.backoff import Backoff

log = structlog.get_logger("ppg_stream.mqtt")


class ReconnectingClient:
    outage_message = "broker unreachable: retrying"
    back_message = "broker back"

    def __init__(self, settings: BrokerSettings, reconnect: Backoff) -> None:
        self.settings = settings
        self.reconnect = reconnect
        self.reconnects = 0  # connections lost or attempts failed (for logs and tests)
        self.failed = asyncio.Event()  # set when the broker refused us for good (see `fatal_error`): a service awaits it
        self._fatal: MqttFatalError | None = None
        self._first_attempt = asyncio.Event()
        self._conn: MqttConnection | None = None
        self._task: asyncio.Task | None = None

    @property
    def fatal_error(self) -> MqttFatalError | None:
        """Refused credentials or certificates, mid-run as at start: no more retries after it."""
        return self._fatal

    # --- what a subclass says ---
    async def _open(self) -> MqttConnection:
        raise NotImplementedError

    def _up(self, conn: MqttConnection) -> None:
        """The connection is open (and, for a subscriber, subscribed)."""

    def _down(self) -> bool:
        """The connection has gone; True ends the loop (the client is closing)."""
        return False

    def _recovered(self) -> bool:
        """Whether the connection that just ended counts as a recovery (the backoff starts afresh)."""
        return True

    def _on_fatal(self) -> None:
        """The broker refused us for good."""

    def _outage_fields(self) -> dict:
        return {}

    def _back_fields(self) -> dict:
        return {}

    # --- the loop ---
    def _give_up(self, error: MqttFatalError) -> None:
        self._fatal = error
        self.failed.set()
        if self._first_attempt.is_set():  # mid-run; at start, start() raises it to the caller
            log.error("MQTT broker refused us: not retrying", broker=self.settings.url, error=str(error))
        self._first_attempt.set()
        self._on_fatal()

    async def _run(self) -> None:
        delays = self.reconnect.delays()
        outage_logged = False
        while True:
            try:
                conn = await self._open()
            except MqttFatalError as e:
                self._give_up(e)
                return
            except (OSError, asyncio.TimeoutError, MqttConnectionError) as e:
                if not self._first_attempt.is_set():  # at start, a mistake in --broker is said at once, not retried
                    mistake = await settings_mistake(self.settings, e)
                    if mistake is not None:
                        self._give_up(mistake)
                        return
                self._first_attempt.set()
                self.reconnects += 1
                if not outage_logged:
                    log.warning(self.outage_message, broker=self.settings.url, error=describe_outage(e), **self._outage_fields())
                    outage_logged = True
                await asyncio.sleep(next(delays))
                continue
            self._conn = conn
            self._up(conn)
            self._first_attempt.set()
            if outage_logged:
                log.info(self.back_message, broker=self.settings.url, **self._back_fields())
            outage_logged = False
            reason = await conn.closed
            self._conn = None
            if self._down():
                return
            if self._recovered():
                delays = self.reconnect.delays()
            self.reconnects += 1
            log.warning(self.outage_message, broker=self.settings.url, error=describe_outage(reason), **self._outage_fields())
            outage_logged = True
            await asyncio.sleep(next(delays))
