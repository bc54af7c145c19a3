"""Push cycles (`data_pipeline.annotation.pushes`): a closed gripper that touches nothing when it
closes and then moves a scene joint is a push, written move_to_object | move_to_goal | retract."""

from __future__ import annotations

import numpy as np

from data_pipeline.annotation.pushes import MIN_MOVE, Push, find_pushes, moving_spans, with_pushes
from data_pipeline.annotation.segmentation import (
    GRASP,
    MOVE_TO_GOAL,
    MOVE_TO_OBJECT,
    PLACE,
    RETRACT,
    segment_episode,
)


def _episode(T: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A grasp cycle (close 20, open 60: the fingers touch a cup from 27) and a push cycle (close 90,
    open 170: the fingers touch nothing until 120, a drawer slides 10 cm from 120 to 140 and is
    pressed until 170), with a bystander object the hand brushes at 100."""
    gripper = -np.ones(T)
    gripper[20:60] = 1.0
    gripper[90:170] = 1.0
    touching = np.zeros(T, dtype=bool)
    touching[27:60] = True
    touching[120:170] = True
    scene = np.zeros((T, 2))  # (T, J): column 0 the drawer's slide, column 1 a bottle's x
    scene[120:140, 0] = np.linspace(0.005, 0.1, 20)
    scene[140:, 0] = 0.1
    scene[100:103, 1] = [0.002, 0.004, 0.006]  # brushed: 6 mm
    scene[103:, 1] = 0.006
    ee = np.zeros((T, 3))
    ee[:, 0] = np.linspace(0.0, 1.0, T)  # always moving: grasp / place end at once
    return gripper, touching, scene, ee


def test_a_closed_gripper_that_touches_nothing_and_moves_a_drawer_is_a_push() -> None:
    gripper, touching, scene, ee = _episode()
    temporal = segment_episode(gripper, ee)
    assert temporal.close_events == [20, 90] and temporal.open_events == [60, 170]
    pushes = find_pushes(temporal.close_events, temporal.open_events, touching, scene)
    assert list(pushes) == [1]  # the first cycle's fingers touched what they closed on: a grasp
    assert pushes[1].joint == 0 and pushes[1].moves == ((120, 140),)  # the drawer, not the bottle
    # without touch, a closed interval that moves nothing is left alone
    still = find_pushes(temporal.close_events, temporal.open_events, np.zeros(200, bool), np.zeros((200, 2)))
    assert still == {}

    relabelled = with_pushes(temporal, pushes)
    phases = [(s.start, s.phase) for s in relabelled.segments if s.cycle == 1]
    assert phases == [(phases[0][0], MOVE_TO_OBJECT), (120, MOVE_TO_GOAL), (170, RETRACT)]
    assert [s.phase for s in relabelled.segments if s.cycle == 0][:3] == [MOVE_TO_OBJECT, GRASP, MOVE_TO_GOAL]
    assert PLACE in [s.phase for s in relabelled.segments if s.cycle == 0]
    assert len(relabelled.phase_per_frame()) == 200 and with_pushes(temporal, {}) is temporal


def test_a_push_that_lifts_off_and_hooks_anew_pauses_and_nudges_are_not_pushes() -> None:
    track = np.zeros(130)
    track[10:40] = 0.002  # moving
    track[45:50] = 0.002  # after a 5-frame pause: the same push
    track[70:90] = 0.002  # after a 20-frame pause: a second push
    track[120:122] = 0.002  # a 2-frame nudge, well apart
    assert moving_spans(track, 100) == [(110, 150), (170, 190)]
    assert MIN_MOVE > 2
    gripper, _, _, ee = _episode()
    temporal = segment_episode(gripper, ee)
    relabelled = with_pushes(temporal, {1: Push(((110, 125), (150, 160)), 0)})
    phases = [(s.start, s.phase) for s in relabelled.segments if s.cycle == 1]
    assert [p for _, p in phases] == [MOVE_TO_OBJECT, MOVE_TO_GOAL, MOVE_TO_OBJECT, MOVE_TO_GOAL, RETRACT]
    assert [t for t, _ in phases][1:] == [110, 125, 150, 170]


def test_a_pushed_drawer_is_the_pushed_thing_though_the_bowl_inside_moved_as_far() -> None:
    gripper, touching, _, ee = _episode()
    temporal = segment_episode(gripper, ee)
    scene = np.zeros((200, 2))  # column 0 a bowl's x (it rides in the drawer), column 1 the drawer's slide
    scene[120:140, 0] = scene[120:140, 1] = np.linspace(0.005, 0.1, 20)
    scene[140:] = 0.1
    scene[120:140, 0] += 0.002  # the bowl even a little further
    assert find_pushes(temporal.close_events, temporal.open_events, touching, scene)[1].joint == 0
    fixture = np.array([False, True])
    assert (
        find_pushes(temporal.close_events, temporal.open_events, touching, scene, None, fixture)[1].joint == 1
    )
