"""What the pipeline hands messages to. `publish` never blocks the pipeline; `close` flushes."""

from __future__ import annotations

import json
import sys
from typing import Protocol, TextIO


class Publisher(Protocol):
    async def start(self) -> None: ...

    def publish(self, messages: list[dict]) -> None: ...

    async def close(self) -> object:
        """Flush and stop; a network publisher returns its DeliveryReport (or how many it could not deliver)."""
        ...


def broadcast_status(publishers: list[Publisher], device: str, status: str) -> None:
    """`online`/`offline` for a device, to every publisher that carries statuses."""
    for publisher in publishers:
        set_status = getattr(publisher, "set_status", None)
        if set_status is not None:
            set_status(device, status)


class StdoutPublisher:
    """JSON lines, one per window, the same objects as the MQTT payloads."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    async def start(self) -> None:
        return None

    def publish(self, messages: list[dict]) -> None:
        try:
            self.stream.write("".join(json.dumps(m) + "\n" for m in messages))
            self.stream.flush()
        except BrokenPipeError:  # `ppg-stream ... --stdout | head` must not crash the stream
            pass

    async def close(self) -> None:
        return None
