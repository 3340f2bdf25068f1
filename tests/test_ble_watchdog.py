"""The data watchdog's bookkeeping: how long silence may last, and restart before reconnect."""

from __future__ import annotations

from ppg_stream.stream.sources.ble.watchdog import Action, DataWatchdog

PPG, ACC = 1, 2


def test_a_started_stream_gets_a_few_seconds_for_its_first_frame_then_a_few_frame_periods():
    w = DataWatchdog(first_data_s=5.0, min_silence_s=2.0, frame_periods=4.0)
    w.expect(PPG, now=100.0)
    assert w.deadline() == 105.0 and w.overdue(104.9) == {}
    w.fed(PPG, now=101.0, frame_span_s=0.509)  # 28 samples at 55 Hz
    assert w.deadline() == 101.0 + 4 * 0.509
    assert w.overdue(103.0) == {} and w.overdue(103.1) == {PPG: Action.RESTART}
    w.fed(PPG, now=101.0, frame_span_s=0.1)
    assert w.deadline() == 103.0  # never less than min_silence_s


def test_silence_after_a_restart_means_reconnect_and_data_clears_it():
    w = DataWatchdog()
    w.expect(PPG, 0.0)
    w.fed(PPG, 1.0, 0.5)
    assert w.overdue(3.5) == {PPG: Action.RESTART}
    w.restarted_for_silence(PPG, 3.5)
    assert w.overdue(8.5) == {PPG: Action.RECONNECT}
    w.fed(PPG, 9.0, 0.5)  # it came back after all
    assert w.overdue(11.5) == {PPG: Action.RESTART}


def test_streams_silent_long_enough_are_restarted_together():
    w = DataWatchdog(min_silence_s=2.0, frame_periods=4.0)
    w.expect(PPG, 0.0)
    w.expect(ACC, 0.0)
    w.fed(PPG, 10.0, 0.509)
    w.fed(ACC, 10.0, 0.692)  # ACC frames are longer: it may stay silent for 2.77 s
    assert w.overdue(12.1) == {PPG: Action.RESTART, ACC: Action.RESTART}
    w.fed(ACC, 12.0, 0.692)
    assert w.overdue(12.1) == {PPG: Action.RESTART}  # ACC is flowing: leave it alone


def test_forget_after_a_reconnect():
    w = DataWatchdog()
    w.expect(PPG, 0.0)
    w.restarted_for_silence(PPG, 1.0)
    w.forget()
    assert w.deadline() is None and w.overdue(100.0) == {}
