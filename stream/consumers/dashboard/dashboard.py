"""`Dashboard`: the web dashboard as an async context manager, so `ppg-stream dashboard` runs it alone
and the streaming commands (`--dashboard`) run it inside their own event loop. Either way it learns
everything from the broker, as any other subscriber would.
"""

from __future__ import annotations

import asyncio
import errno
import json
import time

import structlog
from aiohttp import web

from .connection_guard import ConnectionGuard
from .fleet import HISTORY_POINTS, MAX_DEVICES, Fleet
from .hub import EventHub
from .server import is_loopback, make_app
from .subscription import BrokerSubscription
from ...runtime.tasks import cancel_and_wait
from ...mqtt.settings import BrokerSettings

log = structlog.get_logger("ppg_stream.dashboard")

FLUSH_S = 0.1  # browsers get at most 10 update events a second, whatever the message rate
META_EVERY_S = 1.0
SHUTDOWN_TIMEOUT_S = 1.0


class DashboardError(OSError):
    """The dashboard cannot start (e.g. its port is taken): one line for the user."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class Dashboard:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        broker_host: str = "127.0.0.1",
        broker_port: int = 1883,
        prefix: str = "ppg",
        *,
        broker: BrokerSettings | None = None,  # TLS/credentials; default: broker_host:broker_port, plain
        max_devices: int = MAX_DEVICES,
        history_points: int = HISTORY_POINTS,
        flush_s: float = FLUSH_S,
        guard: ConnectionGuard | None = None,  # header timeout and connection cap (defaults: 10 s, 256)
    ) -> None:
        self.host, self.port = host, port
        self.prefix = prefix
        self.flush_s = flush_s
        self.fleet = Fleet(prefix, max_devices=max_devices, history_points=history_points)
        self.hub = EventHub()
        settings = broker or BrokerSettings(broker_host, broker_port)
        self.subscription = BrokerSubscription(settings, prefix, self._on_message, self._on_broker_state)
        self.broker_state = "connecting"
        self._subscribed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.base_events.Server | None = None
        self.guard = guard or ConnectionGuard()
        self._tasks: list[asyncio.Task] = []
        self._rate_count = 0
        self._rate_t0 = time.monotonic()
        self.rate = 0.0

    @property
    def url(self) -> str:
        """Where a browser on this machine opens it (for 0.0.0.0 / :: that is the loopback address)."""
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    async def __aenter__(self) -> "Dashboard":
        app = make_app(self.hub, self._snapshot_json, loopback_only=is_loopback(self.host))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self._runner.setup()
        try:  # not TCPSite: each connection goes through the guard (header timeout, connection cap)
            self._server = await asyncio.get_running_loop().create_server(self.guard.wrap(self._runner.server), self.host, self.port)
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            reason = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
            raise DashboardError(e.errno, f"dashboard: cannot listen on {self.host}:{self.port}: {reason}") from None
        self.guard.install_log_filter()
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks = [
            asyncio.create_task(self.subscription.run(), name="dashboard-subscription"),
            asyncio.create_task(self._flush_loop(), name="dashboard-flush"),
        ]
        exposed = {} if is_loopback(self.host) else {"exposed": f"listening on {self.host}: anyone who can reach this machine sees the heart rates"}
        log.info("dashboard running", url=self.url, broker=self.subscription.url, topics=f"{self.prefix}/+/hr, {self.prefix}/+/status", **exposed)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await _cancel(self._tasks)
        self._tasks = []
        self.hub.close_all()
        if self._server is not None:
            self._server.close()
            self.guard.remove_log_filter()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _on_message(self, topic: str, payload: bytes) -> None:
        self._rate_count += 1
        self.fleet.handle(topic, payload, time.time())

    def _on_broker_state(self, state: str) -> None:
        self.broker_state = state
        if state == "connected":
            self._subscribed.set()
        else:
            self._subscribed.clear()

    async def ready(self, timeout_s: float = 2.0) -> bool:
        """Wait until subscribed (True), or give up after `timeout_s` (False: the broker is not there yet,
        and the dashboard keeps retrying). A streaming command awaits this before publishing its first
        window, so the dashboard sees the stream from its start."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._subscribed.wait()
            return True
        except TimeoutError:
            return False

    def meta(self) -> dict:
        return {
            "broker": self.subscription.url,
            "broker_state": self.broker_state,
            "prefix": self.prefix,
            "rate": round(self.rate, 1),
            **self.fleet.counts(),
        }

    def _snapshot_json(self) -> str:
        now = time.time()
        return f'{{"now":{int(now * 1000)},"meta":{json.dumps(self.meta())},"devices":{self.fleet.snapshot_json(now)}}}'

    async def _flush_loop(self) -> None:
        next_meta = 0.0
        while True:
            await asyncio.sleep(self.flush_s)
            now = time.time()
            changes = self.fleet.take_changes_json(now)
            meta_due = time.monotonic() >= next_meta
            if meta_due:
                elapsed = time.monotonic() - self._rate_t0
                self.rate = self._rate_count / elapsed if elapsed > 0 else 0.0
                self._rate_count, self._rate_t0 = 0, time.monotonic()
                next_meta = time.monotonic() + META_EVERY_S
            if changes is None and not meta_due:
                continue
            parts = [f'"now":{int(now * 1000)}']
            if meta_due:
                parts.append(f'"meta":{json.dumps(self.meta())}')
            if changes is not None:
                parts.append(f'"devices":{changes}')
            self.hub.publish("update", "{" + ",".join(parts) + "}")


async def _cancel(tasks: list[asyncio.Task]) -> None:
    """Cancel and wait (again and again: see stream/runtime/tasks.py), then report a task that had failed."""
    await cancel_and_wait(*tasks)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("dashboard task failed", task=task.get_name(), error=repr(task.exception()))
