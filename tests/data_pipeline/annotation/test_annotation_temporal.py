"""Temporal anchors (gripper phases) and motion words on synthetic episodes with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline.annotation.motion import MotionParams, motion_words, parse_words
from data_pipeline.annotation.segmentation import (
    EXECUTE,
    GRASP,
    MOVE_TO_GOAL,
    MOVE_TO_OBJECT,
    PLACE,
    RETRACT,
    GripperSignalError,
    segment_episode,
)

# scripted-expert phase -> annotator phase (how the truth is compared)
EXPERT_TO_PHASE = {
    "approach": MOVE_TO_OBJECT,
    "descend": MOVE_TO_OBJECT,
    "close": GRASP,
    "lift": MOVE_TO_GOAL,
    "move": MOVE_TO_GOAL,
    "lower": MOVE_TO_GOAL,
    "release": PLACE,
    "retract": RETRACT,
}


def boundaries(phases: list[str]) -> list[tuple[int, str]]:
    return [(t, p) for t, p in enumerate(phases) if t == 0 or p != phases[t - 1]]


def test_phase_boundaries_within_3_frames(pick_place_episode):
    for noise in (0.0, 0.001):
        ep = pick_place_episode(noise=noise)
        got = segment_episode(ep.gripper, ep.ee_pos, expected_grasps=1)
        truth = boundaries([EXPERT_TO_PHASE[p] for p in ep.expert_phases])
        found = boundaries(got.phase_per_frame())
        assert [p for _, p in found] == [p for _, p in truth]
        assert all(abs(a - b) <= 3 for (a, _), (b, _) in zip(found, truth)), (found, truth)
        assert got.flags == []
        assert got.close_events == [30] and got.open_events == [76]


def test_noisy_gripper_hysteresis_and_blips(pick_place_episode):
    ep = pick_place_episode()
    g = ep.gripper.astype(np.float64).copy()
    rng = np.random.default_rng(0)
    g += rng.normal(scale=0.3, size=g.shape)  # chatter around the levels
    g[10] = 1.0  # a one-frame spurious close
    got = segment_episode(g, ep.ee_pos, expected_grasps=1)
    assert got.num_grasps == 1 and abs(got.close_events[0] - 30) <= 3 and abs(got.open_events[0] - 76) <= 3


def test_opening_signal_kind(pick_place_episode):
    ep = pick_place_episode()
    opening = np.where(ep.gripper > 0, 0.001, 0.04)  # finger width: larger = more open
    got = segment_episode(opening, ep.ee_pos, kind="opening", expected_grasps=1)
    assert got.close_events == [30] and got.open_events == [76]


def test_quality_flags():
    T = 40
    never = segment_episode(-np.ones(T), None, expected_grasps=1)
    assert [s.phase for s in never.segments] == [EXECUTE]
    assert any(f.startswith("grasp_count_mismatch: expected 1, found 0") for f in never.flags)
    twice = -np.ones(T)
    twice[5:12] = 1
    twice[20:30] = 1
    got = segment_episode(twice, None, expected_grasps=1)
    assert got.num_grasps == 2 and any("found 2" in f for f in got.flags)
    held = -np.ones(T)
    held[10:] = 1
    assert "ends_closed" in segment_episode(held, None, expected_grasps=1).flags
    # no expectation (e.g. "turn on the stove"): no mismatch flag
    assert segment_episode(twice, None, expected_grasps=None).flags == []


def test_two_cycles_cover_all_frames():
    g = -np.ones(100)
    g[20:35] = 1
    g[60:75] = 1
    got = segment_episode(g, None, expected_grasps=2)
    phases = got.phase_per_frame()
    assert len(phases) == 100 and got.flags == []
    assert [s.cycle for s in got.segments if s.phase == GRASP] == [0, 1]
    assert phases[20] == GRASP and phases[60] == GRASP and phases[35] == PLACE and phases[75] == PLACE


@pytest.mark.parametrize("bad", [None, np.array([]), np.array([0.0, np.nan, 1.0])])
def test_bad_gripper_signal(bad):
    with pytest.raises(GripperSignalError):
        segment_episode(bad, None)


def test_motion_words_match_true_sign(pick_place_episode):
    ep = pick_place_episode(noise=0.0005)
    params = MotionParams()
    words = motion_words(ep.ee_pos, params)
    T = len(words)
    truth = ep.ee_pos[np.minimum(np.arange(T) + params.window, T - 1)] - ep.ee_pos  # (T, 3)
    agree = checked = 0
    for t in range(T):
        signs = parse_words(words[t])
        for axis in range(3):
            if signs[axis] != 0:  # every named direction must have the true sign
                checked += 1
                agree += int(np.sign(truth[t, axis]) == signs[axis])
            if abs(truth[t, axis]) > 2 * params.dead_zone:  # clear motion must be named
                assert signs[axis] == np.sign(truth[t, axis]), (t, words[t], truth[t])
    assert checked > 50 and agree == checked
    assert words[0] == "move forward" and words[25] == "move down" and words[60] == "move left"
    assert words[33] == "stop"  # closing the gripper, arm still


def test_motion_words_combined_and_validation():
    pos = np.cumsum(np.tile([[0.0, -0.01, -0.01]], (10, 1)), axis=0)
    assert motion_words(pos)[0] == "move right and down"
    pos3 = np.cumsum(np.tile([[0.01, 0.01, 0.01]], (10, 1)), axis=0)
    assert motion_words(pos3)[0] == "move forward, left and up"
    with pytest.raises(ValueError):
        motion_words(np.zeros((5, 2)))
