"""Connections the dashboard's HTTP server will not hold: a client that opens a connection and never
finishes its request headers (a "slowloris": a thousand of them used to be held for 30 s), and more
connections than a dashboard needs. aiohttp has neither a header-read timeout nor a connection cap,
so each accepted connection is wrapped in a thin protocol that forwards everything to aiohttp's own
and closes the connection when its headers do not end within `header_timeout_s`, or refuses it at
once beyond `max_connections`. Requests aiohttp refuses as malformed (a 16 KB header, a bad request
line) are counted and logged as one throttled line instead of a traceback each."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from ...runtime.throttle import Throttle

log = structlog.get_logger("ppg_stream.dashboard")

HEADER_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 256  # the event streams are capped at 64; the rest is page loads and scripts
_HEADERS_END = b"\r\n\r\n"


class ConnectionGuard:
    def __init__(self, header_timeout_s: float = HEADER_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.open = 0
        self.timed_out = 0  # connections closed because their headers did not end in time
        self.refused = 0  # connections refused beyond max_connections
        self.bad_requests = 0  # requests aiohttp refused as malformed (400)
        self._log = Throttle(10.0)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` around aiohttp's (`AppRunner.server`)."""
        return lambda: _Guarded(self, factory())

    def install_log_filter(self) -> None:
        """aiohttp logs a traceback for every malformed request it answers with 400: count those here."""
        logging.getLogger("aiohttp.server").addFilter(self._filter)

    def remove_log_filter(self) -> None:
        logging.getLogger("aiohttp.server").removeFilter(self._filter)

    def _filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            self.bad_requests += 1
            self.note("malformed HTTP request refused (400)", str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
            return False
        return True

    def note(self, what: str, detail: str = "") -> None:
        if self._log.ready():
            log.warning(what, detail=detail, since_last_log=self._log.take(), timed_out=self.timed_out, refused=self.refused,
                        bad_requests=self.bad_requests)


class _Guarded(asyncio.Protocol):
    """Forwards every call to aiohttp's protocol; watches only for the end of the first request's headers."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self.guard
        self.transport = transport  # type: ignore[assignment]
        if guard.open >= guard.max_connections:
            guard.refused += 1
            guard.note("too many dashboard connections: refused")
            transport.close()
            return
        guard.open += 1
        self._counted = True
        self._timer = asyncio.get_running_loop().call_later(guard.header_timeout_s, self._too_slow)
        self.inner.connection_made(transport)

    def _too_slow(self) -> None:
        self.guard.timed_out += 1
        self.guard.note("dashboard connection closed: its request headers did not end in time", f"{self.guard.header_timeout_s:g} s")
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if _HEADERS_END in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._counted:
            self._counted = False
            self.guard.open -= 1
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
