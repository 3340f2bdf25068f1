"""`Dashboard`: the web dashboard as an async context manager, so `ppg-stream dashboard` runs it alone
and the streaming commands (`--dashboard`) run it inside their own event loop. Either way it learns
everything from the broker, as any other subscriber would. The one thing it ever writes to the broker is
an empty retained status: for a device offline longer than the retention, or one a user clears from the
page (offline devices only), so the card does not come back with the next dashboard.
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
from .rate import RateMeter
from .server import is_loopback, make_app
from .subscription import BrokerSubscription
from ...runtime.tasks import cancel_and_wait
from ...mqtt.connection import MqttFatalError
from ...mqtt.settings import BrokerSettings

log = structlog.get_logger("ppg_stream.dashboard")

FLUSH_S = 0.1  # browsers get at most 10 update events a second, whatever the message rate
META_EVERY_S = 1.0
SHUTDOWN_TIMEOUT_S = 1.0
RETENTION_S = 86_400.0  # a device offline for longer than a day is forgotten
FIRST_CONTACT_S = 3.0  # how long the start waits to hear whether the broker refuses us


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
        retention_s: float = RETENTION_S,
    ) -> None:
        self.host, self.port = host, port
        self.prefix = prefix
        self.flush_s = flush_s
        self.fleet = Fleet(prefix, max_devices=max_devices, history_points=history_points)
        self.hub = EventHub()
        settings = broker or BrokerSettings(broker_host, broker_port)
        self.subscription = BrokerSubscription(settings, prefix, self._on_message, self._on_broker_state)
        self.retention_s = retention_s
        self.broker_state = "connecting"
        self.error: MqttFatalError | None = None  # the broker refused us: the dashboard cannot show anything
        self.failed = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.base_events.Server | None = None
        self.guard = guard or ConnectionGuard()
        self._tasks: list[asyncio.Task] = []
        self._hr_rate = RateMeter(now=time.monotonic())
        self.forgotten = 0  # devices forgotten after the retention

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
        app = make_app(self.hub, self._snapshot_json, self.clear, loopback_only=is_loopback(self.host))
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
            asyncio.create_task(self._subscribe(), name="dashboard-subscription"),
            asyncio.create_task(self._flush_loop(), name="dashboard-flush"),
        ]
        # a broker that refuses us, or a mistake in --broker, is one line instead of a page that never fills;
        # a broker that is merely down (or slow to answer) is waited for while the page already runs
        waits = [asyncio.ensure_future(self.subscription.attempted.wait()), asyncio.ensure_future(self.failed.wait())]
        try:
            await asyncio.wait(waits, timeout=FIRST_CONTACT_S, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.sleep(0)  # let a refusal that ended the attempts land in `failed`
        except BaseException:  # Ctrl-C while starting: nothing may be left running
            await cancel_and_wait(*waits)
            await self.__aexit__(None, None, None)
            raise
        await cancel_and_wait(*waits)
        if self.error is not None:
            await self.__aexit__(None, None, None)
            raise self.error
        exposed = {} if is_loopback(self.host) else {"exposed": f"listening on {self.host}: anyone who can reach this machine sees the heart rates"}
        log.info("dashboard running", url=self.url, broker=self.subscription.url, subscribed=self._subscribed.is_set(),
                 topics=f"{self.prefix}/+/hr, {self.prefix}/+/status", **exposed)
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

    async def _subscribe(self) -> None:
        try:
            await self.subscription.run()
        except MqttFatalError as e:
            self.error, self.broker_state = e, "refused"
            self.failed.set()

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/hr"):
            self._hr_rate.add(time.monotonic())
        self.fleet.handle(topic, payload, time.time())

    def clear(self, device: str | None) -> dict:
        """Forget a device (None: every offline device) on the page and clear its retained status on the
        broker. An online device is not cleared: it would be back with its next message."""
        if device is None:
            targets = [d for d, card in self.fleet.devices.items() if card.status == "offline"]
        else:
            card = self.fleet.devices.get(device)
            if card is None:
                return {"cleared": [], "refused": "unknown device"}
            if card.status == "online":
                return {"cleared": [], "refused": "the device is online"}
            targets = [device]
        for target in targets:
            self.fleet.remove(target)
            self.subscription.clear_status(target)
        if targets:
            log.info("devices cleared from the dashboard", devices=len(targets), first=targets[0])
        return {"cleared": targets}

    def _on_broker_state(self, state: str) -> None:
        self.broker_state = state
        if state == "connected":
            self._subscribed.set()
        else:
            self._subscribed.clear()

    async def ready(self, timeout_s: float = 2.0) -> bool:
        """Wait until subscribed (True), or give up after `timeout_s` (False: the broker is not there yet,
        and the dashboard keeps retrying). A streaming command awaits this before publishing its first
        window, so the dashboard sees the stream from its start. A broker that refused us (or a mistake in
        --broker) raises its MqttFatalError here."""
        waits = [asyncio.ensure_future(self._subscribed.wait()), asyncio.ensure_future(self.failed.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(*waits)
        if self.error is not None:
            raise self.error
        return self._subscribed.is_set()

    def meta(self) -> dict:
        return {
            "broker": self.subscription.url,
            "broker_state": self.broker_state,
            **({"error": str(self.error)} if self.error is not None else {}),
            "prefix": self.prefix,
            "rate": round(self._hr_rate.rate(time.monotonic()), 2),  # HR messages a second, over the last 10 whole seconds
            "retention_s": self.retention_s,
            **self.fleet.counts(),
        }

    def _snapshot_json(self) -> str:
        now = time.time()
        return f'{{"now":{int(now * 1000)},"meta":{json.dumps(self.meta())},"devices":{self.fleet.snapshot_json(now)}}}'

    def _forget_expired(self, now: float) -> None:
        gone = self.fleet.expire(now, self.retention_s)
        for device in gone:
            self.subscription.clear_status(device)
        if gone:
            self.forgotten += len(gone)
            log.info("forgot devices offline for longer than the retention", devices=len(gone), first=gone[0], retention_s=self.retention_s)

    async def _flush_loop(self) -> None:
        next_meta = 0.0
        while True:
            await asyncio.sleep(self.flush_s)
            now = time.time()
            meta_due = time.monotonic() >= next_meta
            if meta_due:
                next_meta = time.monotonic() + META_EVERY_S
                self._forget_expired(now)
            changes = self.fleet.take_changes_json(now)
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
