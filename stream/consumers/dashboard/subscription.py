"""The dashboard's MQTT side: a plain subscriber to `<prefix>/+/hr` and `<prefix>/+/status`, like any
other consumer of the public topics, reconnecting with backoff while the broker is away. Built on the
project's own MQTT client, so TLS and credentials work as for every other command."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import structlog

from ...mqtt.settings import BrokerSettings
from ...mqtt.subscriber import MqttSubscriber

log = structlog.get_logger("ppg_stream.dashboard")

STATE_POLL_S = 0.2


class BrokerSubscription:
    def __init__(
        self,
        settings: BrokerSettings,
        prefix: str,
        on_message: Callable[[str, bytes], None],
        on_state: Callable[[str], None] = lambda state: None,
    ) -> None:
        self.settings, self.prefix = settings, prefix
        self.on_message = on_message
        self.on_state = on_state
        self.topics = (f"{prefix}/+/hr", f"{prefix}/+/status")
        tag = f"ppg-dashboard-{os.getpid()}-{id(self):x}"
        # QoS 1 like the publishers: the broker does not drop messages to us, so a gap the dashboard
        # counts as missed is one the pipeline really did not publish
        self._subscribers = [
            MqttSubscriber(settings, topic, self._deliver, qos=1, client_id=f"{tag}-{i}") for i, topic in enumerate(self.topics)
        ]
        self.attempted = asyncio.Event()  # the first connection attempts are over (subscribed, refused, or an outage)

    @property
    def url(self) -> str:
        return self.settings.url

    def _deliver(self, topic: str, payload: bytes, _received: float) -> None:
        self.on_message(topic, payload)

    def clear_status(self, device: str) -> bool:
        """Clear the device's retained status on the broker (an empty retained message), so no subscriber
        that starts later sees it again; False when the broker is not connected."""
        return self._subscribers[1].send(f"{self.prefix}/{device}/status", b"", retain=True)

    async def run(self) -> None:
        """Until cancelled; reports `connected` once both subscriptions stand, `disconnected` when one falls.
        Raises MqttFatalError when the broker refuses us (credentials, certificates, a mistake in --broker
        found at the first attempt): retrying cannot help."""
        state = None
        try:
            try:
                for subscriber in self._subscribers:
                    await subscriber.start()
            finally:
                self.attempted.set()
            while True:
                refused = next((s.fatal_error for s in self._subscribers if s.fatal_error is not None), None)
                if refused is not None:
                    raise refused
                now = "connected" if all(s.subscribed.is_set() for s in self._subscribers) else "disconnected"
                if now != state:
                    previous, state = state, now
                    self.on_state(now)
                    if now == "connected" and previous is not None:  # the first subscription is in "dashboard running"
                        log.info("dashboard subscribed", broker=self.url, topics=list(self.topics))
                    elif now != "connected":
                        log.warning("dashboard: broker unreachable, retrying", broker=self.url)
                await asyncio.sleep(STATE_POLL_S)
        finally:
            for subscriber in self._subscribers:
                await subscriber.close()
