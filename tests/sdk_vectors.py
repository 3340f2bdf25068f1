"""Byte vectors from Polar's official SDK tests (polarofficial/polar-ble-sdk, Android
`sources/Android/android-communications/library/src/test/...` and iOS `sources/iOS/ios-communications/Tests/...`).

Bytes and the expected values are facts about the protocol; the tests around them are ours
(`tests/test_ble_sdk_vectors.py`). Each constant names the SDK test it comes from.
"""

from __future__ import annotations


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(",", " ").replace("0x", " "))


# header shared by most SDK frame tests: timestamp 00 94 35 77 00 00 00 00 = 2,000,000,000 ns
TS_2E9 = hexbytes("00 94 35 77 00 00 00 00")

# PpgDataTest.kt / PpgDataTest.swift "raw PPG frame type 0"
PPG_RAW_0 = hexbytes(
    "01 02 03  04 05 06  FF FF 7F  00 00 00"
    "FF FF FF  0F EF EF  00 00 80  0F EF EF"
)

# PpgDataTest.kt "raw PPG frame type 4"
PPG_RAW_4 = hexbytes(
    "02 7F 06 02 06 04 02 06 03 02 01 FF"
    "01 07 FF 00 00 00 00 00 00 00 00 01"
    "F8 7F 00 00 00 00 00 00 01 02 EF F8"
)

# PpgDataTest.kt "raw PPG frame type 9", PpgDataTest.swift testRawPpgFrameType9
PPG_RAW_9 = hexbytes(
    "06 06 06 06 06 06 06 06 06 06 06 06"
    "FF 00 00 00 00 00 00 00 00 00 00 FF"
    "01 00 00 00 00 00 00 00 00 00 FF FF"
)

# PpgDataTest.swift testRawPpgFrameType6: sport id 27 (trail running)
PPG_RAW_6 = hexbytes("1B 00 00 00 00 00 00 00")

# PpgDataTest.kt / .swift "compressed PPG frame type 0" (1 reference + 41 samples of 10-bit deltas)
PPG_DELTA_0 = hexbytes(
    "2C 2D 00 C2 77 00 D3 D2 FF 3D 88 FF 0A 29 B2 F0 EE 34 11 B2 EC EE 74 11 B1 E8 FE B4 11 B1 E8 FE B4 11"
    "B1 E0 FE 34 12 B0 DC 0E 75 12 B0 D8 0E B5 12 AF D4 1E F5 12 AF D0 1E 35 13 AE CC 2E 75 13 AE C8 2E B5"
    "13 AD C4 3E F5 13 AD BC 3E 75 14 AD BC 3E 75 14 AC B8 4E B5 14 AC B4 4E F5 14 AB B0 5E 35 15 AA AC 6E"
    "75 15 AA A8 6E B5 15 AA A4 6E F5 15 A9 A0 7E 35 16 A9 9C 7E 75 16 A8 98 8E B5 16 A7 94 9E F5 16 A7 90"
    "9E 35 17 A7 8C 9E 75 17 A6 88 AE B5 17 A5 88 BE B5 17 A5 80 BE 35 18 A4 7C CE 75 18 A4 78 CE B5 18 A3"
    "78 DE B5 18 A2 70 EE 35 19 A2 6C EE 75 19 A2 6C EE 75 19 A1 68 FE B5 19 A0 60 0E 36 1A 9F 60 1E 36 1A"
    "9F 5C 1E 76 1A 9F 58 1E B6 1A 9D 54 3E F6 1A"
)

# PpgDataTest.kt "compressed PPG frame type 7": 16 channels + status, 24-bit; one 24-bit delta sample
PPG_DELTA_7 = hexbytes(
    "09 AE 20 8A 7C 23 58 3B 19 80 B9 18 DB 2E 22 FA 88 1D D7 BB 18 C2 B8 1F 7A 44 26 48 DF 23 A1 F2 17"
    "3A 37 1B FF FF 00 7C 08 00 70 F5 02 FF FF 00 28 C4 11 18 01 87 FE FF EC 02 00 01 FE FF FB 00 00 8D"
    "F9 FF B1 FF FF 0C FE FF 26 FE FF EE FE FF 89 02 00 DF 02 00 51 FE FF 00 00 00 00 00 00 00 00 00 00"
    "00 00 AE A6 8F"
)

# PpgDataTest.kt "compressed PPG frame type 8": 24 channels + status, 24-bit; one 3-bit delta sample
PPG_DELTA_8 = hexbytes(
    "03 10 01 05 10 02 FF FF FF 09 10 04 0B 10 05 03 10 06 05 10 07 07 10 08 09 10 09 0B 10 0A 03 10 0B"
    "05 10 0C 07 10 0D 09 10 0E 0B 10 0F 03 10 10 05 10 11 07 10 12 09 10 13 0B 10 14 03 10 15 05 10 16"
    "07 10 17 09 10 18 FF FF FF 03 01 49 92 24 49 92 24 49 92 24 00"
)

# PpgDataTest.kt "compressed PPG frame type 10" / .swift testCompressedPpgFrameType10: a WHOLE frame
# (header included: PPG, timestamp C0 6E 6A 43 E1 61 EE 0A, frame type 0x8A)
PPG_DELTA_10_FRAME = hexbytes(
    "01 C0 6E 6A 43 E1 61 EE 0A 8A 35 0B 18 6B DF 1D C5 8D 1A 6C E1 1A 4D 93 1B 48 BA 16 A2 10"
    "18 3B D0 1B 32 1D 1E 63 BD 1A 08 F3 17 FB 2F 11 00 01 00 A0 07 14 C2 7F 19 70 0A 22 97 7D"
    "19 CC 08 22 A0 07 14 57 F3 A5 FF CF 03 18 06 52 B3 FF 8E F9 FF AE EF FF 5F FB FF B1 A6 FF"
    "75 F8 FF A7 F0 FF 32 F1 FF B8 00 00 1E 00 00 97 02 00 08 FE FF 00 FF FF 60 F8 EB 8E 07 00"
    "8A 00 00 AE 08 00 97 00 00 60 F8 EB 32 8A FD 00 00 00 4B 2A FF A7 04 00 BC 0F 00 D0 FE FF"
    "64 F5 FE 94 E8 FF 5E 07 00 2F 17 00 34 27 00 E7 11 00 7B 08 00 2C 03 00 00 01 00 A0 07 14"
    "09 3C 00 D0 86 00 CE 3B 00 CA 86 00 A0 07 14 CE 75 02 00 00 00 F0 A4 FF AA 08 00 45 19 00"
    "8B FF FF 9A 8B FF 65 F4 FF 92 11 00 40 20 00 C5 23 00 8E 0F 00 01 06 00 6F 05 00 D4 02 19"
    "B8 2D 38 BF 2D 00 2C 78 00 23 2E 00 A3 77 00 6C CA B5 32 8A FD 00 00 00 DE F1 FF 24 06 00"
    "2B 12 00 78 FE FF 89 E9 FF 08 FD FF 31 0B 00 49 0F 00 E2 06 00 3C 04 00 50 02 00 53 01 00"
    "2C FD E6 48 D2 C7 2E 0C 00 11 1C 00 0F 0D 00 2E 1C 00 94 35 4A CE 75 02 00 00 00 9C 06 00"
    "33 04 00 5F 06 00 E1 FB FF 15 06 00 B9 00 00 1C 06 00 CE 01 00 6F FC FF CD FF FF D1 01 00"
    "6A FF FF D4 02 19 B8 2D 38 68 FE FF B5 F6 FF D8 FD FF A6 F6 FF 6C CA B5 32 8A FD 00 00 00"
    "6E DC FF C7 00 00 0F 06 00 C5 F8 FF 9F DE FF E7 FB FF 0E FE FF 61 F9 FF 9D 04 00 B8 00 00"
    "7E 02 00 67 01 00 2C FD E6 48 D2 C7 7E 07 00 F5 0E 00 14 07 00 F1 0E 00 94 35 4A CE 75 02"
    "00 00 00"
)

# AccDataTest.kt / .swift "process acc raw data frame type 1" (16-bit x, y, z in mG)
ACC_RAW_1 = hexbytes(
    "F7 FF FF FF E7 03 F8 FF FE FF E5 03 F9 FF FF FF E5 03 FA FF FF FF E6 03 FA FF FE FF E6 03 F9 FF FF FF"
    "E5 03 F8 FF FF FF E6 03 F8 FF FE FF E6 03 FA FF FF FF E5 03 FA FF FF FF E7 03 FA FF FF FF E5 03 F8 FF"
    "FF FF E6 03 F7 FF FF FF E6 03 F8 FF FE FF E6 03 F9 FF FE FF E7 03 F9 FF 00 00 E6 03 F9 FF FF FF E6 03"
    "F7 FF FE FF E5 03 F9 FF FF FF E5 03 F9 FF FF FF E5 03 FA FF 00 00 E6 03 F9 FF FE FF E6 03 F8 FF FF FF"
    "E6 03 F8 FF FF FF E5 03 F9 FF FF FF E6 03 F9 FF FF FF E5 03 FA FF FF FF E6 03 F9 FF FF FF E5 03 F9 FF"
    "FF FF E5 03 F8 FF FE FF E6 03 F9 FF FF FF E6 03 F9 FF FF FF E6 03 F9 FF 00 00 E5 03 F9 FF FE FF E6 03"
    "F8 FF FE FF E6 03 F7 FF FE FF E6 03"
)

# AccDataTest.kt / .swift "process acc compressed data type 0": frame type 0x80, 16-bit reference,
# values in G (scaled by FACTOR × 1000 to mG); 1 reference + 56 samples of 10-bit deltas
ACC_DELTA_0 = hexbytes(
    "71 07 F0 6A 9E 8D 0A 38 BE 5C BE BA 2F 96 B3 EE 4B E5 AD FB 42 B9 EB BE 4C FE BA 2F 92 BF EE 4B E4 B1"
    "FB 12 B9 EC BD 3C 3E BB 2F 8F D3 DE 4B E3 B5 F7 D2 B8 ED BD 30 7E 7B 2F 8B E3 CE 8B E2 BA F7 A2 B8 EE"
    "BC 20 BE 7B 2F 88 F3 CE CB E1 BD EF 52 F8 EF BC 18 FE 3B 2F 84 03 BF CB E0 C2 EF 32 B8 F0 BB 04 4E BC"
    "2E 81 13 AF 0B E0 C6 EF F2 F7 F1 B9 FC 7D BC 2E 7D 27 9F 4B DF CA EB C2 F7 F2 B8 EC CD 7C 2E 7B 37 8F"
    "4B DE CE E3 92 F7 F3 B8 E0 0D FD 2D 77 4B 7F CB DD D2 DF 62 37 F5 B7 D4 4D BD 2D 74 5B 6F CB DC D7 D7"
    "32 37 F6 B5 C8 8D 7D 2D 71 6B 4F 4B DC DC D3 F2 36 F7 B4 BC DD FD 2C 6F 7B 3F 4B DB E0 CF D2 36 F8 B2"
    "B0 2D BE 2C 6C 8F 1F CB DA E3 C7 A2 76 F9"
)

# AccDataTest.kt measurementFrameAccType0Short: another ACC type 0x80 payload (reference x = -163)
ACC_DELTA_0_SHORT = hexbytes(
    "5D FF 98 00 FD 0F 06 2A F2 B0 13 EC A1 1B 3E C3 D0 40 7F CD 40 71 D8 F3 4D 00 46 3F 08 7B 9F D7 3A AF"
    "38 52 A6 13 ED 3E 13 09 91 DC FA EE EF 3E 54 10 E2 8F 77 85 EE F2 4C 7E 04 87 9C FC D2 2F 10 FD 4F EF"
    "FE 21 FF C2 81 04 03 5F 13 45 D1 08 4A DF BF B5 51 44 7B 50 F7 39 A1 10 2E 6F 18 F7 9F 1C 36 4D 1B 0D"
    "03 0C 14 06 D0 FE F7 AF FF FC BF FF F4 3F 01 17 F0 00 01 10 00 F8 DF FF 00"
)

# AccDataTest.kt / .swift "process acc compressed data type 1" (frame type 0x81)
ACC_DELTA_1 = hexbytes("F1 FF 14 00 F0 03 06 01 7B 0F 08")

# BlePmdClientParsersTest.kt test_parseDeltaFrameAllSamples_withResolution32_realVector1 (3 ch × 32 bit)
DELTA_32_REAL_VECTOR_1 = hexbytes(
    "00 00 80 3F 00 00 20 41 00 00 A0 41 1C 06 00 00 A0 01 00 00 08 CD CC EC 0D 00 00 08 CD CC EC 3D 33 33"
    "1A CD CC EC 3D 33 33 1A 00 00 C0 30 33 33 1A 00 00 C0 A0 99 99 DA 00 00 C0 A0 99 99 DA 66 66 A6 A1 99"
    "99 DA 66 66 A6 01 00 00 0E 20 03 66 66 A6 01 00 00 E0 00 42 6C 45 0E 00 00 E0 00 42 6C 45 0E 2B F8 ED"
    "21 00 00 60 FD BE 93 BA F0 93 9B 4C CF 1C 06 00 00 A0 01 00 00 08 CD CC EC 0D 00 00 08 CD CC EC 3D 33"
    "33 1A CD CC EC 3D 33 33 1A 00 00 C0 30 33 33 1A 00 00 C0 A0 99 99 DA 00 00 C0 A0 99 99 DA 66 66 A6 A1"
    "99 99 DA 66 66 A6 01 00 00 0E 20 03 66 66 A6 01 00 00 E0 00 42 6C 45 0E 00 00 E0 00 42 6C 45 0E 2B F8"
    "ED 21 00 00 60 FD BE 93 BA F0 93 9B 4C CF"
)

# BlePmdClientParsersTest.kt test_parseDeltaFrameAllSamples_withResolution32 (3 ch × 32 bit)
DELTA_32 = hexbytes(
    "02 00 00 00 19 32 99 E9 00 DA FE FF 20 11 17 32 99 E9 E7 A7 65 16 38 DB 06 46 E7 A7 65 16 38 DB 06 46"
    "73 41 3B B8 7A 26 04 01 C9 0A FF 59 77 07 D1 32 87 BF 01 9F 21 3E 0D 91 E5 01 76 AD 21 3E 0D 91 E5 01"
    "76 AD 92 01 38 CD E5 01 76 AD 92 01 38 CD 00 54 84 87 92 01 38 CD 00 54 84 87 78 CB EE 40 00 54 84 87"
    "78 CB EE 40 F1 DE CC 8B 78 CB EE 40 F1 DE CC 8B 17 32 99 E9 F1 DE CC 8B 17 32 99 E9 E7 A7 65 16 17 32"
    "99 E9 E7 A7 65 16 38 DB 06 46 E7 A7 65 16 38 DB 06 46 73 41 3B B8 7A 26 04 01 C9 0A FF 59 77 07 D1 32"
    "87 BF 01 9F 21 3E 0D 91 E5 01 76 AD 21 3E 0D 91 E5 01 76 AD 92 01 38 CD E5 01 76 AD 92 01 38 CD 00 54"
    "84 87 92 01 38 CD 00 54 84 87 78 CB EE 40"
)

# BlePmdClientParsersTest.kt test_parseDeltaFrameAllSamples_multipleDeltas (3 ch × 16 bit, nine blocks)
DELTA_16_MULTIPLE = hexbytes(
    "C9 FF 12 00 11 00 03 09 41 FE 2B 0F 9C 0B BF 15 00 4F 00 04 1E F1 EF 00 F0 C1 23 E4 ED F4 D1 F1 F1 F5"
    "FF 22 DE 31 00 F1 FE 21 02 1F 0E 2B 1F 00 E2 20 00 0E 02 E1 1E 20 FF F1 F1 02 C5 D0 02 E0 E1 02 03 0A"
    "31 2E FB BA 90 2B AA 0E 23 40 9E 03 04 14 E3 EF F3 0F 02 1F 01 E0 0F 04 9E 13 E2 D0 04 E2 22 E2 C2 0E"
    "20 0F 20 02 FE 00 0F 1C 32 EE 03 0A 89 00 07 08 7C 00 CE 2F E8 3A 9E 03 04 1E 01 00 11 19 4F 00 2F 12"
    "FD 13 FF 0E 10 00 00 F1 C0 12 E4 EF 21 00 00 01 F1 FF FF 02 10 10 2B 51 0B 4E 31 FC 2E BF 31 14 EC 0E"
    "2F 52 EF 03 0A 06 9E 04 0E 02 A8 88 EE E0 07 9A 00 04 0A 1F 21 1E 4E 2E FE C6 C0 02 EF 03 01 02 EE 11"
    "03 0A F8 13 00 00 F0 40 BF A5 E7 00 76 00"
)

# PmdSettingTest.kt / .swift testPmdSettingsWithRange: 52 Hz; 16 bit; ranges 245/500/1000/2000; 3 channels
SETTINGS_WITH_RANGE = hexbytes("00 01 34 00 01 01 10 00 02 04 F5 00 F4 01 E8 03 D0 07 04 01 03")
# PmdSettingTest.kt testPmdSettingWithRangeMilliUnit / .swift testPmdSetting (and, one byte short, testPmdSettingThrows)
SETTINGS_RANGE_MILLIUNIT = hexbytes("03 02 FF FF FF FF FF 00 00 00 01 01 0E 00")
