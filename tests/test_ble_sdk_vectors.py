"""Golden tests: every byte vector of Polar SDK's own tests (PpgDataTest, AccDataTest, BlePmdClientParsersTest,
PmdTimeStampUtilsTest, BlePmdClientControlPointResponseTest, BlePmdClientTest, PmdSettingTest, BleHrClientTest;
Android and iOS), decoded by ppg-stream to the values the SDK's tests expect.

Where the two SDKs disagree, Android is followed and the test says so. Where ppg-stream deliberately differs
(a malformed frame is refused whole instead of half-decoded, as iOS does), the test asserts our behaviour and
says why. One vector is not used: the old Android `pmd/PpgDataTest.kt` raw type 4 case describes a gain layout
the SDK has since replaced (its current `model/PpgDataTest.kt` and decoder are what we follow); that old file's
other vectors are the same bytes as the current ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from ppg_stream.stream.sources.ble.errors import BleParseError
from ppg_stream.stream.sources.ble.heart_rate import parse_heart_rate
from ppg_stream.stream.sources.ble.pmd_control import (
    MeasurementStopped,
    Measurement,
    Op,
    Setting,
    is_control_response,
    parse_control_response,
    parse_device_message,
    parse_settings,
    start_command,
)
from ppg_stream.stream.sources.ble.pmd_delta import decode_delta, unpack_signed_bits
from ppg_stream.stream.sources.ble.pmd_frames import decode_frame, parse_frame_header
from ppg_stream.stream.sources.ble.pmd_time import FrameTiming, sdk_sample_times
from tests.sdk_vectors import (
    ACC_DELTA_0,
    ACC_DELTA_0_SHORT,
    ACC_DELTA_1,
    ACC_RAW_1,
    DELTA_16_MULTIPLE,
    DELTA_32,
    DELTA_32_REAL_VECTOR_1,
    PPG_DELTA_0,
    PPG_DELTA_7,
    PPG_DELTA_8,
    PPG_DELTA_10_FRAME,
    PPG_RAW_0,
    PPG_RAW_4,
    PPG_RAW_6,
    PPG_RAW_9,
    SETTINGS_RANGE_MILLIUNIT,
    SETTINGS_WITH_RANGE,
    TS_2E9,
    hexbytes,
)

PPG, ACC = 1, 2


def frame(measurement: int, frame_type: int, payload: bytes, ts: bytes = TS_2E9) -> bytes:
    return bytes([measurement]) + ts + bytes([frame_type]) + payload


def frame_times(data: bytes, previous_ns: int, rate_hz: float, factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A frame's samples and their sensor times, as the SDK's PmdDataFrame + parser pair computes them."""
    f = decode_frame(data, factor)
    return f.samples, sdk_sample_times(previous_ns, f.timestamp_ns, len(f.samples), rate_hz)


def f32(x: float) -> np.float32:
    return np.float32(x)


# --- PpgDataTest ------------------------------------------------------------------------------------
def test_ppg_raw_type_0():
    samples, t = frame_times(frame(PPG, 0x00, PPG_RAW_0), previous_ns=100, rate_hz=55)
    assert samples.tolist() == [[197121, 394500, 8388607, 0], [-1, -1052913, -8388608, -1052913]]
    assert t[-1] == 2_000_000_000


def test_ppg_raw_type_0_is_never_scaled_by_factor():
    samples, _ = frame_times(frame(PPG, 0x00, PPG_RAW_0), previous_ns=100, rate_hz=55, factor=0.5)
    assert samples[0].tolist() == [197121, 394500, 8388607, 0]


def test_ppg_raw_type_4_integration_counts_and_gains():
    f = decode_frame(frame(PPG, 0x04, PPG_RAW_4))
    assert not f.layout.signal and f.samples.shape == (1, 36)
    num_int, gain1, gain2 = f.samples[0, :12], f.samples[0, 12:24], f.samples[0, 24:]
    assert (num_int[0], num_int[1], num_int[11]) == (2, 0x7F, 0xFF)
    assert (gain1[0], gain1[1], gain1[10], gain1[11]) == (1, 7, 1, 7)
    assert (gain2[0], gain2[1], gain2[10], gain2[11]) == (7, 0, 2, 0)
    assert sdk_sample_times(100, f.timestamp_ns, len(f.samples), 0)[-1] == 2_000_000_000


def test_ppg_raw_type_5_operation_mode():
    f = decode_frame(frame(PPG, 0x05, hexbytes("FF FF FF FF")))
    assert f.samples.tolist() == [[0xFFFFFFFF]] and not f.layout.signal


def test_ppg_raw_type_6_sport_id_ios():
    f = decode_frame(frame(PPG, 0x06, PPG_RAW_6))
    assert f.samples.tolist() == [[27]] and f.timestamp_ns == 2_000_000_000


def test_ppg_raw_type_9_integration_counts_and_gains():
    f = decode_frame(frame(PPG, 0x09, PPG_RAW_9))
    num_int, gain1, gain2 = f.samples[0, :12], f.samples[0, 12:24], f.samples[0, 24:]
    assert (num_int[0], num_int[1], num_int[11]) == (6, 6, 6)
    assert (gain1[0], gain2[0], gain1[1], gain2[1]) == (7, 0, 0, 0)
    assert (gain1[10], gain2[10], gain1[11], gain2[11]) == (0, 0, 7, 7)


def test_ppg_delta_type_0():
    samples, t = frame_times(frame(PPG, 0x80, PPG_DELTA_0), previous_ns=100, rate_hz=0)
    assert samples.shape == (1 + 41, 4)
    assert samples[0].tolist() == [11564, 30658, -11565, -30659]
    assert samples[1].tolist() == [11564 + 178, 30658 - 68, -11565 - 178, -30659 + 68]
    assert t[-1] == 2_000_000_000 and len(t) == 42


def test_ppg_delta_type_0_is_always_scaled_by_factor():
    # the SDK: (sample.toFloat() * factor).toInt() on every channel, ambient included
    samples, _ = frame_times(frame(PPG, 0x80, PPG_DELTA_0), previous_ns=100, rate_hz=0, factor=1.0)
    scaled, _ = frame_times(frame(PPG, 0x80, PPG_DELTA_0), previous_ns=100, rate_hz=0, factor=0.3)
    expected = np.trunc(samples.astype(np.float32) * f32(0.3)).astype(np.int64)
    np.testing.assert_array_equal(scaled, expected)


def test_ppg_delta_type_7_sixteen_channels_and_status():
    f = decode_frame(frame(PPG, 0x87, PPG_DELTA_7))
    assert f.samples.shape == (2, 17)
    s = f.samples
    assert (s[0, 0], s[0, 1], s[0, 15], s[0, 16] & 0xFFFFFF) == (2141705, 2325642, 65535, 1164328)
    assert (s[1, 0], s[1, 1]) == (2141705 - 377, 2325642 + 748)
    assert f.timestamp_ns == 2_000_000_000


def test_ppg_delta_type_8_twenty_four_channels_and_status():
    f = decode_frame(frame(PPG, 0x88, PPG_DELTA_8))
    s = f.samples
    assert s.shape == (2, 25)
    assert (s[0, 0], s[0, 1], s[0, 2], s[0, 23], s[0, 24] & 0xFFFFFF) == (69635, 135173, -1, 1576969, 16777215)
    assert (s[1, 0], s[1, 1]) == (69635 + 1, 135173 + 1)


@pytest.mark.parametrize(("previous_ns", "first_ns"), [(1000, 112524943566143712), (100, 112524943566142944)])  # Android, iOS
def test_ppg_delta_type_10_green_red_infrared(previous_ns, first_ns):
    samples, t = frame_times(PPG_DELTA_10_FRAME, previous_ns=previous_ns, rate_hz=13)
    assert samples.shape == (7, 21)
    assert samples[0, :8].tolist() == [1575733, 1957739, 1740229, 1761644, 1807181, 1489480, 1577122, 1822779]  # green
    assert samples[0, 8:14].tolist() == [1973554, 1752419, 1569544, 1126395, 256, 1312672]  # red
    assert samples[0, 14:20].tolist() == [1671106, 2230896, 1670551, 2230476, 1312672, -5901481]  # infrared
    assert samples[0, 20] == 249855  # status
    assert int(t[0]) == first_ns


@pytest.mark.parametrize(
    ("frame_type_byte", "words"),
    [(0x0A, "frame type 10 \\(raw\\)"), (0x86, "frame type 6 \\(delta-compressed\\)"), (0x89, "frame type 9 \\(delta-compressed\\)")],
)
def test_ppg_frame_types_the_sdk_refuses(frame_type_byte, words):
    data = bytearray(PPG_DELTA_10_FRAME[:24])
    data[9] = frame_type_byte
    with pytest.raises(BleParseError, match=words):
        decode_frame(bytes(data))


# --- AccDataTest ------------------------------------------------------------------------------------
def test_acc_raw_type_1():
    samples, t = frame_times(frame(ACC, 0x01, ACC_RAW_1), previous_ns=0, rate_hz=52)
    assert len(samples) == len(ACC_RAW_1) // 6
    assert samples[:2].tolist() == [[-9, -1, 999], [-8, -2, 997]]
    assert t[-1] == 2_000_000_000


def test_acc_delta_type_0_has_a_16_bit_reference_and_is_in_g():
    factor = float(f32(2.44e-4))
    samples, t = frame_times(frame(ACC, 0x80, ACC_DELTA_0), previous_ns=100, rate_hz=0, factor=factor)
    raw = [[1905, 27376, -29282], [1905 + 190, 27376 - 105, -29282 - 85]]
    # the Android test's own formula: (factor * sample * 1000f).toInt()
    expected = [[int(f32(factor) * f32(v) * f32(1000)) for v in row] for row in raw]
    assert samples[:2].tolist() == expected
    assert len(samples) == 1 + 56 and np.abs(samples).max() <= 8 * 1000  # ±8 g range, in mG
    assert int(t[0]) == round(100 + (2_000_000_000 - 100) / 57) and t[-1] == 2_000_000_000


def test_acc_delta_type_0_short_frame_is_refused_whole():
    assert decode_delta(ACC_DELTA_0_SHORT[:6], 3, 16)[0, 0] == -163
    with pytest.raises(BleParseError, match="needs 90 bytes"):
        decode_frame(frame(ACC, 0x80, ACC_DELTA_0_SHORT))


@pytest.mark.parametrize(("ts", "expected_ns"), [(101, [100, 101]), (102, [101, 102])])  # Android, iOS
def test_acc_delta_type_1(ts, expected_ns):
    samples, t = frame_times(frame(ACC, 0x81, ACC_DELTA_1, ts.to_bytes(8, "little")), previous_ns=100, rate_hz=0)
    assert samples.tolist() == [[-15, 20, 1008], [-20, 17, 1008]]
    assert t.tolist() == expected_ns  # Android's 100.5 rounds half to even, as Kotlin's round does


def test_acc_delta_type_1_is_scaled_only_when_factor_is_not_one():
    data = frame(ACC, 0x81, ACC_DELTA_1)
    assert decode_frame(data, 1.0).samples.tolist() == [[-15, 20, 1008], [-20, 17, 1008]]
    assert decode_frame(data, 2.0).samples.tolist() == [[-30, 40, 2016], [-40, 34, 2016]]
    assert decode_frame(frame(ACC, 0x01, ACC_RAW_1), 2.0).samples[0].tolist() == [-9, -1, 999]  # raw: never


# --- BlePmdClientParsersTest (delta decoding alone) and the iOS BlePmdClientTest parser cases --------
def test_reference_sample_16_bit_signed():
    assert decode_delta(hexbytes("FF FF 00 00 FF 7F 00 80"), 4, 16).tolist() == [[-1, 0, 32767, -32768]]


def test_reference_sample_32_bit_is_the_bit_pattern():
    ref = decode_delta(hexbytes("00 00 00 00 FF FF FF FF 00 00 00 80"), 3, 32)[0]
    assert [int(v) & 0xFFFFFFFF for v in ref] == [0x00000000, 0xFFFFFFFF, 0x80000000]


def _int32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def test_delta_32_bit_real_vector_wraps_like_kotlin_ints():
    s = decode_delta(DELTA_32_REAL_VECTOR_1, 3, 32)
    assert len(s) == 1 + 6 + 3 + 6 + 3
    assert s[0].tolist() == [0x3F800000, 0x41200000, 0x41A00000]
    assert s[1].tolist() == [0x3F800000 + 0x1A00000, 0x41200000 + 0x0800000, _int32(0x41A00000 + 0xFDECCCCD)]


def test_delta_32_bit():
    s = decode_delta(DELTA_32, 3, 32)
    assert len(s) == 18
    assert s[0].tolist() == [2, _int32(0xE9993219), _int32(0xFFFEDA00)]
    assert s[1].tolist() == [_int32(2 + 0xE9993217), _int32(0xE9993219 + 0x1665A7E7), _int32(0xFFFEDA00 + 0x4606DB38)]


def test_delta_16_bit_nine_blocks():
    s = decode_delta(DELTA_16_MULTIPLE, 3, 16)
    assert len(s) == 1 + 9 + 30 + 10 + 20 + 10 + 30 + 10 + 10 + 10
    assert s[0].tolist() == [-55, 18, 17] and s[1].tolist() == [-54, 18, 18]


@pytest.mark.parametrize(
    ("payload", "channels", "bits", "expected"),
    [
        ("01 00 02 00 03 00", 3, 16, [[1, 2, 3]]),
        ("0A 14 1E", 3, 8, [[10, 20, 30]]),
        ("64 00", 1, 16, [[100]]),
        ("00 01 02 03 04 05 06 07 08 09", 10, 8, [list(range(10))]),
        ("64 00 C8 00 2C 01  08 01 01 02 03", 3, 16, [[100, 200, 300], [101, 202, 303]]),
        ("64 00 C8 00 2C 01  08 02 01 02 03 01 02 03  08 01 01 01 01", 3, 16, [[100, 200, 300], [101, 202, 303], [102, 204, 306], [103, 205, 307]]),
        # a 0-bit block adds no samples (the SDK reads count × 0 bits)
        ("64 00 C8 00 2C 01  00 01", 3, 16, [[100, 200, 300]]),
    ],
)
def test_ios_delta_parser_cases(payload, channels, bits, expected):
    assert decode_delta(hexbytes(payload), channels, bits).tolist() == expected


def test_ios_delta_24_bit_reference_of_two_channels():
    assert decode_delta(hexbytes("01 02 03 04 05 06"), 2, 24).shape == (1, 2)


def test_ios_single_8_bit_delta():
    assert unpack_signed_bits(hexbytes("FF"), 8, 1).tolist() == [-1]


@pytest.mark.parametrize(
    ("payload", "channels", "bits"),
    [
        ("01 02 03 04", 3, 16),  # too short for the reference
        ("", 3, 16),
        ("01 02 08 01", 3, 16),
        ("64 00 C8 00 2C 01  08", 3, 16),  # block header cut after the width
        ("01 02 03", 3, 0),  # no resolution
        ("FF FF FF 08 01 01 01 01", 3, 0),
    ],
)
def test_malformed_delta_payloads_are_refused_whole(payload, channels, bits):
    # iOS returns what it could read (often nothing), Android throws; a frame is refused whole here,
    # so a half-read frame never spreads its few samples over the whole frame's time
    with pytest.raises(BleParseError):
        decode_delta(hexbytes(payload), channels, bits)


# --- PmdTimeStampUtilsTest (Android and iOS, same vectors) ------------------------------------------
def test_timestamps_zero_rate_without_a_previous_frame_is_an_error():
    with pytest.raises(BleParseError, match="sample rate 0 Hz"):
        sdk_sample_times(0, 100_000, 100, 0)


def test_timestamps_before_the_2000_epoch_are_an_error():
    with pytest.raises(BleParseError, match="before 2000-01-01"):
        sdk_sample_times(0, 100_000, 100, 52)


def test_timestamps_from_the_frequency():
    assert sdk_sample_times(0, 10_000_000_000, 10, 1).tolist() == [i * 1_000_000_000 for i in range(1, 11)]
    assert sdk_sample_times(0, 1_000_000_000, 1, 1).tolist() == [1_000_000_000]


def test_timestamps_from_the_previous_frame():
    assert sdk_sample_times(1_000_000_000, 11_000_000_000, 10, 1).tolist() == [i * 1_000_000_000 for i in range(2, 12)]
    assert sdk_sample_times(100, 2_000_000_000, 3, 1).tolist() == [round(666666733.33), round(1333333366.66), 2_000_000_000]
    assert sdk_sample_times(1_000_000_000, 2_000_000_000, 1, 1).tolist() == [2_000_000_000]


# --- BlePmdClientControlPointResponseTest ------------------------------------------------------------
def test_control_point_success_response_for_acc_settings():
    r = parse_control_response(hexbytes("F0 01 02 00 00 FF FF FF"))
    assert (r.op, r.measurement, r.error, r.more_frames, r.params) == (Op.GET_SETTINGS, Measurement.ACC, 0, False, b"\xff\xff\xff")


def test_control_point_error_response_for_mag_settings():
    r = parse_control_response(hexbytes("F0 01 06 07 00"))
    assert (r.op, r.measurement, r.error, r.more_frames, r.params) == (Op.GET_SETTINGS, Measurement.MAG, 7, False, b"")
    assert "resolution" in r.error_message()


# --- BlePmdClientTest (Android and iOS) ---------------------------------------------------------------
def test_control_point_response_and_device_messages_are_told_apart():
    assert is_control_response(hexbytes("F0 01 00 00 00 00 00 00 70 FF"))
    assert parse_device_message(hexbytes("01")) == MeasurementStopped(())  # no types: nothing to close
    stopped = parse_device_message(hexbytes("01 01 02"))
    assert stopped.measurements == (Measurement.PPG, Measurement.ACC) and Measurement.PPI not in stopped.measurements


@pytest.mark.parametrize(
    ("data", "measurement", "timestamp", "frame_type", "compressed", "payload"),
    [
        ("00 38 6C 31 72 A4 D3 23 0D 03 00 12 03 11 10 04 00", 0, 946833049921875000, 3, False, "00 12 03 11 10 04 00"),  # ECG
        ("01 00 00 00 00 00 00 00 70 80 FF", 1, 8070450532247928832, 0, True, "FF"),  # PPG
        ("02 01 00 00 00 00 00 00 00 83 00", 2, 1, 3, True, "00"),  # ACC
        ("03 00 00 00 00 00 00 00 00 00 00", 3, 0, 0, False, "00"),  # PPI
        ("05 01 00 00 00 00 00 00 00 80 EA FF 08 00 0D 00 03 01 DF 00", 5, 1, 0, True, "EA FF 08 00 0D 00 03 01 DF 00"),  # gyro
        ("06 00 00 00 00 00 00 00 70 80 FF", 6, 8070450532247928832, 0, True, "FF"),  # magnetometer
        ("0A 38 6C 31 72 A4 D3 23 0D 00 12", 10, 946833049921875000, 0, False, "12"),  # location
        ("0B 01 00 00 00 00 00 00 00 83 00", 11, 1, 3, True, "00"),  # pressure
        ("0C 01 00 00 00 00 00 00 00 80 FF", 12, 1, 0, True, "FF"),  # temperature
    ],
)
def test_frame_headers(data, measurement, timestamp, frame_type, compressed, payload):
    h = parse_frame_header(hexbytes(data))
    assert (h.measurement, h.timestamp_ns, h.frame_type, h.compressed, h.payload) == (measurement, timestamp, frame_type, compressed, hexbytes(payload))


def test_unsupported_frame_type_is_refused():
    with pytest.raises(BleParseError, match="frame type 127"):
        decode_frame(hexbytes("01 38 6C 31 72 A4 D3 23 0D 7F"))


@pytest.mark.parametrize("data", ["", "02 00 94", "02 00 94 35 77 00 00 00 00 00", "02 00 94 35 77 00 00 00 00 01 01 02 03 04 05"])
def test_short_empty_or_misaligned_frames_are_a_parse_error(data):
    with pytest.raises(BleParseError):
        decode_frame(hexbytes(data))


def test_previous_timestamp_is_kept_per_measurement_and_frame_type_and_reset():
    # BlePmdClientTest "test previous timestamp": ACC frames type 3 at 1, 0x0FFF…F, 3, with a PPI frame between
    acc = FrameTiming(nominal_hz=52)
    ppi = FrameTiming(nominal_hz=52)
    seen = []
    for timing, ts in [(acc, 1), (ppi, 0x0FFFFFFFFFFFFF01), (acc, 0x0FFFFFFFFFFFFFFF), (ppi, 0x0FFFFFFFFFFFFF01), (acc, 3)]:
        seen.append((timing, timing.previous(3), ts))
        timing.remember(3, ts)
    acc_seen = [(prev, ts) for t, prev, ts in seen if t is acc]
    assert acc_seen == [(0, 1), (1, 0x0FFFFFFFFFFFFFFF), (0x0FFFFFFFFFFFFFFF, 3)]
    acc.reset()  # "test previous timestamp reset"
    assert acc.previous(3) == 0


# --- PmdSettingTest ------------------------------------------------------------------------------------
def test_settings_with_range():
    s = parse_settings(SETTINGS_WITH_RANGE)
    assert s == {Setting.SAMPLE_RATE: [52.0], Setting.RESOLUTION: [16.0], Setting.RANGE: [245.0, 500.0, 1000.0, 2000.0], Setting.CHANNELS: [3.0]}
    assert Setting.RANGE_MILLIUNIT not in s and Setting.FACTOR not in s


def test_settings_with_range_milliunit():
    s = parse_settings(SETTINGS_RANGE_MILLIUNIT)
    assert set(s) == {Setting.RANGE_MILLIUNIT, Setting.RESOLUTION}
    assert s[Setting.RANGE_MILLIUNIT] == [-1.0, 255.0]  # Android reads it signed
    assert [int(v) & 0xFFFFFFFF for v in s[Setting.RANGE_MILLIUNIT]] == [0xFFFFFFFF, 0xFF]  # iOS unsigned: same bits
    assert s[Setting.RESOLUTION] == [14.0]
    # iOS: serialized back, one value each, it is 10 bytes (4-byte RANGE_MILLIUNIT, 2-byte RESOLUTION)
    assert len(start_command(Measurement.PPG, {k: int(max(v)) for k, v in s.items()})[2:]) == 10


def test_settings_one_byte_short_is_an_error():
    with pytest.raises(BleParseError):
        parse_settings(SETTINGS_RANGE_MILLIUNIT[:-1])


@pytest.mark.parametrize(("rate", "range_milliunit"), [(0x7FFF, 2**31 - 1), (0xFFFF, 2**32 - 1)])  # Android, iOS
def test_selected_settings_serialize_and_parse_back_without_factor(rate, range_milliunit):
    selected = {Setting.SAMPLE_RATE: rate, Setting.RESOLUTION: 0, Setting.RANGE: 15, Setting.RANGE_MILLIUNIT: range_milliunit, Setting.CHANNELS: 4, Setting.FACTOR: 15}
    command = start_command(Measurement.PPG, selected)
    s = parse_settings(command[2:])
    assert len(s) == 5 and Setting.FACTOR not in s
    assert s[Setting.SAMPLE_RATE] == [rate] and s[Setting.RESOLUTION] == [0] and s[Setting.RANGE] == [15] and s[Setting.CHANNELS] == [4]
    assert int(s[Setting.RANGE_MILLIUNIT][0]) & 0xFFFFFFFF == range_milliunit


# --- BleHrClientTest (Android and iOS) -------------------------------------------------------------------
@pytest.mark.parametrize(("data", "bpm"), [("00 FF", 255), ("00 7F", 127), ("01 80 80", 32896), ("01 7F 7F", 32639)])
def test_heart_rate_formats(data, bpm):
    m = parse_heart_rate(hexbytes(data))
    assert m.bpm == bpm and m.energy_kj is None and m.rr_s == () and m.contact is None


@pytest.mark.parametrize(("data", "contact"), [("06 00", True), ("04 00", False), ("06 FF", True), ("04 FF", False), ("02 00", None), ("00 00", None)])
def test_heart_rate_sensor_contact(data, contact):
    assert parse_heart_rate(hexbytes(data)).contact is contact  # None: the sensor does not support contact


@pytest.mark.parametrize(("data", "energy"), [("09 00 00 FF FF", 65535), ("08 00 7F 80", 32895)])
def test_heart_rate_energy_expended(data, energy):
    m = parse_heart_rate(hexbytes(data))
    assert m.bpm == 0 and m.energy_kj == energy


@pytest.mark.parametrize(
    ("data", "rr_1024", "rr_ms"),
    [("10 00 FF FF", [65535], [63999]), ("11 00 00 FF FF 7F 80", [65535, 32895], [63999, 32124]), ("11 00 00 00 00", [0], [0]), ("10 00 00 00", [0], [0])],
)
def test_heart_rate_rr_intervals(data, rr_1024, rr_ms):
    m = parse_heart_rate(hexbytes(data))
    assert m.bpm == 0
    assert [round(r * 1024) for r in m.rr_s] == rr_1024
    assert [int(r * 1000) for r in m.rr_s] == rr_ms
