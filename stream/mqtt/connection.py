"""One MQTT 3.1.1 connection on an asyncio transport (TCP or TLS): CONNECT/CONNACK, keepalive pings,
and incoming packets handed to callbacks. Reconnecting, queues and delivery accounting belong to the
publisher and subscriber built on it.

Errors come in two kinds, because they call for opposite reactions:
- `MqttFatalError`: refused credentials, a certificate that does not verify, a TLS handshake the
  broker refuses. Retrying cannot help; the user must fix the settings (one line, exit 2).
- `MqttConnectionError` (and `OSError`, `asyncio.TimeoutError`): an outage; retry with backoff.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from .codec import (
    CONNACK,
    CONNACK_REASONS,
    DISCONNECT_PACKET,
    PINGREQ_PACKET,
    PINGRESP,
    PUBACK,
    PUBLISH,
    REFUSED_CREDENTIALS,
    SUBACK,
    MqttProtocolError,
    PacketDecoder,
    Publish,
    Will,
    encode_connect,
    encode_puback,
    parse_publish,
)
from .settings import PASSWORD_ENV, USERNAME_ENV, BrokerSettings, BrokerUrlError

CONNECT_TIMEOUT_S = 10.0
TLS13_VERDICT_WAIT_S = 0.5  # the longest wait for a TLS 1.3 server's verdict on our certificate


class MqttFatalError(Exception):
    """Retrying cannot help: the settings (credentials, certificates) must change."""


class MqttConnectionError(Exception):
    """The connection could not be made or ended: an outage, retried with backoff."""


# TLS handshake failures that are the broker saying no to us (or us to it), not a network hiccup
_TLS_REFUSALS = ("ALERT", "WRONG_VERSION_NUMBER", "CERTIFICATE", "UNKNOWN_PROTOCOL")


def _tls_refusal(settings: BrokerSettings, error: BaseException) -> MqttFatalError | None:
    if isinstance(error, ssl.SSLCertVerificationError):
        return MqttFatalError(
            f"TLS: the certificate of {settings.url} did not verify ({error.verify_message}); "
            "check --ca-file and that the host in --broker is a name or address in the certificate"
        )
    if isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLEOFError):
        reason = error.reason or str(error)
        if any(word in reason.upper() for word in _TLS_REFUSALS):
            return MqttFatalError(
                f"TLS: {settings.url} refused the handshake ({reason.lower().replace('_', ' ')}); "
                "does it require a client certificate (--cert/--key) from a CA it trusts, and is the port a TLS listener?"
            )
    return None


class MqttConnection(asyncio.Protocol):
    """Feeds received bytes through `PacketDecoder` and dispatches by packet type.

    QoS-1 PUBLISHes are acknowledged after `on_publish` returned, all acknowledgements of one read in
    one write; the PUBACKs of one read reach `on_pubacks` as one list of packet ids. `received` passed
    to `on_publish` is `time.perf_counter()` of the read they came in. With `on_publishes` instead, the
    PUBLISHes of one read are handed over as one list (one call per read, not per message).
    """

    def __init__(
        self,
        on_pubacks: Callable[[list[int]], None] | None = None,
        on_publish: Callable[[Publish, float], None] | None = None,
        on_publishes: Callable[[list[Publish], float], None] | None = None,
        on_suback: Callable[[int, bytes], None] | None = None,
        on_oversized: Callable[[int], None] | None = None,
        max_packet_bytes: int = 1 << 20,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[int] = loop.create_future()
        self.closed: asyncio.Future[BaseException | None] = loop.create_future()
        self._on_pubacks = on_pubacks
        self._on_publish = on_publish
        self._on_publishes = on_publishes
        self._on_suback = on_suback
        self._on_oversized = on_oversized
        self._decoder = PacketDecoder(max_packet_bytes)
        self._transport: asyncio.Transport | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_interval_s = 0.0
        self._keepalive_s = 0.0
        self.last_received = time.monotonic()  # any packet from the broker proves the link (MQTT 3.1.1 §3.1.2.10)

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        try:
            packets = self._decoder.feed(data)
        except MqttProtocolError as e:
            self.abort(f"protocol error from the broker: {e}")
            return
        acks: list[bytes] = []
        pubacks: list[int] = []
        batch: list[Publish] | None = [] if self._on_publishes is not None else None
        received = 0.0
        for kind, flags, body in packets:
            if kind == PUBACK:
                if len(body) >= 2:
                    pubacks.append((body[0] << 8) | body[1])
            elif kind == PUBLISH:
                try:
                    message = parse_publish(flags, body)
                except MqttProtocolError as e:
                    if batch:  # what came before the bad packet is handed over (unacknowledged: a session resends it)
                        self._on_publishes(batch, received)  # type: ignore[misc]
                    self.abort(f"protocol error from the broker: {e}")
                    return
                if not received:
                    received = time.perf_counter()
                if batch is not None:
                    batch.append(message)
                elif self._on_publish is not None:
                    self._on_publish(message, received)
                if message.qos == 1:
                    acks.append(encode_puback(message.packet_id))
            elif kind == PINGRESP:
                pass  # like any packet, it proved the link (last_received)
            elif kind == SUBACK:
                if self._on_suback is not None and len(body) >= 3:
                    self._on_suback((body[0] << 8) | body[1], body[2:])
            elif kind == CONNACK:
                if not self.connack.done() and len(body) >= 2:
                    self.connack.set_result(body[1])
            elif kind == PacketDecoder.OVERSIZED:
                if (flags & 0xF0) == PUBLISH and (flags >> 1) & 0x03 == 1 and len(body) >= 4:
                    n = (body[0] << 8) | body[1]
                    if len(body) >= 4 + n:  # acknowledged, or the broker would send it again forever
                        acks.append(encode_puback((body[2 + n] << 8) | body[3 + n]))
                if self._on_oversized is not None:
                    self._on_oversized(flags & 0xF0)
        if batch:
            self._on_publishes(batch, received)  # type: ignore[misc]
        if acks and self._transport is not None:  # after the messages were handled: at least once
            self._transport.write(b"".join(acks))
        if pubacks and self._on_pubacks is not None:
            self._on_pubacks(pubacks)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        error = exc or MqttConnectionError("the broker closed the connection")
        if not self.connack.done():
            self.connack.set_exception(error)
            self.connack.exception()  # retrieved: nobody may be waiting any more
        if not self.closed.done():
            self.closed.set_result(exc)

    # --- for the client ---
    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self.closed.done()

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS session's state, or None on plain TCP."""
        return self._transport.get_extra_info("ssl_object") if self._transport is not None else None

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def start_keepalive(self, keepalive_s: float) -> None:
        """PINGREQ every half keepalive, so the broker hears from us; the link is declared dead only when
        nothing at all (no PINGRESP, no PUBLISH, no PUBACK) arrived for a whole keepalive interval. A
        PINGRESP queued behind a long backlog of messages is late, but the backlog itself proves the
        broker is there: reconnecting then would only make a clean session discard that backlog."""
        self._keepalive_s = float(keepalive_s)
        self._ping_interval_s = keepalive_s / 2
        self.last_received = time.monotonic()
        self._ping_timer = asyncio.get_running_loop().call_later(self._ping_interval_s, self._ping)

    def _ping(self) -> None:
        silent_s = time.monotonic() - self.last_received
        if silent_s >= self._keepalive_s:
            self.abort(f"nothing arrived from the broker for {silent_s:.3g} s (keepalive {self._keepalive_s:g} s)")
            return
        self.write(PINGREQ_PACKET)  # every half interval, answered or not: a PINGRESP may sit behind the backlog
        # next look: half an interval on, or the moment the silence would reach the keepalive
        wait_s = min(self._ping_interval_s, self._keepalive_s - silent_s)
        self._ping_timer = asyncio.get_running_loop().call_later(max(wait_s, 0.01), self._ping)

    def abort(self, reason: str) -> None:
        """Drop the connection now (no DISCONNECT: the broker publishes the last will)."""
        if not self.closed.done():
            self.closed.set_result(MqttConnectionError(reason))
        if self._transport is not None:
            self._transport.abort()

    def disconnect(self) -> None:
        """A clean goodbye: the broker discards the last will."""
        self.write(DISCONNECT_PACKET)
        if self._transport is not None:
            self._transport.close()


async def _tls13_verdict(conn: MqttConnection, wait_s: float) -> None:
    """Under TLS 1.3 the server judges our client certificate (or its absence) after our handshake is done:
    its refusal is an alert that follows, its acceptance a session ticket. Writing CONNECT before either
    arrives races the refusal: the server closes with CONNECT unread, its kernel answers with a reset, and
    the reset can overtake the alert, so a certificate problem looked like an outage (up to 11 of 60 attempts
    without a certificate, measured against Mosquitto). So wait, briefly, for the ticket or the close;
    a server that issues no tickets costs at most `wait_s` per connection."""
    ssl_object = conn.ssl_object
    if ssl_object is None or ssl_object.version() != "TLSv1.3":
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not conn.closed.done():
        session = ssl_object.session
        if session is not None and session.has_ticket:
            return
        await asyncio.sleep(0.005)


async def connect(
    settings: BrokerSettings,
    client_id: str,
    keepalive_s: int = 30,
    will: Will | None = None,
    clean_session: bool = True,
    timeout_s: float = CONNECT_TIMEOUT_S,
    **handlers,
) -> MqttConnection:
    """Connect and wait for the CONNACK. Raises MqttFatalError (do not retry) or an outage error."""
    loop = asyncio.get_running_loop()
    try:
        context = settings.ssl_context()  # per attempt: renewed certificate files are picked up on reconnect
    except BrokerUrlError as e:
        raise MqttFatalError(str(e)) from None
    try:
        async with asyncio.timeout(timeout_s):  # not wait_for: on Python 3.11 it can swallow a Ctrl-C that lands as it completes
            _, conn = await loop.create_connection(lambda: MqttConnection(**handlers), settings.host, settings.port, ssl=context,
                                                   server_hostname=settings.host if context else None)
    except ssl.SSLError as e:
        raise _tls_refusal(settings, e) or MqttConnectionError(f"TLS handshake failed: {e}") from None
    except TimeoutError:
        raise MqttConnectionError(f"no connection within {timeout_s:g} s") from None
    await _tls13_verdict(conn, TLS13_VERDICT_WAIT_S)
    conn.write(encode_connect(client_id, keepalive_s, clean_session, will, settings.username, settings.password))
    try:
        async with asyncio.timeout(timeout_s):
            code = await asyncio.shield(conn.connack)
    except TimeoutError:
        conn.abort("no CONNACK")
        raise MqttConnectionError(f"the broker did not answer CONNECT within {timeout_s:g} s") from None
    except ssl.SSLError as e:
        raise _tls_refusal(settings, e) or MqttConnectionError(f"TLS: {e}") from None
    except (OSError, MqttConnectionError) as e:
        raise MqttConnectionError(f"the connection closed before CONNACK: {e or e.__class__.__name__}") from None
    if code:
        conn.abort("connection refused")
        reason = CONNACK_REASONS.get(code, f"return code {code}")
        if code in REFUSED_CREDENTIALS:
            who = "with the user name and password given" if settings.username else "without a user name"
            raise MqttFatalError(f"{settings.url} refused the connection {who}: {reason}; check the credentials (--broker USER:PASSWORD@, {USERNAME_ENV}, {PASSWORD_ENV})")
        raise MqttConnectionError(f"{settings.url} refused the connection: {reason}")
    conn.start_keepalive(keepalive_s)
    return conn


def describe_outage(error: BaseException | None) -> str:
    """Why a connection failed or ended, for the one warning per outage."""
    if error is None:
        return "the broker closed the connection"
    text = str(error)
    return f"{error.__class__.__name__}: {text}" if text and not isinstance(error, MqttConnectionError) else (text or error.__class__.__name__)
