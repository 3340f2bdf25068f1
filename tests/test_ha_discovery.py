"""Home Assistant MQTT discovery: every field checked against the documented schema, the templates
rendered on real HR messages the way Home Assistant renders them (Jinja2, sandboxed), and the configs
published retained to the real Mosquitto and read back by a fresh subscriber."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import aiomqtt
import pytest

from ppg_stream.stream.consumers.home_assistant.discovery import (
    EXPIRE_AFTER_HOPS,
    discovery_messages,
    discovery_topic,
    ha_id,
    ppg_stream_version,
    removal_messages,
    unique_id,
)
from ppg_stream.stream.core.message import device_hr_message, hr_message, hr_topic, status_topic

jinja2_sandbox = pytest.importorskip("jinja2.sandbox", reason="jinja2 renders the templates as Home Assistant does")

# Home Assistant docs, integrations/mqtt § "Discovery topic": <discovery_prefix>/<component>/[<node_id>/]<object_id>/config,
# node_id and object_id "must only consist of characters from the character class [a-zA-Z0-9_-]"
DOCUMENTED_TOPIC = re.compile(r"^(?P<prefix>[^#+]+)/(?P<component>sensor)/(?P<node>[a-zA-Z0-9_-]+)/(?P<object>[a-zA-Z0-9_-]+)/config$")

# integrations/sensor.mqtt § Configuration variables (the keys this project uses and their documented types),
# integrations/mqtt § "Using Availability topics" and § "Adding information about the origin".
SENSOR_KEYS = {
    "availability": list,
    "availability_mode": str,
    "device": dict,
    "expire_after": int,  # "the number of seconds after the sensor's state expires, if it's not updated"
    "icon": str,
    "json_attributes_template": str,
    "json_attributes_topic": str,
    "name": str,
    "origin": dict,
    "qos": int,
    "state_class": str,
    "state_topic": str,
    "suggested_display_precision": int,
    "unique_id": str,
    "unit_of_measurement": str,
    "value_template": str,
}
REQUIRED = {"state_topic"}
AVAILABILITY_KEYS = {"topic": str, "payload_available": str, "payload_not_available": str, "value_template": str}
DEVICE_KEYS = {
    "configuration_url": str, "connections": list, "hw_version": str, "identifiers": (list, str), "manufacturer": str,
    "model": str, "model_id": str, "name": str, "serial_number": str, "suggested_area": str, "sw_version": str, "via_device": str,
}
ORIGIN_KEYS = {"name": str, "sw_version": str, "support_url": str}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
AVAILABILITY_MODES = {"all", "any", "latest"}


def check_documented_schema(config: dict) -> None:
    assert REQUIRED <= config.keys()
    for key, value in config.items():
        assert key in SENSOR_KEYS, f"{key} is not a documented MQTT sensor option"
        assert isinstance(value, SENSOR_KEYS[key]) and not isinstance(value, bool), f"{key}: {type(value).__name__}"
    assert "availability_topic" not in config, "availability and availability_topic must not be used together"
    assert config["qos"] in (0, 1, 2)
    assert config["state_class"] in STATE_CLASSES
    assert config.get("availability_mode", "latest") in AVAILABILITY_MODES
    assert re.fullmatch(r"mdi:[a-z0-9-]+", config["icon"])
    for entry in config["availability"]:
        assert "topic" in entry and entry.keys() <= AVAILABILITY_KEYS.keys()
        assert all(isinstance(v, AVAILABILITY_KEYS[k]) for k, v in entry.items())
    assert config["device"].keys() <= DEVICE_KEYS.keys()
    assert all(isinstance(v, DEVICE_KEYS[k]) for k, v in config["device"].items())
    # integrations/sensor.mqtt § device: "Only works when unique_id is set"; § origin: name is required
    assert config["device"]["identifiers"] and config["unique_id"]
    assert "name" in config["origin"] and config["origin"].keys() <= ORIGIN_KEYS.keys()


def render(template: str, payload: bytes) -> str:
    """As Home Assistant does: `value` is the payload text, `value_json` the parsed JSON, a sandbox that
    forbids mutating calls."""
    env = jinja2_sandbox.ImmutableSandboxedEnvironment()
    return env.from_string(template).render(value=payload.decode(), value_json=json.loads(payload))


def config_of(messages: list[tuple[str, bytes]]) -> tuple[str, dict]:
    assert len(messages) == 1
    topic, payload = messages[0]
    return topic, json.loads(payload)


def test_heart_rate_sensor_follows_the_documented_schema():
    topic, config = config_of(discovery_messages("ppg", "S1", "ppg-student@1.1", "0.1.0"))
    check_documented_schema(config)
    parts = DOCUMENTED_TOPIC.match(topic)
    assert parts and parts["prefix"] == "homeassistant" and parts["node"] == "ppg"
    assert config["unit_of_measurement"] == "bpm" and config["state_class"] == "measurement"
    assert config["state_topic"] == config["json_attributes_topic"] == hr_topic("ppg", "S1")
    assert config["availability"] == [{"topic": status_topic("ppg", "S1"), "payload_available": "online", "payload_not_available": "offline"}]
    assert "availability_mode" not in config  # one topic: the documented default (latest) is right
    assert config["device"] == {
        "identifiers": ["ppg_stream_ppg_S1"], "name": "S1", "model": "ppg-student@1.1",
        "manufacturer": "ppg-stream", "sw_version": "0.1.0",
    }
    assert config["unique_id"] == unique_id("ppg", "S1") and config["origin"]["name"] == "ppg-stream"


def test_the_sensor_expires_after_ten_hops_without_a_heart_rate():
    """A publisher that stalls while connected keeps its `online` status: without expire_after Home Assistant
    showed its last heart rate forever."""
    _, config = config_of(discovery_messages("ppg", "S1", "ppg-student@1.3", "0.1.0"))
    assert config["expire_after"] == EXPIRE_AFTER_HOPS * 2 == 20  # the contract's 2 s hop
    _, config = config_of(discovery_messages("ppg", "S1", "m@1", "0.1.0", hop_s=0.25))
    assert config["expire_after"] == 3  # whole seconds, rounded up
    assert config_of(discovery_messages("ppg", "S1", "m@1", "0.1.0", hop_s=0.01))[1]["expire_after"] == 1


def test_templates_read_the_published_hr_messages():
    model_msg = json.dumps(hr_message("S1", 12, 32.0, "2026-11-24T23:40:05.387Z", 87.14, 0.8543, 0.256, False, "ppg-student@1.1")).encode()
    device_msg = json.dumps(device_hr_message("ble-c0ffee", 41, 41.02, "2026-11-25T05:10:44.120Z", 72, (0.833,), True, None)).encode()
    _, config = config_of(discovery_messages("ppg", "S1", "ppg-student@1.1", "0.1.0"))

    assert render(config["value_template"], model_msg) == "87.1"
    assert json.loads(render(config["json_attributes_template"], model_msg)) == {"confidence": 0.854, "late": False, "model": "ppg-student@1.1", "reliable": True}
    # a wearable's own HR has no confidence or late flag: the attributes say so instead of failing
    assert render(config["value_template"], device_msg) == "72"
    assert json.loads(render(config["json_attributes_template"], device_msg)) == {"confidence": None, "late": None, "model": "device", "reliable": True}
    # no reliable estimate (confidence below --min-confidence): no number, which Home Assistant shows as unknown
    unsure_msg = json.dumps(hr_message("S1", 13, 34.0, "2026-11-24T23:40:07.387Z", 40.2, 0.31, 0.25, False, "ppg-student@1.1", False)).encode()
    assert render(config["value_template"], unsure_msg) == "None"
    assert json.loads(render(config["json_attributes_template"], unsure_msg))["reliable"] is False


def test_service_status_makes_both_topics_required():
    _, config = config_of(discovery_messages("ppg", "S1", "m@1", "0.1.0", service_status_topic="ppg/_service/status"))
    check_documented_schema(config)
    assert [a["topic"] for a in config["availability"]] == ["ppg/S1/status", "ppg/_service/status"]
    assert config["availability_mode"] == "all"


def test_ids_are_stable_documented_characters_and_distinct():
    a = discovery_messages("home/ppg", "wrist.1", "m@1", "1")
    assert a == discovery_messages("home/ppg", "wrist.1", "m@1", "1")
    topics = {discovery_topic("home/ppg", d) for d in ("wrist.1", "wrist:1", "wrist_1", "wrist-1")}
    assert len(topics) == 4 and all(DOCUMENTED_TOPIC.match(t) for t in topics)
    assert len({unique_id("home/ppg", d) for d in ("wrist.1", "wrist:1", "wrist_1")}) == 3
    assert unique_id("lab", "S1") != unique_id("ppg", "S1")  # two deployments never share a sensor
    assert ha_id("S1") == "S1" and re.fullmatch(r"[a-zA-Z0-9_-]+", ha_id("äö/ü"))


def test_custom_discovery_prefix_and_removal_topic():
    topic, _ = config_of(discovery_messages("ppg", "S1", "m@1", "1", discovery_prefix="ha"))
    assert topic == "ha/sensor/ppg/S1_heart_rate/config"
    assert removal_messages("ppg", "S1", discovery_prefix="ha") == [(topic, b"")]


@pytest.mark.parametrize("bad", [{"prefix": "pp#g"}, {"prefix": ""}, {"device": "a/b"}, {"device": "+"}, {"discovery_prefix": "ha/#"}])
def test_bad_names_are_refused(bad):
    args = {"prefix": "ppg", "device": "S1", "discovery_prefix": "homeassistant", **bad}
    with pytest.raises(ValueError):
        discovery_messages(args["prefix"], args["device"], "m@1", "1", discovery_prefix=args["discovery_prefix"])


def test_version_is_the_installed_package():
    assert re.match(r"\d+\.\d+", ppg_stream_version())


async def _retained(host: str, port: int, pattern: str, settle_s: float = 0.5) -> dict[str, tuple[bytes, bool]]:
    """What a fresh subscriber gets for `pattern` (the retained messages), with their retain flags."""
    found: dict[str, tuple[bytes, bool]] = {}
    async with aiomqtt.Client(host, port, identifier=f"ha-reader-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(pattern, qos=1)
        try:
            async with asyncio.timeout(settle_s):
                async for message in client.messages:
                    found[message.topic.value] = (bytes(message.payload), message.retain)
        except TimeoutError:
            pass
    return found


@pytest.mark.network
async def test_retained_configs_through_mosquitto(mosquitto_1883):
    host, port = mosquitto_1883
    discovery_prefix = f"test-ha-{uuid.uuid4().hex[:10]}"
    devices = ["S1", "ble-c0ffee123456", "wrist.7"]
    sent = {t: p for d in devices for t, p in discovery_messages("ppg", d, "ppg-student@1.1", "0.1.0", discovery_prefix)}
    async with aiomqtt.Client(host, port) as client:
        for topic, payload in sent.items():
            await client.publish(topic, payload, qos=1, retain=True)

    got = await _retained(host, port, f"{discovery_prefix}/#")
    assert got.keys() == sent.keys()
    for topic, (payload, retained) in got.items():
        assert retained and payload == sent[topic]
        config = json.loads(payload)
        check_documented_schema(config)
        assert DOCUMENTED_TOPIC.match(topic)["prefix"] == discovery_prefix

    async with aiomqtt.Client(host, port) as client:
        for d in devices:
            for topic, payload in removal_messages("ppg", d, discovery_prefix):
                await client.publish(topic, payload, qos=1, retain=True)
    assert await _retained(host, port, f"{discovery_prefix}/#") == {}
