"""The dashboard's fleet table: what a card shows, built from HR and status messages as they arrive
(duplicates, reordering, restarts, junk), with bounded memory."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppg_stream.stream.consumers.dashboard.band import MAX_HALF_WIDTH_BPM, band_half_width
from ppg_stream.stream.consumers.dashboard.fleet import HISTORY_POINTS, REORDER_WINDOWS, Fleet
from ppg_stream.stream.core.message import device_hr_message, hr_message

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hr(window: int, bpm: float = 80.0, conf: float = 0.9, late: bool = False, made_s: float | None = None, device: str = "d1") -> bytes:
    made = 2 * window + 8 if made_s is None else made_s
    return json.dumps(hr_message(device, window, 2.0 * window + 8, ts(made), bpm, conf, 0.3, late, "ppg-student@1.1")).encode()


def card(fleet: Fleet, device: str = "d1", now: float = 0.0) -> dict:
    return next(d for d in json.loads(fleet.snapshot_json(now)) if d["id"] == device)


def feed(fleet: Fleet, windows, device: str = "d1", **kw) -> None:
    for w in windows:
        fleet.handle(f"ppg/{device}/hr", hr(w, device=device, **kw), now=1000.0)


def test_card_shows_the_latest_message():
    fleet = Fleet("ppg")
    fleet.handle("ppg/d1/status", b"online", now=1.0)
    fleet.handle("ppg/d1/hr", hr(0, bpm=71.0), now=2.0)
    fleet.handle("ppg/d1/hr", hr(1, bpm=74.26, conf=0.5, late=True), now=3.0)
    c = card(fleet, now=5.0)
    assert (c["status"], c["bpm"], c["conf"], c["model"], c["late"], c["missed"], c["age"]) == ("online", 74.3, 0.5, "ppg-student@1.1", 1, 0, 2.0)
    assert [p[:2] for p in c["pts"]] == [[8.0, 71.0], [10.0, 74.3]]


def test_no_reliable_estimate_is_shown_as_such_not_as_a_number():
    fleet = Fleet("ppg")
    fleet.handle("ppg/d1/hr", hr(0, bpm=118.0), now=2.0)
    unsure = json.dumps(hr_message("d1", 1, 10.0, ts(10), 40.2, 0.3, 0.3, False, "ppg-student@1.3", False)).encode()
    fleet.handle("ppg/d1/hr", unsure, now=3.0)
    c = card(fleet, now=3.0)
    assert c["ok"] is False and c["n"] == 2 and c["missed"] == 0  # counted as received...
    assert [p[:2] for p in c["pts"]] == [[8.0, 118.0]]  # ...but 40 bpm is drawn nowhere
    fleet.handle("ppg/d1/hr", hr(2, bpm=119.0), now=4.0)  # a message without the field (older streams) is reliable
    assert card(fleet, now=4.0)["ok"] is True


def test_gaps_count_as_missed_and_late_arrivals_fill_them():
    fleet = Fleet("ppg")
    feed(fleet, [0, 1, 4, 5])
    assert card(fleet)["missed"] == 2
    feed(fleet, [3], bpm=50.0)  # made before 4 and 5, delivered after them (a reconnection)
    c = card(fleet)
    assert c["missed"] == 1 and c["n"] == 5 and c["bpm"] == 80.0  # counted, not shown as the current value
    assert [p[0] for p in c["pts"]] == [8.0, 10.0, 16.0, 18.0]


def test_redelivered_messages_are_ignored():
    fleet = Fleet("ppg")
    feed(fleet, [0, 1, 2, 1, 2, 2])
    c = card(fleet)
    assert (c["n"], c["missed"], len(c["pts"])) == (3, 0, 3)
    assert fleet.devices["d1"].duplicates == 3


def test_a_restarted_stream_starts_the_card_afresh():
    fleet = Fleet("ppg")
    feed(fleet, range(10), late=True)
    fleet.take_changes_json(0.0)
    fleet.handle("ppg/d1/hr", hr(0, bpm=100.0, made_s=500.0), now=1.0)  # window 0 again, made later
    c = card(fleet)
    assert (c["n"], c["late"], c["missed"], c["bpm"]) == (1, 0, 0, 100.0) and len(c["pts"]) == 1
    change = json.loads(fleet.take_changes_json(1.0))[0]
    assert change["reset"] and change["pts"] == [[8.0, 100.0, change["pts"][0][2]]]


@settings(max_examples=150, deadline=None)
@given(
    present=st.lists(st.booleans(), min_size=1, max_size=150),
    shuffle_keys=st.lists(st.floats(0, REORDER_WINDOWS - 2), min_size=150, max_size=150),
    repeats=st.lists(st.integers(0, 149), max_size=20),
)
@pytest.mark.slow
def test_missed_is_the_number_of_gaps_whatever_the_order(present, shuffle_keys, repeats):
    """Windows delivered reordered by less than the reorder horizon, with duplicates: the missed count
    is exactly the windows absent after the first one that arrived."""
    sent = [w for w, p in enumerate(present) if p] or [0]
    order = sorted(sent, key=lambda w: w + shuffle_keys[w])  # each window moves by < REORDER_WINDOWS
    order += [w for w in repeats if w in sent]  # redeliveries
    fleet = Fleet("ppg")
    feed(fleet, order)
    first, last = order[0], max(sent)
    expected = sum(1 for w in range(first + 1, last + 1) if w not in sent)
    c = card(fleet)
    assert c["missed"] == expected
    assert c["n"] == len(set(sent))


def test_status_messages_and_removal():
    fleet = Fleet("ppg")
    fleet.handle("ppg/d1/status", b"offline", now=0.0)  # retained status of a device never seen publishing
    c = card(fleet)
    assert c["status"] == "offline" and c["bpm"] is None and c["age"] is None
    fleet.take_changes_json(0.0)
    fleet.handle("ppg/d1/status", b"", now=1.0)  # the retained status was cleared
    assert json.loads(fleet.take_changes_json(1.0)) == [{"id": "d1", "removed": True}]
    assert json.loads(fleet.snapshot_json(1.0)) == []


def test_junk_is_counted_never_fatal():
    fleet = Fleet("ppg")
    for topic, payload in [
        ("ppg/d1/hr", b"not json"), ("ppg/d1/hr", b"[1,2]"), ("ppg/d1/hr", b'{"bpm": "fast"}'),
        ("ppg/d1/hr", b'{"bpm": NaN}'), ("ppg/d1/hr", b'{"bpm": -3}'), ("ppg/d1/hr", b"\xff\xfe"),
        ("ppg/d1/hr", b'{"bpm": 70, "pad": "' + b"x" * 20_000 + b'"}'), ("ppg/d1/status", b"sleeping"),
        ("ppg/" + "x" * 200 + "/hr", hr(0)), ("other/d1/hr", hr(0)), ("ppg/d1/raw", b"\x01"),
    ]:
        fleet.handle(topic, payload, now=0.0)
    assert fleet.ignored == 11 and fleet.received == 11
    assert json.loads(fleet.snapshot_json(0.0)) == []


def test_a_devices_own_hr_counts_gaps_in_seq_and_has_no_band():
    fleet = Fleet("ppg")
    for seq in (1, 2, 5):
        msg = device_hr_message("ble-1", seq, seq * 1.0, ts(seq), 70 + seq, (0.8,), True, None)
        fleet.handle("ppg/ble-1/hr", json.dumps(msg).encode(), now=0.0)
    c = card(fleet, "ble-1")
    assert (c["bpm"], c["conf"], c["source"], c["missed"], c["model"]) == (75.0, None, "device", 2, "device")
    assert all(p[2] is None for p in c["pts"])


def test_memory_is_bounded_per_device_and_in_total():
    fleet = Fleet("ppg", max_devices=50)
    for w in range(HISTORY_POINTS * 3):
        fleet.handle("ppg/d0/hr", hr(w, device="d0"), now=float(w))
    assert len(card(fleet, "d0")["pts"]) == HISTORY_POINTS
    assert len(json.loads(fleet.take_changes_json(0.0))[0]["pts"]) == HISTORY_POINTS  # no browser watching: still bounded
    for d in range(1, 120):
        fleet.handle(f"ppg/d{d}/hr", hr(0, device=f"d{d}"), now=1000.0 + d)
    ids = {c["id"] for c in json.loads(fleet.snapshot_json(0.0))}
    assert len(ids) == 50 and fleet.evicted == 70
    assert ids == {f"d{d}" for d in range(70, 120)}  # the ones quiet for longest went first


def test_changes_carry_only_what_is_new():
    fleet = Fleet("ppg")
    feed(fleet, [0, 1], device="a")
    feed(fleet, [0], device="b")
    first = {c["id"]: c for c in json.loads(fleet.take_changes_json(0.0))}
    assert len(first["a"]["pts"]) == 2 and len(first["b"]["pts"]) == 1
    assert fleet.take_changes_json(0.0) is None
    feed(fleet, [2], device="a")
    (change,) = json.loads(fleet.take_changes_json(0.0))
    assert change["id"] == "a" and [p[0] for p in change["pts"]] == [12.0] and not change["reset"]


def test_band_is_the_normal_sigma_implied_by_confidence():
    for conf in (0.3, 0.68, 0.9, 0.99):
        sigma = band_half_width(conf)
        mass = NormalDist(0, sigma).cdf(5) - NormalDist(0, sigma).cdf(-5)
        assert abs(mass - conf) < 1e-6
    widths = [band_half_width(c) for c in (0.01, 0.2, 0.5, 0.8, 0.95)]
    assert widths == sorted(widths, reverse=True)
    assert band_half_width(0.0) == MAX_HALF_WIDTH_BPM and band_half_width(None) is None


def test_a_device_offline_longer_than_the_retention_is_forgotten_and_only_then():
    fleet = Fleet("ppg")
    fleet.handle("ppg/gone/status", b"offline", now=100.0)  # retained from an earlier run: offline at least since now
    fleet.handle("ppg/live/status", b"online", now=100.0)
    feed(fleet, [0, 1], device="live")
    fleet.handle("ppg/back/status", b"offline", now=100.0)
    fleet.take_changes_json(100.0)
    assert fleet.expire(100.0 + 3600, retention_s=3600) == []  # not longer than the retention yet
    fleet.handle("ppg/back/status", b"online", now=200.0)  # came back: its offline clock stops
    fleet.handle("ppg/live/status", b"offline", now=3000.0)  # went offline later: its own clock
    assert fleet.expire(100.0 + 3601, retention_s=3600) == ["gone"]
    assert sorted(fleet.devices) == ["back", "live"]
    assert {"id": "gone", "removed": True} in json.loads(fleet.take_changes_json(3701.0))  # the browsers drop the card
    assert fleet.expire(3000.0 + 3601, retention_s=3600) == ["live"]
    fleet.handle("ppg/gone/status", b"offline", now=9000.0)  # a device that comes back as offline starts afresh
    assert "gone" in fleet.devices and fleet.expire(9001.0, retention_s=3600) == []


def test_a_device_can_be_removed_and_a_cleared_status_removes_it_too():
    fleet = Fleet("ppg")
    feed(fleet, [0], device="a")
    fleet.handle("ppg/b/status", b"offline", now=1.0)
    assert fleet.remove("a") and not fleet.remove("a")
    fleet.handle("ppg/b/status", b"", now=2.0)  # what clearing it on the broker sends back
    assert fleet.devices == {} and fleet.counts()["devices"] == 0


def test_the_message_rate_of_a_device_every_two_seconds_is_half_a_message_per_second():
    from ppg_stream.stream.consumers.dashboard.rate import RateMeter

    meter = RateMeter(now=0.0)
    for t in range(0, 61, 2):  # one HR message per 2 s hop
        meter.add(t + 0.3)
        assert meter.rate(t + 0.3) <= 1.0
        if t >= 10:
            assert meter.rate(t + 0.3) == meter.rate(t + 1.7) == 0.5  # steady: it read 0 or 1, second by second
    assert meter.rate(75.0) == 0.0  # silence: the window empties
    busy = RateMeter(now=0.0)
    for i in range(2500):  # 250 messages a second for 10 s
        busy.add(i / 250)
    assert abs(busy.rate(10.0) - 250) < 30
