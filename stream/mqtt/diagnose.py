"""A first connection that fails may be a mistake in `--broker` rather than an outage: a host name that
does not resolve, TLS to a plain MQTT listener, plain MQTT to a TLS listener. Retried as outages, these
looked like a broker that was down and ended, seconds or never later, in a count of undelivered
messages. At start only (a broker that worked and went away is an outage, retried), this module asks
the port itself what it speaks, so the mistake is one line at once.

A broker that is merely down (connection refused, no answer) and a DNS server that cannot be reached
(a temporary failure) stay outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl

from .codec import CONNACK, DISCONNECT_PACKET, encode_connect
from .connection import MqttConnectionError, MqttFatalError
from .settings import BrokerSettings

PROBE_TIMEOUT_S = 2.0
# getaddrinfo's answers that mean "this name does not exist", as opposed to EAI_AGAIN (DNS unreachable)
_NO_SUCH_NAME = {socket.EAI_NONAME, *(getattr(socket, name) for name in ("EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, name))}
# how a connection to a listener of the other kind ends: closed or reset during the TLS handshake or
# before CONNACK, or (a TLS server waiting for the rest of a record it cannot parse) no answer at all
_CLOSED_EARLY = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ssl.SSLEOFError, MqttConnectionError, TimeoutError)


async def settings_mistake(settings: BrokerSettings, error: BaseException) -> MqttFatalError | None:
    """The mistake in the settings that `error` (the first attempt's) comes from, or None for an outage."""
    if isinstance(error, socket.gaierror):
        if error.errno in _NO_SUCH_NAME:
            return MqttFatalError(f"{settings.url}: the host name {settings.host!r} does not resolve ({error.strerror or 'no such name'}); "
                                  "check the host in --broker")
        return None
    tls_failed = isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLCertVerificationError)
    if not (isinstance(error, _CLOSED_EARLY) or tls_failed):
        return None
    plain = f"mqtt://{_host(settings)}:{settings.port}"
    if settings.tls and await speaks_plain_mqtt(settings.host, settings.port):
        return MqttFatalError(f"{settings.url} answers plain MQTT, not TLS: use --broker {plain} (no TLS), or the broker's TLS port")
    if not settings.tls and await speaks_tls(settings.host, settings.port):
        return MqttFatalError(f"{settings.url} is a TLS listener: use --broker mqtts://{_host(settings)}:{settings.port} "
                              "(with --ca-file PEM when its certificate comes from a private CA)")
    return None


async def speaks_plain_mqtt(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Does the port answer an MQTT CONNECT (no credentials, a throwaway client id) with a CONNACK?"""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(encode_connect(f"ppg-stream-probe-{secrets.token_hex(4)}", 5))
                head = await reader.readexactly(2)
                if head[0] == CONNACK:
                    writer.write(DISCONNECT_PACKET)
                return head[0] == CONNACK
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False


async def speaks_tls(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Does the port complete a TLS handshake, or refuse one with a TLS alert? Nothing is verified or sent
    beyond the handshake: the question is only which protocol listens there."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port, ssl=context)
    except ssl.SSLError as e:
        return "ALERT" in (e.reason or "").upper()  # the server answered in TLS (e.g. it wants a client certificate)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


def _host(settings: BrokerSettings) -> str:
    return f"[{settings.host}]" if ":" in settings.host else settings.host
