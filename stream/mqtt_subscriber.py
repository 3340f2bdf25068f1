"""Subscribe to a topic filter and hand every message to a callback: the raw-chunk intake of `serve`.

The callback runs on the event loop and must return quickly (the runtime only queues). The session is
persistent (a fixed client id, clean_session off), so QoS-1 messages published while the service
restarts are kept by the broker within its queue limits; reconnection backs off like the publisher.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

import aiomqtt
import structlog

from stream.backoff import Backoff

log = structlog.get_logger("ppg_stream.mqtt")
_client_logger = logging.getLogger("ppg_stream.aiomqtt.sub")
_client_logger.setLevel(logging.ERROR)

RECONNECT = Backoff(start_s=0.2, factor=2.0, max_s=5.0, jitter=0.2)

OnMessage = Callable[[str, bytes, float], None]


class MqttSubscriber:
    def __init__(self, host: str, port: int, topic_filter: str, on_message: OnMessage, qos: int = 1, client_id: str | None = None) -> None:
        self.host, self.port = host, port
        self.topic_filter = topic_filter
        self.on_message = on_message
        self.qos = qos
        self.client_id = client_id
        self.subscribed = asyncio.Event()
        self.received = 0

    async def run(self) -> None:
        """Until cancelled."""
        delays = RECONNECT.delays()
        outage_logged = False
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier=self.client_id, clean_session=self.client_id is None,
                    keepalive=30, logger=_client_logger, max_queued_incoming_messages=0,
                    socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                ) as client:
                    await client.subscribe(self.topic_filter, qos=self.qos)
                    self.subscribed.set()
                    log.info("subscribed", topic=self.topic_filter, broker=f"mqtt://{self.host}:{self.port}")
                    if outage_logged:
                        log.info("broker back: receiving again", broker=f"mqtt://{self.host}:{self.port}")
                    outage_logged = False
                    delays = RECONNECT.delays()
                    on_message, perf = self.on_message, time.perf_counter
                    async for message in client.messages:
                        self.received += 1
                        on_message(str(message.topic), bytes(message.payload), perf())
            except aiomqtt.MqttError as e:
                self.subscribed.clear()
                if not outage_logged:
                    log.warning("broker unreachable: retrying", broker=f"mqtt://{self.host}:{self.port}", error=str(e))
                    outage_logged = True
                await asyncio.sleep(next(delays))
