"""Fan-out of Server-Sent Events to the browsers that are watching.

Each event is serialised once and queued for every client. A client whose queue is full (a stalled tab,
a slow link) is dropped rather than buffered without bound: its EventSource reconnects by itself and
gets a fresh snapshot, so nothing it shows is wrong, only briefly late.
"""

from __future__ import annotations

import asyncio

CLIENT_BACKLOG = 100  # events (10 s at the default 0.1 s flush) before a client is dropped
MAX_CLIENTS = 64
CLOSE = None  # sentinel: the client's stream ends


class TooManyClients(Exception):
    pass


class EventHub:
    def __init__(self, backlog: int = CLIENT_BACKLOG, max_clients: int = MAX_CLIENTS) -> None:
        self.backlog = backlog
        self.max_clients = max_clients
        self.clients: set[asyncio.Queue[str | None]] = set()
        self.dropped = 0

    def subscribe(self) -> asyncio.Queue[str | None]:
        if len(self.clients) >= self.max_clients:
            raise TooManyClients(f"{self.max_clients} browsers are already watching")
        # one spare slot so the CLOSE sentinel always fits
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=self.backlog + 1)
        self.clients.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self.clients.discard(queue)

    def publish(self, event: str, data: str) -> None:
        """`data` must be one line (JSON is)."""
        text = f"event: {event}\ndata: {data}\n\n"
        for queue in list(self.clients):
            if queue.qsize() >= self.backlog:
                self.dropped += 1
                self._close(queue)
            else:
                queue.put_nowait(text)

    def close_all(self) -> None:
        for queue in list(self.clients):
            self._close(queue)

    def _close(self, queue: asyncio.Queue[str | None]) -> None:
        self.clients.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(CLOSE)
