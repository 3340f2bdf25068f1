"""The dashboard's HTTP side (aiohttp): the page and its vendored static files, the event stream
(Server-Sent Events) and a JSON snapshot for scripts.

One route changes something: `DELETE /api/devices?id=ID` (or `?status=offline`) clears offline devices
from the dashboard and their retained status from the broker. When bound to loopback, requests must name
a loopback host, so a web page elsewhere cannot read the dashboard through DNS rebinding; a request that
changes something must come from the dashboard's own page (its Origin), or from no page at all (a script).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from .hub import CLOSE, EventHub, TooManyClients

STATIC_DIR = Path(__file__).resolve().parent / "static"
KEEPALIVE_S = 15.0
RECONNECT_MS = 1000  # EventSource retry delay after a dropped stream
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_of(header: str) -> str | None:
    """The host of a Host header without its port (`[::1]:8080` → `::1`), or None when the header is
    not a host and an optional port 1-65535 (it is answered 400, never an error of ours)."""
    if header.startswith("["):
        end = header.find("]")
        host, rest = (header[1:end], header[end + 1 :]) if end > 0 else ("", "")
    else:
        host, colon, port = header.partition(":")
        rest = colon + port
    if rest and not (rest[0] == ":" and rest[1:].isdigit() and 0 < int(rest[1:]) < 65536):
        return None
    return host or None


def make_app(hub: EventHub, snapshot: Callable[[], str], clear: Callable[[str | None], dict], loopback_only: bool) -> web.Application:
    """`snapshot()` returns the JSON of everything a browser that just connected needs; `clear(id)` forgets
    an offline device (None: every offline device) and says what it did."""
    app = web.Application(middlewares=[_guard(loopback_only)])

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def devices(request: web.Request) -> web.Response:
        return web.Response(text=snapshot(), content_type="application/json")

    async def events(request: web.Request) -> web.StreamResponse:
        try:
            queue = hub.subscribe()
        except TooManyClients as e:
            raise web.HTTPServiceUnavailable(text=str(e)) from None
        first = snapshot()  # taken in the same step as subscribing: no update falls between the two
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
        try:
            await response.prepare(request)
            await response.write(f"retry: {RECONNECT_MS}\nevent: snapshot\ndata: {first}\n\n".encode())
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_S):
                        text = await queue.get()
                except TimeoutError:
                    text = ": keep-alive\n\n"
                if text is CLOSE:
                    break
                await response.write(text.encode())
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            hub.unsubscribe(queue)
        return response

    async def clear_devices(request: web.Request) -> web.Response:
        device, status = request.query.get("id"), request.query.get("status")
        if (device is None) == (status is None) or status not in (None, "offline"):
            raise web.HTTPBadRequest(text="give ?id=DEVICE or ?status=offline")
        result = clear(device)
        if "refused" in result:
            raise web.HTTPConflict(text=result["refused"]) if result["refused"] != "unknown device" else web.HTTPNotFound(text=result["refused"])
        return web.json_response(result)

    app.router.add_get("/", index)
    app.router.add_delete("/api/devices", clear_devices)
    app.router.add_get("/events", events)
    app.router.add_get("/api/devices", devices)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    return app


def _guard(loopback_only: bool):
    @web.middleware
    async def guard(request: web.Request, handler):
        if loopback_only:
            host = host_of(request.headers.get("Host", ""))
            if host is None:
                raise web.HTTPBadRequest(text="the Host header is not a host name with an optional port")
            if not is_loopback(host):
                raise web.HTTPMisdirectedRequest(text="this dashboard answers on loopback names only (127.0.0.1, localhost)")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                raise web.HTTPForbidden(text="changes are accepted from the dashboard's own page only")
        response = await handler(request)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    return guard
