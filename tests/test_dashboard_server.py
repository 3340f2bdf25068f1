"""`ppg-stream dashboard` (for now `ppg-stream dashboard`) against the real Mosquitto: the page and
its event stream, the command's errors, broker outages, and the embeddable `Dashboard`."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time

import aiohttp
import pytest

from ppg_stream.stream.consumers.dashboard import Dashboard, DashboardError
from ppg_stream.stream.consumers.dashboard.connection_guard import ConnectionGuard
from ppg_stream.stream.consumers.dashboard.server import STATIC_DIR
from tests.conftest import ROOT, port_open
from tests.dashboard_helpers import clear_retained, hr_payload, publish, start_dashboard, unique_prefix

pytestmark = pytest.mark.network


async def get_json(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.json()


async def wait_for_device(url: str, device: str, check=lambda d: True, timeout_s: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        snap = await get_json(url + "api/devices")
        found = [d for d in snap["devices"] if d["id"] == device]
        if found and check(found[0]):
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{device} not as expected after {timeout_s} s: {found or snap['devices'][:3]}")
        await asyncio.sleep(0.05)


async def read_events(response: aiohttp.ClientResponse):
    """Yields (event, data) from a text/event-stream."""
    event, data = None, []
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if event:
                yield event, json.loads("\n".join(data))
            event, data = None, []
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


async def test_devices_appear_with_their_messages_and_status(mosquitto_1883):
    prefix = unique_prefix()
    dash = start_dashboard(prefix)
    try:
        await publish([(f"{prefix}/wrist-1/status", b"online")], retain=True)
        await publish([(f"{prefix}/wrist-1/hr", hr_payload("wrist-1", w, 70.0 + w, late=w == 2)) for w in (0, 1, 2, 4)])
        # status and heart rates come over two subscriptions: their relative order is not the broker's to keep
        card = await wait_for_device(dash.url, "wrist-1", lambda d: d["n"] == 4 and d["status"] is not None)
        assert (card["status"], card["bpm"], card["late"], card["missed"], card["model"]) == ("online", 74.0, 1, 1, "ppg-student@1.1")
        assert [p[0] for p in card["pts"]] == [8.0, 10.0, 12.0, 16.0]
        async with aiohttp.ClientSession() as session, session.get(dash.url) as response:
            page = await response.text()
            assert response.status == 200 and "/static/app.js" in page
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    finally:
        assert dash.stop() == 0  # SIGTERM: a clean stop
        await clear_retained(prefix, ["wrist-1"])
    assert not port_open(dash.port)


async def test_event_stream_sends_a_snapshot_then_updates(mosquitto_1883):
    prefix = unique_prefix()
    dash = start_dashboard(prefix)
    try:
        await publish([(f"{prefix}/a/hr", hr_payload("a", 0, 61.0))])
        await wait_for_device(dash.url, "a")
        async with aiohttp.ClientSession() as session, session.get(dash.url + "events") as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = read_events(response)
            kind, snapshot = await anext(events)
            assert kind == "snapshot" and [d["id"] for d in snapshot["devices"]] == ["a"]
            assert snapshot["meta"]["broker_state"] == "connected"
            await publish([(f"{prefix}/a/hr", hr_payload("a", 1, 63.5)), (f"{prefix}/b/status", b"offline")])
            seen: dict[str, dict] = {}
            async with asyncio.timeout(5):
                while not ("a" in seen and "b" in seen):
                    kind, update = await anext(events)
                    assert kind == "update"
                    seen.update({d["id"]: d for d in update.get("devices", [])})
            # an update may repeat points the snapshot already had (the browser keeps each time once)
            assert seen["a"]["bpm"] == 63.5 and [p[0] for p in seen["a"]["pts"] if p[0] > 8.0] == [10.0]
            assert seen["b"]["status"] == "offline" and seen["b"]["bpm"] is None
    finally:
        dash.stop()
        await clear_retained(prefix, ["b"])


async def test_the_page_needs_nothing_from_the_internet():
    files = sorted(p for p in STATIC_DIR.iterdir() if p.is_file())
    assert {p.name for p in files} >= {"index.html", "app.js", "app.css"}
    for path in files:
        text = path.read_text()
        urls = [u for u in re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text) if u != "http://www.w3.org/2000/svg"]
        assert urls == [], f"{path.name} refers to {urls}"
    page = (STATIC_DIR / "index.html").read_text()
    assert set(re.findall(r'(?:src|href)="([^"]+)"', page)) == {"/static/favicon.svg", "/static/app.css", "/static/app.js"}


async def test_loopback_dashboard_refuses_foreign_host_names(mosquitto_1883):
    """A page elsewhere that rebinds its DNS name to 127.0.0.1 must not read the heart rates."""
    dash = start_dashboard(unique_prefix())
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(dash.url + "api/devices", headers={"Host": f"evil.example:{dash.port}"}) as response:
                assert response.status == 421
            async with session.get(f"http://localhost:{dash.port}/api/devices") as response:
                assert response.status == 200
    finally:
        dash.stop()


def run_dashboard(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ppg_stream.stream.cli", "dashboard", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppg-stream: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_port_taken_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_dashboard("--port", str(port))
    assert_one_line_error(result, f"127.0.0.1:{port}", "address already in use")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--port", "http"], "invalid port"),
        (["--port", "70000"], "invalid port"),
        (["--broker", "http://x:1883"], "mqtt://HOST"),
        (["--topic-prefix", "ppg/#"], "wildcards"),
        (["--max-devices", "0"], "whole number ≥ 1"),
        (["--wat"], "unrecognized"),
    ],
)
def test_bad_arguments_are_one_line_errors(args, fragment):
    assert_one_line_error(run_dashboard(*args), fragment)


def test_an_address_it_cannot_bind_is_a_one_line_error():
    assert_one_line_error(run_dashboard("--host", "192.0.2.1", "--port", "0"), "192.0.2.1")


async def test_rides_out_a_broker_outage(private_mosquitto):
    prefix = unique_prefix()
    dash = start_dashboard(prefix, broker_port=private_mosquitto.port)
    try:
        await publish([(f"{prefix}/w/hr", hr_payload("w", 0, 70.0))], port=private_mosquitto.port)
        await wait_for_device(dash.url, "w")
        private_mosquitto.stop()
        deadline = time.monotonic() + 5
        while (await get_json(dash.url + "api/devices"))["meta"]["broker_state"] != "disconnected":
            assert time.monotonic() < deadline, "the page never learns that the broker is gone"
            await asyncio.sleep(0.1)
        assert (await wait_for_device(dash.url, "w"))["bpm"] == 70.0  # the last values stay on the card
        private_mosquitto.start()
        deadline = time.monotonic() + 15
        while (await get_json(dash.url + "api/devices"))["meta"]["broker_state"] != "connected":
            assert time.monotonic() < deadline, "no reconnection"
            await asyncio.sleep(0.1)
        await publish([(f"{prefix}/w/hr", hr_payload("w", 1, 72.0))], port=private_mosquitto.port)
        card = await wait_for_device(dash.url, "w", lambda d: d["bpm"] == 72.0)
        assert card["missed"] == 0 and card["n"] == 2
    finally:
        dash.stop()


async def test_embedded_in_another_event_loop(mosquitto_1883):
    """What `--dashboard` on a streaming command does: it runs inside that command's loop and still
    learns everything from the broker; it gives its port back when the block ends."""
    prefix = unique_prefix()
    async with Dashboard("127.0.0.1", 0, *mosquitto_1883, prefix, max_devices=20) as dash:
        assert dash.port != 0 and dash.url == f"http://127.0.0.1:{dash.port}/"
        with pytest.raises(DashboardError, match="address already in use") as taken:
            async with Dashboard("127.0.0.1", dash.port, *mosquitto_1883, prefix):
                pass
        assert str(taken.value) == f"dashboard: cannot listen on 127.0.0.1:{dash.port}: address already in use"
        assert await dash.ready(timeout_s=5)
        await publish([(f"{prefix}/d{i}/hr", hr_payload(f"d{i}", 0, 60.0 + i)) for i in range(50)])
        deadline = time.monotonic() + 5
        while (snap := await get_json(dash.url + "api/devices"))["meta"]["received"] < 50:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert len(snap["devices"]) == 20 and snap["meta"]["evicted"] == 30  # bounded in total
        port = dash.port
    assert not port_open(port)


async def test_stops_promptly_with_a_browser_connected(mosquitto_1883):
    dash = start_dashboard(unique_prefix())
    async with aiohttp.ClientSession() as session, session.get(dash.url + "events") as response:
        await response.content.readline()
        t0 = time.monotonic()
        assert dash.stop(timeout_s=5) == 0
        assert time.monotonic() - t0 < 3


async def test_logs_the_url_it_listens_on(mosquitto_1883):
    """With --port 0 the system picks the port; the log line is how a user finds the page."""
    proc = subprocess.Popen([sys.executable, "-m", "ppg_stream.stream.cli", "dashboard", "--port", "0", "--log-json", "--topic-prefix", unique_prefix()],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 20)
        record = json.loads(line)
        assert record["event"] == "dashboard running"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", record["url"]) and not record["url"].endswith(":0/")
        async with aiohttp.ClientSession() as session, session.get(record["url"]) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@pytest.mark.slow
async def test_shows_a_real_replay_end_to_end(mosquitto_1883):
    """The pipeline publishes, the dashboard only listens: every window arrives, none counted missed,
    and the card turns offline when the replay ends."""
    prefix = unique_prefix()
    dash = start_dashboard(prefix)
    try:
        replay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ppg_stream.stream.cli", "--demo", "--speed", "max", "--topic-prefix", prefix, "--stdout",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(replay.communicate(), 120)
        assert replay.returncode == 0
        published = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        card = await wait_for_device(dash.url, "demo", lambda d: d["status"] == "offline" and d["n"] == len(published), timeout_s=10)
        assert card["missed"] == 0 and card["model"] == published[-1]["model"]
        assert card["bpm"] == published[-1]["bpm"] and card["late"] == sum(m["late"] for m in published)
        assert len(card["pts"]) == min(sum(m["reliable"] for m in published), 150)  # no reliable estimate: no point
    finally:
        dash.stop()
        await clear_retained(prefix, ["demo"])


async def test_ready_says_whether_the_broker_answers(private_mosquitto):
    private_mosquitto.stop()
    async with Dashboard("127.0.0.1", 0, "127.0.0.1", private_mosquitto.port, unique_prefix()) as dash:
        assert not await dash.ready(timeout_s=0.5)  # no broker: the command goes on, the dashboard retries
        private_mosquitto.start()
        assert await dash.ready(timeout_s=10)


@pytest.mark.slow
def test_stops_cleanly_even_while_still_subscribing():
    """A broker that accepts the connection and never answers CONNECT: the page is up (its URL logged after
    the first few seconds) while the subscription is still being set up. SIGTERM then ends the process at
    once with status 0."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepted by the kernel, never read: no CONNACK ever comes
        broker = f"mqtt://127.0.0.1:{silent.getsockname()[1]}"
        for _ in range(3):
            proc = subprocess.Popen([sys.executable, "-m", "ppg_stream.stream.cli", "dashboard", "--port", "0", "--log-json",
                                     "--topic-prefix", unique_prefix(), "--broker", broker],
                                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            record = json.loads(proc.stderr.readline())
            assert record["event"] == "dashboard running" and record["subscribed"] is False
            proc.terminate()
            assert proc.wait(timeout=5) == 0


async def _retained(prefix: str, device: str, wait_s: float = 1.0) -> list[bytes]:
    """What a subscriber that starts now is given on the device's status topic (retained only)."""
    import aiomqtt

    got: list[bytes] = []
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(f"{prefix}/{device}/status", qos=1)
        try:
            async with asyncio.timeout(wait_s):
                async for message in client.messages:
                    got.append(bytes(message.payload))
        except TimeoutError:
            pass
    return got


@pytest.mark.slow
async def test_an_offline_device_can_be_cleared_from_the_page_and_stays_cleared(mosquitto_1883):
    """Retained `offline` statuses of earlier runs used to pile up as cards that only publishing empty
    retained messages by hand could clear."""
    prefix = unique_prefix()
    await publish([(f"{prefix}/{d}/status", s) for d, s in (("old1", b"offline"), ("old2", b"offline"), ("live", b"online"))], retain=True)
    dash = start_dashboard(prefix)
    try:
        for device in ("old1", "old2", "live"):
            await wait_for_device(dash.url, device)
        async with aiohttp.ClientSession() as session:
            async def delete(query: str, **headers) -> int:
                async with session.delete(dash.url + "api/devices?" + query, headers=headers) as response:
                    return response.status

            assert await delete("id=live") == 409  # online: it would be back with its next message
            assert await delete("id=nobody") == 404
            assert await delete("id=old1", Origin="http://evil.example") == 403  # another site's page cannot
            assert await delete("id=old1", Origin=dash.url.rstrip("/")) == 200  # the dashboard's own page can
        snap = await get_json(dash.url + "api/devices")
        assert sorted(d["id"] for d in snap["devices"]) == ["live", "old2"]
        assert await _retained(prefix, "old1") == []  # gone from the broker too: the next dashboard will not show it
        assert await _retained(prefix, "old2") == [b"offline"]
        async with aiohttp.ClientSession() as session, session.delete(dash.url + "api/devices?status=offline") as response:
            assert (await response.json()) == {"cleared": ["old2"]}
        assert await _retained(prefix, "old2") == [] and await _retained(prefix, "live") == [b"online"]
    finally:
        dash.stop()
        await clear_retained(prefix, ["live"])


@pytest.mark.slow
async def test_a_device_offline_longer_than_the_retention_is_forgotten(mosquitto_1883):
    prefix = unique_prefix()
    await publish([(f"{prefix}/{d}/status", s) for d, s in (("stale", b"offline"), ("live", b"online"))], retain=True)
    dash = start_dashboard(prefix, "--retention", "2s")
    try:
        await wait_for_device(dash.url, "live")
        await wait_for_device(dash.url, "stale")
        deadline = time.monotonic() + 10
        while any(d["id"] == "stale" for d in (await get_json(dash.url + "api/devices"))["devices"]):
            assert time.monotonic() < deadline, "still shown after the retention"
            await asyncio.sleep(0.2)
        assert await _retained(prefix, "stale") == []
        assert [d["id"] for d in (await get_json(dash.url + "api/devices"))["devices"]] == ["live"]  # online: kept
    finally:
        dash.stop()
        await clear_retained(prefix, ["live", "stale"])


def test_retention_is_a_duration():
    assert_one_line_error(run_dashboard("--retention", "soon"), "--retention", "expected a duration such as 90s, 30m, 12h or 7d")


async def _raw_http(port: int, request: bytes, read_s: float = 3.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        async with asyncio.timeout(read_s):
            return await reader.read(200)
    finally:
        writer.close()


async def test_hostile_http_requests_are_answered_without_a_traceback(mosquitto_1883, caplog):
    """A Host header that is no host, or a port out of range, is a 400; a 20 KB header or URL is a 400
    counted and logged in one throttled line; none leaves a traceback in the log."""
    async with Dashboard("127.0.0.1", 0, *mosquitto_1883, unique_prefix()) as dash:
        for host in (b"[", b"127.0.0.1:99999", b"127.0.0.1:x", b"[::1"):
            answer = await _raw_http(dash.port, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400"), (host, answer)
        assert (await _raw_http(dash.port, b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")).startswith(b"HTTP/1.1 200")
        for big in (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
                    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"):
            assert b" 400 " in (await _raw_http(dash.port, big))[:20]
        assert dash.guard.bad_requests == 2
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


async def test_connections_that_never_finish_their_headers_are_closed_and_capped(mosquitto_1883):
    """A slowloris (connections that send half a request and wait) is closed after the header timeout;
    beyond the connection cap new connections are refused at once; the page still answers afterwards."""
    guard = ConnectionGuard(header_timeout_s=0.5, max_connections=8)
    async with Dashboard("127.0.0.1", 0, *mosquitto_1883, unique_prefix(), guard=guard) as dash:
        slow = [await asyncio.open_connection("127.0.0.1", dash.port) for _ in range(12)]
        for _, writer in slow:
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await asyncio.sleep(1.5)
        closed = 0
        for reader, writer in slow:
            try:
                async with asyncio.timeout(1.0):
                    closed += await reader.read(1) == b""
            except (TimeoutError, ConnectionError):
                closed += 1
            writer.close()
        assert closed == 12 and guard.refused == 4 and guard.timed_out == 8 and guard.open == 0
        assert (await _raw_http(dash.port, b"GET /api/devices HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")).startswith(b"HTTP/1.1 200")
