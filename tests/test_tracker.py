"""The causal tracker rides out single bad windows, follows real changes, and finds its way back."""

import numpy as np

from ppg_stream.stream.core.decode import softmax
from ppg_stream.stream.core.tracker import Tracker, TrackerParams, nearest_window_peak

BINS = np.arange(30.0, 211.0)


def _evidence(*centres_and_weights, width=2.0):
    """One row of model probabilities: Gaussian bumps at the given (bpm, weight) pairs."""
    logits = np.log(sum(w * np.exp(-0.5 * ((BINS - c) / width) ** 2) for c, w in centres_and_weights) + 1e-6)
    return softmax(logits[None, :])[0]


def test_a_single_window_locked_on_the_cadence_does_not_throw_the_estimate():
    rows = [_evidence((80, 1.0))] * 10 + [_evidence((150, 1.0), (80, 0.2))] + [_evidence((80, 1.0))] * 3
    bpm, conf = Tracker(BINS).update(np.arange(len(rows)), np.array(rows))
    assert abs(bpm[10] - 80) < 2  # the model said 150 for this window; the track stays
    assert conf[10] < conf[9]  # and is less sure of itself there


def test_follows_a_gradual_change():
    hr = np.linspace(80, 140, 40)  # +3 bpm per 2 s: hard exercise onset
    bpm, _ = Tracker(BINS).update(np.arange(40), np.array([_evidence((h, 1.0)) for h in hr]))
    assert np.abs(bpm - hr)[5:].max() < 4


def test_reacquires_after_a_wrong_lock():
    # the first windows point at the cadence (the start is wrong); the evidence then moves to the pulse
    rows = [_evidence((160, 1.0))] * 8 + [_evidence((90, 1.0), (160, 0.3))] * 10
    bpm, _ = Tracker(BINS).update(np.arange(len(rows)), np.array(rows))
    assert abs(bpm[-1] - 90) < 2
    assert np.argmax(np.abs(bpm - 90) < 2) <= 8 + 5  # within the re-acquisition run length


def test_state_carries_across_batches_and_gaps():
    rows = np.array([_evidence((100, 1.0))] * 6)
    tracker = Tracker(BINS)
    tracker.update(np.arange(3), rows[:3])
    bpm, _ = tracker.update(np.array([3, 4, 5]), rows[3:])
    assert np.allclose(bpm, 100, atol=0.5)
    # after a long gap (e.g. a disconnection) the prior is wide: a new HR is taken at once
    bpm_gap, _ = tracker.update(np.array([60]), np.array([_evidence((130, 1.0))]))
    assert abs(bpm_gap[0] - 130) < 3


PREVIOUS = TrackerParams(outlier_share=0.0, harmonic_tolerance=0.0, peak_radius_bpm=0.0)  # the tracker before issue 12


def _sharp(centre, p_elsewhere):
    """A window so confident that every bin but its peak gets `p_elsewhere` (arm motion at the HR)."""
    p = np.full(len(BINS), p_elsewhere)
    p[np.argmin(np.abs(BINS - centre))] = 1.0
    return p / p.sum()


def test_one_overconfident_window_cannot_capture_the_track():
    # settled at 80 bpm; one window puts ~1e-6 near the true HR and all its mass 22 bpm away
    rows = [_evidence((80, 1.0), width=4.0)] * 20 + [_sharp(102, 1e-6)] + [_evidence((80, 1.0), width=4.0)] * 3
    k = np.arange(len(rows))
    before, _ = Tracker(BINS, PREVIOUS).update(k, np.array(rows))
    after, _ = Tracker(BINS).update(k, np.array(rows))
    assert abs(before[20] - 102) < 2  # the failure: the previous tracker jumped with that single window
    assert abs(after[20] - 80) < 2


def test_a_run_of_windows_still_moves_the_track():
    # bounded evidence must not freeze the track: a sustained change of 30 bpm is followed
    rows = [_evidence((80, 1.0))] * 20 + [_evidence((110, 1.0), (80, 0.05))] * 12
    after, _ = Tracker(BINS).update(np.arange(len(rows)), np.array(rows))
    assert abs(after[-1] - 110) < 2


def test_reacquisition_does_not_land_on_a_harmonic_of_the_track():
    # locked on 70 bpm; during arm motion the model prefers the 2nd harmonic for 6 windows, keeping a
    # little mass at the pulse, then the motion stops
    rows = [_evidence((70, 1.0))] * 15 + [_evidence((140, 1.0), (70, 0.15))] * 6 + [_evidence((70, 1.0), (140, 0.3))] * 3
    k = np.arange(len(rows))
    before, _ = Tracker(BINS, PREVIOUS).update(k, np.array(rows))
    after, _ = Tracker(BINS).update(k, np.array(rows))
    assert np.abs(before[15:] - 140).min() < 2  # the failure: re-acquired onto 2x and stayed there
    assert np.abs(after[15:] - 70).max() < 3


def test_a_harmonic_lock_without_support_is_still_left():
    # the start was wrong (2x the pulse); when the windows give that lock no probability at all,
    # re-acquisition onto the pulse (its 1/2) is allowed
    rows = [_evidence((150, 1.0))] * 8 + [_evidence((75, 1.0))] * 10
    bpm, _ = Tracker(BINS).update(np.arange(len(rows)), np.array(rows))
    assert abs(bpm[-1] - 75) < 2
    assert np.argmax(np.abs(bpm - 75) < 2) <= 8 + 4


def test_in_lock_the_published_rate_is_the_windows_own_peak_not_the_lagging_posterior():
    # a heart rate changing by 1.5 bpm per window, each window sharp and right (a clean PPG at rest):
    # the posterior lags behind the change, the window's own peak does not
    hr = 70 + 1.5 * np.arange(30) + 0.3 * np.sin(np.arange(30))
    rows = np.array([_evidence((h, 1.0), width=1.0) for h in hr])
    lagging, _ = Tracker(BINS, TrackerParams(peak_radius_bpm=0.0)).update(np.arange(30), rows)
    published, _ = Tracker(BINS).update(np.arange(30), rows)
    assert np.abs(lagging - hr)[5:].mean() > 0.3  # the failure: the posterior's peak trails the HR
    assert np.abs(published - hr)[5:].max() < 0.15


def test_a_window_without_a_peak_near_the_track_keeps_the_track():
    # settled at 80; one window whose only peak is 20 bpm away: the published rate stays on the track
    rows = [_evidence((80, 1.0))] * 12 + [_evidence((100, 1.0))]
    bpm, _ = Tracker(BINS).update(np.arange(len(rows)), np.array(rows))
    assert abs(bpm[12] - 80) < 2
    # the rule itself: a peak inside the radius is taken (refined between bins); a window that only rises
    # towards a peak beyond the radius (its highest bin in range is at the range's edge) leaves the track
    probs = np.array([_evidence((82.4, 1.0)), _evidence((90, 1.0))])
    out = nearest_window_peak(probs, np.array([80.0, 80.0]), BINS, 3.0)
    assert abs(out[0] - 82.4) < 0.1 and out[1] == 80.0


def test_the_table_shrinks_back_after_a_flood_and_keeps_every_live_row():
    """A flood of devices doubles the table; once they are gone it shrinks to the rows in use, and each
    survivor's tracker state is the same after the move."""
    from ppg_stream.stream.core.tracker import TrackerTable

    table = TrackerTable(np.arange(30.0, 211.0), capacity=16)
    rows = [table.add() for _ in range(5000)]
    keep = rows[::1000]
    for i, row in enumerate(keep):
        table.priors[row] = i
    for row in rows:
        if row not in keep:
            table.remove(row)
    assert len(table.states) >= 5000
    remap = table.compact()
    assert len(table.states) == 16 and sorted(remap) == sorted(keep)
    for i, row in enumerate(keep):
        assert np.all(table.priors[remap[row]] == i)
    assert len({table.add() for _ in range(11)} | set(remap.values())) == 16  # the free rows are the rest
