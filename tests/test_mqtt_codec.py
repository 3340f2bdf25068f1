"""The MQTT 3.1.1 codec byte for byte (vectors from the specification's rules), and the decoder under any
chunking of the stream."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppg_stream.stream.mqtt.codec import (
    CONNACK,
    PUBACK,
    PUBLISH,
    MqttProtocolError,
    PacketDecoder,
    Will,
    encode_connect,
    encode_length,
    encode_puback,
    encode_publish,
    encode_string,
    encode_subscribe,
    parse_publish,
)


@pytest.mark.parametrize(
    "n, encoded",
    [  # the specification's table of remaining-length boundaries (MQTT 3.1.1 §2.2.3)
        (0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"), (2_097_152, b"\x80\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_boundaries(n, encoded):
    assert encode_length(n) == encoded
    decoder = PacketDecoder(max_packet_bytes=1 << 30)
    if n:
        assert decoder.feed(bytes((PUBACK,)) + encoded) == []  # header complete, body not yet: nothing comes out early
    if n <= 16_384:  # the decoder reads the same length back
        body = bytes(n)
        got = decoder.feed(body) if n else decoder.feed(bytes((PUBACK,)) + encoded)
        assert [(k, len(b)) for k, _, b in got] == [(PUBACK, n)]


def test_length_beyond_the_protocol_is_refused():
    with pytest.raises(ValueError):
        encode_length(268_435_456)
    with pytest.raises(MqttProtocolError):
        PacketDecoder().feed(b"\x30\xff\xff\xff\xff\x01")


def test_connect_with_will_and_credentials():
    packet = encode_connect("c1", 30, clean_session=True, will=Will("p/d/status", b"offline"), username="u", password="pw")
    body = (b"\x00\x04MQTT\x04"  # protocol name and level 4
            + bytes((0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02,))  # user, password, will retain, will QoS 1, will, clean
            + b"\x00\x1e"  # keepalive 30
            + b"\x00\x02c1" + b"\x00\x0ap/d/status" + b"\x00\x07offline" + b"\x00\x01u" + b"\x00\x02pw")
    assert packet == b"\x10" + bytes((len(body),)) + body


def test_connect_anonymous_without_will():
    assert encode_connect("x", 60, clean_session=True) == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x"


def test_publish_qos1_retained_and_qos0():
    topic = encode_string("a/b")
    assert encode_publish(topic, b"hi", qos=1, packet_id=10, retain=True) == b"\x33\x09\x00\x03a/b\x00\x0ahi"
    assert encode_publish(topic, b"hi", qos=0) == b"\x30\x07\x00\x03a/bhi"
    assert encode_puback(0x1234) == b"\x40\x02\x12\x34"
    assert encode_subscribe(1, "p/+/raw", 1) == b"\x82\x0c\x00\x01\x00\x07p/+/raw\x01"


def test_strings_longer_than_mqtt_allows_are_refused():
    with pytest.raises(ValueError, match="65535"):
        encode_string("x" * 70_000)


def test_parse_publish_round_trip_and_malformed():
    packet = encode_publish(encode_string("p/dev-1/raw"), b"\x00\x01\x02", qos=1, packet_id=7)
    [(kind, flags, body)] = PacketDecoder().feed(packet)
    assert kind == PUBLISH
    message = parse_publish(flags, body)
    assert (message.topic, message.payload, message.qos, message.packet_id, message.retain) == ("p/dev-1/raw", b"\x00\x01\x02", 1, 7, False)
    for bad_flags, bad_body in [(0x06, body), (0x02, b"\x00"), (0x02, b"\x00\x09abc"), (0x00, b"\x00\x02\xff\xfe")]:
        with pytest.raises(MqttProtocolError):
            parse_publish(bad_flags, bad_body)


def _stream():
    return b"".join([
        b"\x20\x02\x00\x00",  # CONNACK accepted
        encode_publish(encode_string("p/a/raw"), bytes(300), qos=1, packet_id=1),  # 2-byte remaining length
        encode_puback(2),
        encode_publish(encode_string("p/b/raw"), b"x", qos=0),
        b"\xd0\x00",  # PINGRESP
    ])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(_stream())), max_size=12))
def test_decoder_gives_the_same_packets_however_the_stream_is_cut(cuts):
    data = _stream()
    expected = PacketDecoder().feed(data)
    assert [k for k, _, _ in expected] == [CONNACK, PUBLISH, PUBACK, PUBLISH, 0xD0]
    decoder, got, start = PacketDecoder(), [], 0
    for cut in sorted(cuts) + [len(data)]:
        got += decoder.feed(data[start:cut])
        start = cut
    assert [(k, f, bytes(b)) for k, f, b in got] == [(k, f, bytes(b)) for k, f, b in expected]


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=9000))
def test_oversized_packet_is_skipped_but_its_packet_id_kept(step):
    big = encode_publish(encode_string("p/big/raw"), bytes(5000), qos=1, packet_id=99)
    small = encode_publish(encode_string("p/ok/raw"), b"ok", qos=1, packet_id=100)
    data = big + small
    decoder, got = PacketDecoder(max_packet_bytes=1000), []
    for i in range(0, len(data), step):
        got += decoder.feed(data[i:i + step])
    assert len(got) == 2
    kind, first, head = got[0]
    assert kind == PacketDecoder.OVERSIZED and first & 0xF0 == PUBLISH
    assert head[:2] == b"\x00\x09" and head[2:11] == b"p/big/raw" and head[11:13] == b"\x00\x63"  # topic, packet id 99
    assert parse_publish(got[1][1], got[1][2]).payload == b"ok"
