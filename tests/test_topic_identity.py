"""Device ids map one to one onto topic levels, stay readable, and every topic fits MQTT's limit."""

import asyncio
import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppg_stream.stream.core.message import (
    MAX_DEVICE_ID_BYTES,
    MAX_PREFIX_BYTES,
    MAX_TOPIC_BYTES,
    TOPIC_LEAVES,
    DeviceIdError,
    device_id,
    is_device_id,
    topic_prefix_problem,
)
from tests.conftest import Collector, start_cli

ids = st.text(min_size=1, max_size=40)  # any code point, surrogates included


def _decoded(level: str) -> str:
    return re.sub(rb"%([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), level.encode()).decode()


def test_the_ids_the_issue_found_colliding_are_distinct_and_readable():
    levels = [device_id(x) for x in ("#", "+", " ", "victim/", "+victim#", "victim")]
    assert levels == ["%23", "%2B", "%20", "victim%2F", "%2Bvictim%23", "victim"]
    assert device_id("pätïent-❤-日本") == "pätïent-❤-日本"  # valid UTF-8 stays as it is
    assert device_id("S1") == "S1" and device_id("ble-a09e1a123456") == "ble-a09e1a123456"


@pytest.mark.parametrize("bad", ["", "\udcff", "x" * (MAX_DEVICE_ID_BYTES + 1), "/" * (MAX_DEVICE_ID_BYTES // 3 + 1)])
def test_ids_that_cannot_name_a_level_are_refused(bad):
    with pytest.raises(DeviceIdError):
        device_id(bad)


@settings(max_examples=300, deadline=None)
@given(ids)
def test_a_level_is_safe_idempotent_and_decodes_back_to_the_id(text):
    try:
        level = device_id(text)
    except DeviceIdError:
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text) or len(text.encode("utf-8", "surrogatepass")) > MAX_DEVICE_ID_BYTES // 3
        return
    assert device_id(level) == level and is_device_id(level)
    assert not any(c in "/+#" or c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in level)
    assert len(level.encode()) <= MAX_DEVICE_ID_BYTES
    if "%" not in text:
        assert _decoded(level) == text  # nothing lost: the id comes back from its level


@settings(max_examples=300, deadline=None)
@given(ids, ids)
def test_distinct_ids_get_distinct_levels(a, b):
    """Ids are read as %-encoded text, so `a%2Fb` and `a/b` name one device; any other two differ."""
    try:
        same = device_id(a) == device_id(b)
    except DeviceIdError:
        return
    if "%" not in a + b:
        assert same == (a == b)
    else:
        assert same == (_decoded(device_id(a)) == _decoded(device_id(b)))


@pytest.mark.parametrize("level, ok", [("S1", True), ("a%2Fb", True), ("pätïent", True), ("a/b", False), ("a b", False),
                                       ("a%2fb", False), ("50%off", False), ("", False), ("+", False), ("%41", False)])
def test_a_level_from_a_topic_is_accepted_only_as_device_id_makes_it(level, ok):
    """`serve` takes device ids from `<prefix>/<device>/raw`: a gateway publishes to device_id(its id)."""
    assert is_device_id(level) is ok


@pytest.mark.parametrize(
    "prefix, problem",
    [
        ("ppg", None),
        ("home/wrist", None),
        ("", "must be non-empty"),
        ("//", "must be non-empty"),
        ("a/#", "wildcards"),
        ("a+b", "wildcards"),
        ("$SYS/x", "must not start with '$'"),
        ("a\x00b", "without control characters"),
        ("a\udcffb", "without control characters"),
        ("x" * (MAX_PREFIX_BYTES + 1), "at most 61,431"),
        ("é" * (MAX_PREFIX_BYTES // 2 + 1), "at most 61,431"),
    ],
)
def test_topic_prefixes(prefix, problem):
    found = topic_prefix_problem(prefix)
    assert found is None if problem is None else problem in found


def test_the_longest_prefix_and_device_still_make_legal_topics():
    prefix, device = "p" * MAX_PREFIX_BYTES, device_id("d" * MAX_DEVICE_ID_BYTES)
    assert topic_prefix_problem(prefix) is None
    assert max(len(f"{prefix}/{device}/{leaf}".encode()) for leaf in TOPIC_LEAVES) == MAX_TOPIC_BYTES


@pytest.mark.slow
@pytest.mark.network
async def test_an_id_with_wildcards_and_non_ascii_is_one_level_on_the_broker(mosquitto_1883, synthetic_60s):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    collector = await Collector(*mosquitto_1883, f"{prefix}/+/hr").start()  # one level for the device
    try:
        proc = await start_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--topic-prefix", prefix,
                               "--device-id", "+victim#/ü 1")
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, stderr.decode()
        await collector.wait_for(synthetic_60s.n_windows)
    finally:
        await collector.stop()
    assert set(collector.raw) == {f"{prefix}/%2Bvictim%23%2Fü%201/hr"}
    assert {m["device"] for m in collector.messages} == {"%2Bvictim%23%2Fü%201"}
    assert len(collector.messages) == synthetic_60s.n_windows
