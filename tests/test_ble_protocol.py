"""The BLE byte parsers: golden frames worked out by hand from the protocol facts and round trips through an
independent encoder (the SDK's own vectors are in test_ble_sdk_vectors.py, fuzzing in test_ble_fuzz.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppg_stream.stream.sources.ble.errors import BleParseError, DeviceError
from ppg_stream.stream.sources.ble.heart_rate import parse_heart_rate
from ppg_stream.stream.sources.ble.pmd_control import (
    Measurement,
    Setting,
    get_settings_command,
    parse_control_response,
    parse_features,
    parse_settings,
    raise_for_error,
    start_command,
    stop_command,
)
from ppg_stream.stream.sources.ble.pmd_frames import decode_frame
from ppg_stream.stream.sources.ble.pmd_session import choose_settings
from tests.pmd_encode import encode_compressed, encode_raw

TS = bytes.fromhex("08 07 06 05 04 03 02 01")  # uint64 LE 0x0102030405060708


# --- control point ---------------------------------------------------------------------------------
def test_features_bitmask():
    # 0x0F header; 0b0000_1111 = ECG, PPG, ACC, PPI (Verity Sense)
    assert parse_features(bytes([0x0F, 0x0F])) == {Measurement.ECG, Measurement.PPG, Measurement.ACC, Measurement.PPI}
    # 0b0110_0100 = ACC, GYRO, MAG
    assert parse_features(bytes([0x0F, 0x64])) == {Measurement.ACC, Measurement.GYRO, Measurement.MAG}


@pytest.mark.parametrize("raw", [b"", b"\x0f", b"\xf0\x0f"])
def test_features_malformed(raw):
    with pytest.raises(BleParseError, match="PMD features"):
        parse_features(raw)


def test_commands_match_the_documented_bytes():
    # the Verity Sense example: PPG at 55 Hz, 22-bit, 4 channels
    cmd = start_command(Measurement.PPG, {Setting.SAMPLE_RATE: 55, Setting.RESOLUTION: 22, Setting.CHANNELS: 4})
    assert cmd == bytes.fromhex("02 01 00 01 37 00 01 01 16 00 04 01 04")
    assert get_settings_command(Measurement.ACC) == bytes([0x01, 0x02])
    assert stop_command(Measurement.PPG) == bytes([0x03, 0x01])


def test_settings_response_and_factor():
    # get-settings answer for ACC: rate 52; resolution 16; ranges 2,4,8 g; channels 3
    r = parse_control_response(bytes.fromhex("f0 01 02 00 00 00 01 34 00 01 01 10 00 02 03 02 00 04 00 08 00 04 01 03"))
    assert (r.op, r.measurement, r.error, r.more_frames, r.ok) == (1, 2, 0, False, True)
    assert parse_settings(r.params) == {Setting.SAMPLE_RATE: [52.0], Setting.RESOLUTION: [16.0], Setting.RANGE: [2.0, 4.0, 8.0], Setting.CHANNELS: [3.0]}
    # a start answer carrying FACTOR 1.0 as float32 LE
    start = parse_control_response(bytes.fromhex("f0 02 01 00 00 05 01 00 00 80 3f"))
    assert parse_settings(start.params) == {Setting.FACTOR: [1.0]}
    assert parse_settings(bytes.fromhex("05 01 00 00 00 3f"))[Setting.FACTOR] == [0.5]


def test_choose_settings_prefers_55hz_8g_and_all_channels():
    ppg = {Setting.SAMPLE_RATE: [28.0, 44.0, 55.0, 135.0, 176.0], Setting.RESOLUTION: [22.0], Setting.CHANNELS: [4.0]}
    assert choose_settings(ppg) == {Setting.SAMPLE_RATE: 55, Setting.RESOLUTION: 22, Setting.CHANNELS: 4}
    acc = {Setting.SAMPLE_RATE: [26.0, 52.0], Setting.RANGE: [2.0, 4.0, 8.0, 16.0]}
    assert choose_settings(acc) == {Setting.SAMPLE_RATE: 52, Setting.RANGE: 8}
    assert choose_settings({Setting.SAMPLE_RATE: [25.0, 30.0], Setting.RANGE: [2.0, 4.0]}) == {Setting.SAMPLE_RATE: 30, Setting.RANGE: 4}


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (10, "MTU is too small for streaming \\(Polar devices need 232 bytes, the OH1 140\\)"),
        (13, "on its charger"),
        (14, "storage is full"),
        (3, "does not support this measurement"),
        (99, "unknown error code 99"),
    ],
)
def test_error_codes_become_one_clear_line(code, words):
    response = parse_control_response(bytes([0xF0, 0x02, 0x01, code, 0x00]))
    with pytest.raises(DeviceError, match=words) as e:
        raise_for_error(response)
    assert "start PPG" in str(e.value) and "\n" not in str(e.value) and e.value.code == code


def test_settings_with_unknown_id_or_truncated():
    # newer firmware adds ids of unknown size: what came before is kept, the rest ignored
    assert parse_settings(bytes([0x00, 0x01, 0x37, 0x00, 9, 1, 0])) == {Setting.SAMPLE_RATE: [55.0]}
    with pytest.raises(BleParseError, match="needs 4 bytes"):
        parse_settings(bytes([0, 2, 0x37, 0x00]))


# --- data frames -----------------------------------------------------------------------------------
def test_raw_ppg_frame():
    # two samples × (ch0, ch1, ch2, ambient), 24-bit signed LE
    payload = bytes.fromhex(
        "01 00 00  ff ff ff  56 34 12  00 00 80"  # 1, -1, 0x123456, -0x800000
        "ff ff 7f  02 00 00  fe ff ff  00 00 00"  # 0x7fffff, 2, -2, 0
    )
    frame = decode_frame(bytes([0x01]) + TS + bytes([0x00]) + payload)
    assert frame.measurement == Measurement.PPG and frame.frame_type == 0 and not frame.compressed
    assert frame.timestamp_ns == 0x0102030405060708
    assert frame.samples.tolist() == [[1, -1, 0x123456, -0x800000], [0x7FFFFF, 2, -2, 0]]


def test_raw_acc_frame():
    payload = bytes.fromhex("e8 03 18 fc 00 00  00 80 ff 7f 01 00")  # (1000, -1000, 0), (-32768, 32767, 1) mG
    frame = decode_frame(bytes([0x02]) + TS + bytes([0x01]) + payload)
    assert frame.samples.tolist() == [[1000, -1000, 0], [-32768, 32767, 1]]


def test_compressed_ppg_frame_with_three_delta_widths_and_negative_deltas():
    payload = bytes.fromhex(
        "64 00 00  fb ff ff  00 00 00  07 00 00"  # reference (100, -5, 0, 7)
        # 3-bit deltas, 1 sample: (+1, -1, +3, -4) = 001 111 011 100, LSB first -> 0x08f9
        "03 01  f9 08"
        # 0-bit block "of 5 samples": no samples at all, as Polar's SDK reads it (5 × 4 × 0 bits)
        "00 05"
        # 7-bit deltas, 2 samples: (-64, 63, 0, -1), (10, -10, 1, 0)
        "07 02  c0 1f e0 af b0 07 00"
    )
    frame = decode_frame(bytes([0x01]) + TS + bytes([0x80]) + payload)
    assert frame.compressed and frame.frame_type == 0
    assert frame.samples.tolist() == [
        [100, -5, 0, 7],
        [101, -6, 3, 3],
        [37, 57, 3, 2],
        [47, 47, 4, 2],
    ]


def test_compressed_acc_frame():
    # reference (1000, -1000, 0); 5-bit deltas for 2 samples: (15, -16, 1), (-1, 0, 2)
    payload = bytes.fromhex("e8 03 18 fc 00 00  05 02  0f 86 0f 04")
    frame = decode_frame(bytes([0x02]) + TS + bytes([0x81]) + payload)
    assert frame.samples.tolist() == [[1000, -1000, 0], [1015, -1016, 1], [1014, -1016, 3]]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"\x01" + TS, "header alone"),
        (b"\x08" + TS + b"\x00" + b"\x00" * 12, "measurement 8 frame type 0 \\(raw\\) is not one Polar's SDK decodes"),
        (b"\x01" + TS + b"\x03" + b"\x00" * 12, "PPG frame type 3 \\(raw\\)"),
        (b"\x01" + TS + b"\x00" + b"\x00" * 11, "not a whole number"),
        (b"\x01" + TS + b"\x00", "not a whole number"),
        (b"\x01" + TS + b"\x80" + b"\x00" * 5, "shorter than its reference"),
        (b"\x01" + TS + b"\x80" + b"\x00" * 12 + b"\x03", "block header truncated"),
        (b"\x01" + TS + b"\x80" + b"\x00" * 12 + b"\x08\x05\x00", "needs 20 bytes"),
        (b"\x01" + TS + b"\x80" + b"\x00" * 12 + b"\x40\x01", "delta width 64"),
    ],
)
def test_malformed_frames_say_what_is_wrong(raw, words):
    with pytest.raises(BleParseError, match=words):
        decode_frame(raw)


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 40),
    ppg=st.booleans(),
    block=st.integers(1, 12),
    min_bits=st.integers(0, 24),
)
@pytest.mark.slow
def test_round_trip_through_an_independent_encoder(data, n, ppg, block, min_bits):
    channels, width, measurement, frame_type = (4, 3, 1, 0) if ppg else (3, 2, 2, 1)
    lo, hi = -(1 << (8 * width - 2)), (1 << (8 * width - 2)) - 1  # deltas of these stay within 8·width bits
    samples = data.draw(st.lists(st.lists(st.integers(lo, hi), min_size=channels, max_size=channels), min_size=n, max_size=n))
    ts = data.draw(st.integers(0, 2**64 - 1))
    for frame_bytes in (encode_raw(measurement, frame_type, ts, samples, width),
                        encode_compressed(measurement, frame_type, ts, samples, width, block=block, min_bits=min_bits)):
        frame = decode_frame(frame_bytes)
        assert frame.timestamp_ns == ts
        np.testing.assert_array_equal(frame.samples, np.array(samples).reshape(n, channels))


# --- Heart Rate Service ----------------------------------------------------------------------------
def test_heart_rate_uint8_without_extras():
    m = parse_heart_rate(bytes([0x00, 72]))
    assert (m.bpm, m.contact, m.energy_kj, m.rr_s) == (72, None, None, ())


def test_heart_rate_uint16_contact_energy_and_several_rr():
    # flags 0b0001_1111: uint16 HR, contact detected + supported, energy, RR
    raw = bytes([0x1F]) + (300).to_bytes(2, "little") + (1234).to_bytes(2, "little") + bytes.fromhex("00 04 00 02 33 03")
    m = parse_heart_rate(raw)
    assert m.bpm == 300 and m.contact is True and m.energy_kj == 1234
    assert m.rr_s == (1.0, 0.5, 0x0333 / 1024)  # 1024/1024 s, 512/1024 s, 819/1024 s


def test_heart_rate_contact_bit_needs_the_supported_bit():
    assert parse_heart_rate(bytes([0x04, 60])).contact is False  # supported, not detected
    assert parse_heart_rate(bytes([0x02, 60])).contact is None  # "detected" without "supported" means nothing


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"", "empty"), (bytes([0x01, 60]), "2-byte HR"), (bytes([0x08, 60, 1]), "energy"), (bytes([0x10, 60, 1, 2, 3]), "3 bytes of RR")],
)
def test_heart_rate_malformed(raw, words):
    with pytest.raises(BleParseError, match=words):
        parse_heart_rate(raw)
