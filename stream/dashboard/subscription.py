"""The dashboard's MQTT side: a plain subscriber to `<prefix>/+/hr` and `<prefix>/+/status`, like any
other consumer of the public topics, reconnecting with backoff while the broker is away."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

import aiomqtt
import structlog

from stream.backoff import Backoff

log = structlog.get_logger("ppg_stream.dashboard")
_client_logger = logging.getLogger("ppg_stream.dashboard.aiomqtt")
_client_logger.setLevel(logging.ERROR)

RECONNECT = Backoff(start_s=0.2, factor=2.0, max_s=5.0, jitter=0.2)
DISCONNECT_TIMEOUT_S = 2.0
MAX_QUEUED_MESSAGES = 20_000  # aiomqtt drops (and we count nothing) past this: bounded memory if we stall


class BrokerSubscription:
    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        on_message: Callable[[str, bytes], None],
        on_state: Callable[[str], None] = lambda state: None,
    ) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self.on_message = on_message
        self.on_state = on_state
        self.topics = (f"{prefix}/+/hr", f"{prefix}/+/status")

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def run(self) -> None:
        """Until cancelled."""
        delays = RECONNECT.delays()
        outage_logged = False
        identifier = f"ppg-dashboard-{os.getpid()}-{id(self):x}"
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=identifier,
                    clean_session=True,  # a live view: nothing to catch up on after an outage
                    keepalive=30,
                    timeout=DISCONNECT_TIMEOUT_S,  # also bounds the goodbye at shutdown (aiomqtt waits 10 s)
                    max_queued_incoming_messages=MAX_QUEUED_MESSAGES,
                    logger=_client_logger,
                ) as client:
                    for topic in self.topics:
                        # QoS 1 like the publishers: the broker does not drop messages to us, so a gap
                        # the dashboard counts as missed is one the pipeline really did not publish
                        await client.subscribe(topic, qos=1)
                    log.info("dashboard subscribed", broker=self.url, topics=list(self.topics))
                    self.on_state("connected")
                    outage_logged = False
                    delays = RECONNECT.delays()
                    async for message in client.messages:
                        raw = message.payload
                        payload = bytes(raw) if isinstance(raw, (bytes, bytearray)) else str(raw if raw is not None else "").encode()
                        self.on_message(message.topic.value, payload)
            except aiomqtt.MqttError as e:
                self.on_state("disconnected")
                if not outage_logged:
                    log.warning("dashboard: broker unreachable, retrying", broker=self.url, error=str(e))
                    outage_logged = True
                await asyncio.sleep(next(delays))
