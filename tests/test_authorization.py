"""Deploying with authorization (docs/deploy/): a real Mosquitto with the documented ACL file, verbatim,
and a password file made by mosquitto_passwd. A gateway cannot publish for another gateway's device,
a client cannot publish heart rate, and the service, gateways and dashboards still work, each as its
own user."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import ROOT, free_port, need_broker_or_fail, wait_port

pytestmark = pytest.mark.network

DEPLOY = ROOT / "docs" / "deploy"
USERS = {"ppg-service": "svc-pw", "ppg-dashboard": "dash-pw", "bed-12": "bed12-pw", "bed-13": "bed13-pw", "ward-3": "ward3-pw"}


@pytest.fixture
def secured_mosquitto():
    """The documented mosquitto.conf with its listener on a free port and its files in a temporary folder."""
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        need_broker_or_fail("mosquitto and mosquitto_passwd are not installed")
    workdir = Path(tempfile.mkdtemp(prefix="ppg-stream-acl-"))
    workdir.chmod(0o777)
    passwd, acl = workdir / "ppg-stream.passwd", workdir / "ppg-stream.acl"
    passwd.touch()
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True, capture_output=True)
    passwd.chmod(0o644)
    shutil.copy(DEPLOY / "ppg-stream.acl", acl)
    port = free_port()
    conf = (DEPLOY / "mosquitto.conf").read_text()
    conf = conf.replace("listener 1883", f"listener {port} 127.0.0.1")
    conf = conf.replace("/etc/mosquitto/ppg-stream.passwd", str(passwd)).replace("/etc/mosquitto/ppg-stream.acl", str(acl))
    assert f"listener {port} 127.0.0.1" in conf and str(acl) in conf and "allow_anonymous false" in conf
    (workdir / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen(["mosquitto", "-c", str(workdir / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    yield port
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


def _as(user: str) -> dict:
    return {**os.environ, "PPG_STREAM_MQTT_USERNAME": user, "PPG_STREAM_MQTT_PASSWORD": USERS[user]}


async def _cli(env: dict, *args: str) -> asyncio.subprocess.Process:
    import sys

    return await asyncio.create_subprocess_exec(sys.executable, "-m", "ppg_stream.stream.cli", *args, cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def test_each_role_does_its_job_and_nothing_else(secured_mosquitto, synthetic_60s):
    port = secured_mosquitto
    broker = f"mqtt://127.0.0.1:{port}"
    seen: dict[str, list[bytes]] = {}
    ready = asyncio.Event()

    async def dashboard_user() -> None:  # what a dashboard reads, as the dashboard's user
        async with aiomqtt.Client("127.0.0.1", port, username="ppg-dashboard", password=USERS["ppg-dashboard"]) as client:
            await client.subscribe("ppg/#", qos=1)  # the ACL lets it read hr and status only
            ready.set()
            async for message in client.messages:
                seen.setdefault(str(message.topic), []).append(bytes(message.payload))

    watcher = asyncio.create_task(dashboard_user())
    await asyncio.wait_for(ready.wait(), 10)
    service = await _cli(_as("ppg-service"), "serve", "--broker", broker, "--service-id", "svc", "--log-json")
    try:
        line = b""
        while b'"subscribed"' not in line:  # the service may read the raw topic
            line = await asyncio.wait_for(service.stderr.readline(), 60)
            assert line, "serve ended before it subscribed"
        path = str(synthetic_60s.path)
        gateway = ("--replay", path, "--speed", "max", "--publish-raw", "--broker", broker)
        own, other = await asyncio.gather(
            asyncio.to_thread(run_cli_env, _as("bed-12"), *gateway, "--device-id", "bed-12"),
            asyncio.to_thread(run_cli_env, _as("bed-12"), *gateway, "--device-id", "bed-13"),  # posing as another gateway's device
        )
        assert own.returncode == 0 and other.returncode == 0, (own.stderr, other.stderr)  # QoS 1 acknowledged, not delivered
        async with aiomqtt.Client("127.0.0.1", port, username="ppg-dashboard", password=USERS["ppg-dashboard"]) as rogue:
            await rogue.publish("ppg/bed-12/hr", json.dumps({"device": "bed-12", "window": 999, "bpm": 199.0}), qos=1)
            await rogue.publish("ppg/bed-12/raw", b"\x01" * 40, qos=1)
        async with aiomqtt.Client("127.0.0.1", port, username="bed-12", password=USERS["bed-12"]) as gateway_user:
            await gateway_user.publish("ppg/bed-12/hr", json.dumps({"device": "bed-12", "window": 998, "bpm": 198.0}), qos=1)
            await gateway_user.publish("ppg/bed-12/status", b"hijacked", qos=1, retain=True)
        for _ in range(200):
            if len(seen.get("ppg/bed-12/hr", [])) >= synthetic_60s.n_windows:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
    finally:
        service.send_signal(2)
        _, err = await asyncio.wait_for(service.communicate(), 60)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    hr = [json.loads(p) for p in seen.get("ppg/bed-12/hr", [])]
    assert sorted(m["window"] for m in hr) == list(range(synthetic_60s.n_windows))  # only the service's, every window
    assert all(m["bpm"] < 190 for m in hr)
    assert "ppg/bed-13/hr" not in seen  # bed-12 could not feed bed-13's raw topic
    assert seen["ppg/bed-12/status"][0] == b"online" and set(seen["ppg/bed-12/status"]) == {b"online", b"offline"}  # the service's only
    assert not any(t.endswith("/raw") for t in seen)  # dashboards do not read raw chunks
    summary = json.loads(next(line for line in reversed(err.decode().splitlines()) if '"serve interrupted"' in line))
    assert summary["malformed_payloads"] == 0 and summary["devices"] == 1


def run_cli_env(env: dict, *args: str):
    import sys

    proc = subprocess.run([sys.executable, "-m", "ppg_stream.stream.cli", *args], capture_output=True, text=True, timeout=180, cwd=ROOT, env=env)
    return proc


# ---- NATS: the documented nats-server.conf, verbatim but for its listener and store ------------------
NATS_PASSWORDS = {"PPG_SERVICE_PASSWORD": "svc-pw", "BED12_PASSWORD": "bed12-pw", "PPG_DASHBOARD_PASSWORD": "dash-pw"}


@pytest.fixture
def secured_nats():
    from tests.nats_cluster import NATS_SERVER, nats_server_available

    if not nats_server_available():
        need_broker_or_fail("nats-server is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="ppg-stream-nats-acl-"))
    port = free_port()
    conf = (DEPLOY / "nats-server.conf").read_text().replace("store_dir: /var/lib/nats-server", f"store_dir: {workdir}/store")
    (workdir / "nats.conf").write_text(conf + f"\nlisten: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([NATS_SERVER, "-c", str(workdir / "nats.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **NATS_PASSWORDS})
    wait_port(port)
    yield port
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


async def test_nats_users_may_do_their_job_only(secured_nats):
    import nats

    url = lambda user, pw: f"nats://{user}:{pw}@127.0.0.1:{secured_nats}"  # noqa: E731
    seen: list[dict] = []
    dashboard = await nats.connect(url("ppg-dashboard", "dash-pw"))
    async def on_hr(msg) -> None:
        seen.append(json.loads(msg.data))

    await dashboard.subscribe("ppg.*.hr", cb=on_hr)
    worker = await _cli(os.environ.copy(), "serve", "--nats", url("ppg-service", "svc-pw"), "--log-json", "--idle-timeout", "5")
    try:
        line = b""
        while b'"worker joined"' not in line:
            line = await asyncio.wait_for(worker.stderr.readline(), 90)
            assert line, "the worker ended before it joined"
        gateway = ("--demo", "--speed", "max", "--publish-raw", "--nats", url("bed-12", "bed12-pw"), "--flush-timeout", "5")
        own = await asyncio.to_thread(run_cli_env, os.environ.copy(), *gateway, "--device-id", "bed-12")
        other = await asyncio.to_thread(run_cli_env, os.environ.copy(), *gateway, "--device-id", "bed-13")
        await dashboard.publish("ppg.bed-12.hr", json.dumps({"device": "bed-12", "window": 999, "bpm": 199.0}).encode())
        for _ in range(300):
            if len({m["window"] for m in seen if m["device"] == "bed-12"}) >= 87:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
    finally:
        worker.send_signal(2)
        await asyncio.wait_for(worker.communicate(), 60)
        await dashboard.close()
    assert own.returncode == 0, own.stderr
    assert other.returncode == 1 and "not delivered" in other.stderr  # the server refused every chunk for bed-13
    assert sorted({m["window"] for m in seen if m["device"] == "bed-12"}) == list(range(87))
    assert not [m for m in seen if m["device"] != "bed-12" or m["bpm"] > 190]
