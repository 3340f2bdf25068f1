"""The consumers next to a streaming command: `--dashboard` serves the page from the same process and
learns the devices from the broker; `--ha-discovery` makes every device appear in Home Assistant."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from tests.conftest import Collector, run_cli, start_cli, until_logged
from tests.serve_helpers import Service, publish_all, raw_payloads, synthetic_recording, unique_prefix

pytestmark = pytest.mark.network


@pytest.mark.slow
async def test_replay_with_dashboard_shows_the_device_at_its_url(mosquitto_1883, synthetic_60s):
    prefix = unique_prefix("dash")
    proc = await start_cli("--replay", str(synthetic_60s.path), "--speed", "6", "--dashboard", "0", "--topic-prefix", prefix, "--log-json")
    url, seen = None, None
    try:
        while url is None:
            line = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert line, "the replay ended before the dashboard said where it is"
            entry = json.loads(line) if line.startswith(b"{") else {}
            if entry.get("event") == "dashboard running":
                url = entry["url"]
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                async with session.get(url + "api/devices") as response:
                    snapshot = await response.json()
                seen = next((d for d in snapshot["devices"] if d["id"] == "syn60"), None)
                if seen and seen.get("bpm"):
                    break
                await asyncio.sleep(0.1)
        assert re.match(r"http://127\.0\.0\.1:\d+/$", url)
        assert seen is not None and 40 < seen["bpm"] < 200
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


@pytest.mark.slow
async def test_the_dashboard_stays_up_after_the_replay_until_ctrl_c(mosquitto_1883, synthetic_60s):
    """The demo's case: a user who opens the URL after the replay has ended still sees it. The URL is logged
    before the warm-up (which says it is compiling); after the summary, the page stays until Ctrl-C (exit 0:
    the replay itself completed)."""
    import signal

    prefix = unique_prefix("linger")
    proc = await start_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--dashboard", "0", "--topic-prefix", prefix, "--log-json")
    try:
        lines = await until_logged(proc, "the dashboard stays up until Ctrl-C")
        events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
        assert events.index("dashboard running") < events.index(next(e for e in events if e.startswith("warming up: compiling"))) \
            < events.index("replay starting") < events.index("replay finished")
        url = json.loads(lines[-1])["url"]
        await asyncio.sleep(1.0)
        assert proc.returncode is None  # still serving, after the replay
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "api/devices") as response:
                device, = [d for d in (await response.json())["devices"] if d["id"] == "syn60"]
        assert device["status"] == "offline" and 40 < device["bpm"] < 200 and device["n"] == synthetic_60s.n_windows
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0 and b"Traceback" not in stderr


@pytest.mark.slow
async def test_ha_discovery_from_a_replay_and_its_removal(mosquitto_1883, synthetic_60s):
    prefix = unique_prefix("ha")
    collector = await Collector(*mosquitto_1883, f"hatest-{prefix}/#").start()
    try:
        result = await asyncio.to_thread(run_cli, "--replay", str(synthetic_60s.path), "--speed", "max", "--topic-prefix", prefix,
                                         "--ha-discovery", f"hatest-{prefix}", "--ha-remove-on-leave")
        assert result.returncode == 0, result.stderr
        await asyncio.sleep(0.5)
    finally:
        await collector.stop()
    configs = {t: p for t, p in collector.raw.items() if t.endswith("/config")}
    assert len(configs) == 1
    (topic, payloads), = configs.items()
    config = json.loads(payloads[0])
    assert config["state_topic"] == f"{prefix}/syn60/hr" and config["unit_of_measurement"] == "bpm"
    assert config["availability"] == [{"topic": f"{prefix}/syn60/status", "payload_available": "online", "payload_not_available": "offline"}]
    from ppg_stream.stream.core.engine import InferenceEngine

    student = InferenceEngine("student").spec
    assert config["device"]["model"] == student.label  # the shipped default, whatever its version
    assert config["expire_after"] == 10 * student.hop_s  # ten hops without a heart rate: unavailable
    assert payloads[-1] == b""  # --ha-remove-on-leave: the entity is removed when the replay ends


@pytest.mark.slow
async def test_serve_announces_devices_with_the_service_in_their_availability(mosquitto_1883):
    prefix = unique_prefix("hasrv")
    collector = await Collector(*mosquitto_1883, f"homeassistant/sensor/{prefix}/#").start()
    service = await Service(("--topic-prefix", prefix, "--service-id", "ward", "--ha-discovery")).start()
    try:
        rec = synthetic_recording("bed7", 12.0, seed=3)
        await publish_all([(t, p) for _, t, p in raw_payloads(rec, prefix, "bed7")])
        for _ in range(100):
            if collector.raw:
                break
            await asyncio.sleep(0.1)
        assert await service.stop() == 130
    finally:
        service.kill()
        await collector.stop()
    (topic, payloads), = collector.raw.items()
    await publish_all([(topic, b"")], retain=True)  # leave the shared broker as we found it
    config = json.loads(payloads[0])
    assert config["availability_mode"] == "all"
    assert [a["topic"] for a in config["availability"]] == [f"{prefix}/bed7/status", f"{prefix}/_service/ward/status"]
    assert len(payloads) == 1  # stays after Ctrl-C: the device shows as unavailable, its history kept


@pytest.mark.parametrize("args, fragment", [
    (["--demo", "--no-mqtt", "--dashboard"], "--dashboard reads the MQTT broker"),
    (["--demo", "--no-mqtt", "--ha-discovery"], "--ha-discovery publishes over MQTT"),
    (["--demo", "--ha-discovery", "a/#"], "without MQTT wildcards"),
    (["--demo", "--publish-raw", "--ha-discovery"], "--publish-raw only publishes none"),
    (["--demo", "--ha-remove-on-leave"], "applies to --ha-discovery only"),
    (["--demo", "--dashboard", "99999"], "invalid port"),
])
def test_consumer_flag_mistakes_are_one_line(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
