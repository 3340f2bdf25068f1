"""Where to publish: an explicit `mqtt://host:port`, the broker already on 127.0.0.1:1883, or an
embedded amqtt broker started on the spot so a first run needs nothing installed."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlparse

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883


class BrokerUrlError(ValueError):
    pass


def parse_broker_url(url: str) -> tuple[str, int]:
    """`mqtt://host[:port]` or `host[:port]` → (host, port)."""
    parsed = urlparse(url if "://" in url else f"mqtt://{url}")
    if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
        raise BrokerUrlError(f"--broker {url!r}: expected mqtt://HOST[:PORT]")
    try:
        port = parsed.port or DEFAULT_PORT
    except ValueError:
        raise BrokerUrlError(f"--broker {url!r}: port must be a number 1-65535") from None
    return parsed.hostname, port


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
    """An amqtt broker bound to loopback only, living as long as the `async with` block."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.host, self.port = host, port
        self._broker = None

    async def __aenter__(self) -> "EmbeddedBroker":
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
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

    async def __aexit__(self, *exc: object) -> None:
        if self._broker is not None:
            try:
                await self._broker.shutdown()
            except Exception:  # shutting down a broker with clients mid-flight must not mask the run's result
                pass
