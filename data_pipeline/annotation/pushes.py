"""Push cycles: a closed gripper that holds nothing is a push, not a grasp.

Why: the gripper phases (`segmentation`) cut every closed interval into grasp -> move_to_goal ->
place. A robot closing a drawer or a door, or pushing a plate, closes its fingers on nothing
first and moves them against the thing: there is no grasp and no release, and the closed fingers
travel to it before anything moves. Where the simulator state is known (the `sim` backend replays
it), both are measurable: whether the fingers touch anything but the robot just after they close
(a grasp's do; a push's close in the air), and when the scene's own joints (objects' free joints,
drawers, doors, knobs) start and stop moving. Not the fingers' opening: the Panda's fingers closed
on nothing stop 5.5 mm apart, on a bowl's rim 7.7 mm (libero_10 task 3), too close to tell. A push
cycle is then written

    move_to_object (until the pushed thing moves) | move_to_goal (from then until the fingers open;
    a pause of the thing's motion, when the hand lifts off and hooks anew, is move_to_object) |
    retract (from the open event)

and the cycle is attributed to the thing that moved most.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipeline.annotation.segmentation import (
    MOVE_TO_GOAL,
    MOVE_TO_OBJECT,
    PLACE,
    RETRACT,
    PhaseSegment,
    TemporalAnchors,
)

TOUCH_WINDOW = (6, 16)  # frames after the close event in which a grasp's fingers touch what they hold
# (the Panda's fingers take ~9 frames to close on a bowl's rim)
MIN_PAUSE = 12  # frames: the pushed thing still for fewer than this is one push
MIN_MOVE = 4  # frames: a shorter motion is a nudge (fingers landing in a plate), not a push
MOVE_TOL = 0.005  # m: a scene joint this far from where it was at the close has been moved
STILL_TOL = 5e-4  # m per frame: below this the pushed thing has stopped
HINGE_LEVER = 0.1  # m per rad: a hinge's turn counted as the travel of a point this far from its axis


@dataclasses.dataclass(frozen=True)
class Push:
    moves: tuple[tuple[int, int], ...]  # (first, one past the last) frames the pushed thing moves
    joint: int  # column of the scene joint that moved most


def moving_spans(track: np.ndarray, start: int, gap: int = MIN_PAUSE) -> list[tuple[int, int]]:
    """Frames (absolute: `start` + index) where the per-frame change `track` (L,) exceeds
    `STILL_TOL`, as (first, one past the last) spans; pauses shorter than `gap` frames are bridged,
    then spans shorter than `MIN_MOVE` dropped."""
    spans: list[tuple[int, int]] = []
    for t in np.flatnonzero(track > STILL_TOL):
        if spans and t + start - spans[-1][1] < gap:
            spans[-1] = (spans[-1][0], int(t) + start + 1)
        else:
            spans.append((int(t) + start, int(t) + start + 1))
    return [(a, b) for a, b in spans if b - a >= MIN_MOVE]


def find_pushes(
    close_events: list[int],
    open_events: list[int],
    touching: np.ndarray,
    scene_q: np.ndarray,
    scale: np.ndarray | None = None,
    fixture: np.ndarray | None = None,
) -> dict[int, Push]:
    """Grasp cycle index -> `Push` for the closed intervals whose fingers touch nothing just after
    closing and that move something.

    Args:
        close_events / open_events: the gripper events (`TemporalAnchors`).
        touching: (T,) bool, the fingers touch something that is not the robot.
        scene_q: (T, J) the scene's joint coordinates (a free joint's position, a hinge's or a
            slide's qpos), every joint but the robot's.
        scale: (J,) metres per unit of each column (1 for positions, a lever arm for a hinge's
            radians), so that which thing "moved most" compares like with like; default 1.
        fixture: (J,) bool, the columns of fixtures' joints (drawers, doors, knobs): one that moved
            is the pushed thing before any object (a drawer carries the bowl inside it as far).
    The pushed thing is the joint that moved most (scaled) while the gripper was closed, and the
    push's spans are where it moves (a hand that brushes something else on its way there does not
    start the push; a hand that lifts off and hooks anew, as the plate push does, pauses it).
    """
    T = touching.shape[0]
    scale = np.ones(scene_q.shape[1]) if scale is None else np.asarray(scale, dtype=np.float64)
    out: dict[int, Push] = {}
    for cycle, close in enumerate(close_events):
        end = next((t for t in open_events if t > close), T)  # one past the closed interval
        window = touching[close + TOUCH_WINDOW[0] : min(close + TOUCH_WINDOW[1], end)]
        if not len(window) or window.any() or scene_q.shape[1] == 0:
            continue  # a grasp (or too short to tell)
        moved = np.abs(scene_q[close:end] - scene_q[close]) * scale  # (L, J) m, from where things were
        most = moved.max(axis=0)  # (J,)
        if fixture is not None and np.any(most[fixture] > MOVE_TOL):
            most = np.where(fixture, most, 0.0)
        joint = int(most.argmax())
        if moved[:, joint].max() <= MOVE_TOL:
            continue  # closed on nothing and moved nothing: left as it is
        step = np.abs(np.diff(scene_q[close:end, joint])) * scale[joint]  # (L - 1,): frame t+1 vs t
        spans = moving_spans(step, close + 1)
        if spans:
            out[cycle] = Push(tuple(spans), joint)
    return out


def with_pushes(temporal: TemporalAnchors, pushes: dict[int, Push]) -> TemporalAnchors:
    """`temporal` with each push cycle's frames relabelled: move_to_object until the pushed thing
    moves, move_to_goal while it moves (and from its last move until the fingers open: they still
    press it), move_to_object again across a pause, retract from the open event. The cycle's span
    is unchanged, so are the other cycles."""
    if not pushes:
        return temporal
    segments: list[PhaseSegment] = []
    for cycle in sorted({s.cycle for s in temporal.segments}):
        own = [s for s in temporal.segments if s.cycle == cycle]
        if cycle not in pushes:
            segments += own
            continue
        start, end = own[0].start, own[-1].end
        opened = next((s.start for s in own if s.phase in (PLACE, RETRACT)), end)
        cuts: list[tuple[int, str]] = [(start, MOVE_TO_OBJECT)]
        moves = pushes[cycle].moves
        for i, (first, last) in enumerate(moves):
            cuts.append((first, MOVE_TO_GOAL))
            if i + 1 < len(moves):
                cuts.append((last, MOVE_TO_OBJECT))
        cuts.append((opened, RETRACT))
        bounds = [min(max(a, start), end) for a, _ in cuts] + [end]
        for (_, phase), a, b in zip(cuts, bounds[:-1], bounds[1:]):
            if b > a:
                segments.append(PhaseSegment(a, b, phase, cycle))
    return dataclasses.replace(temporal, segments=segments)
