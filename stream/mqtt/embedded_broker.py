"""Where to publish when no `--broker URL` says so: the broker already on 127.0.0.1:1883, or an embedded
amqtt broker started on the spot so a first run needs nothing installed. URLs, TLS and credentials are
`settings.py` beside it."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from .settings import DEFAULT_HOST, DEFAULT_PORT
from ..runtime.tasks import cancel_and_wait

SHUTDOWN_TIMEOUT_S = 3.0


async def broker_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if something accepts TCP connections there (cheap probe before choosing embedded)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


class EmbeddedBroker:
    """An anonymous amqtt broker bound to loopback only, living as long as the `async with` block."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.host, self.port = host, port
        self._broker = None

    async def __aenter__(self) -> "EmbeddedBroker":
        for name in ("amqtt", "transitions"):  # amqtt logs a traceback of its own before raising
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._check_port_free()
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = Broker(config)
        try:
            await self._broker.start()
        except Exception as e:  # amqtt wraps bind errors in its own exception types
            raise OSError(f"cannot start the embedded MQTT broker on {self.host}:{self.port}: {e}") from None
        return self

    def _check_port_free(self) -> None:
        """Bind as the broker would, to say plainly why it cannot start (amqtt's own error is a traceback)."""
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as e:
                why = "the port is taken by another program" if e.errno == errno.EADDRINUSE else (e.strerror or str(e)).lower()
                raise OSError(
                    f"cannot start the embedded MQTT broker on {self.host}:{self.port}: {why}; "
                    f"use --broker mqtt://{self.host}:{self.port} for the broker already there, or --broker embedded:PORT"
                ) from None

    async def __aexit__(self, *exc: object) -> None:
        if self._broker is None:
            return
        shutdown = asyncio.ensure_future(self._broker.shutdown())
        await asyncio.wait([shutdown], timeout=SHUTDOWN_TIMEOUT_S)
        # amqtt's client handlers use asyncio.wait_for, which on Python 3.11 can swallow the cancellation
        # the shutdown sends while a subscriber is still connected: cancel its tasks until they are gone,
        # or the process would never exit
        await cancel_and_wait(shutdown, *(t for t in asyncio.all_tasks() if _is_amqtt_task(t)))
        if shutdown.done() and not shutdown.cancelled():
            shutdown.exception()  # a broker with clients mid-flight failing to stop must not mask the run's result


def _is_amqtt_task(task: asyncio.Task) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "/amqtt/" in code.co_filename
