"""Temporal anchors: phases of an episode from its gripper signal.

Why the gripper: in pick-and-place demonstrations the gripper closing and opening are the most
reliable events in the whole recording (a binary command, or a finger opening with a clear
step), and every phase a person would name hangs off them: before the first close the arm moves
to the object, the close is the grasp, between close and open the object is carried to the goal,
the open is the placement, and after it the arm retracts. So the signal is smoothed (a median
filter keeps step edges where they are, unlike a moving average), binarised with hysteresis (two
thresholds, so noise around one threshold does not chatter), cleaned of blips shorter than a
few frames, and the open->close / close->open events cut the episode into phases:

    move_to_object | grasp | move_to_goal | place | retract | (next cycle: move_to_object ...)

`grasp` runs from the close event until the end effector starts moving again (the lift): the first
frame whose next two steps are faster than `settle_speed` on average, or that is `settle_dist` away
from where it closed, at most `max_settle_frames` later; `place` likewise from the open event. A
speed test and not only a distance: controllers keep settling by several millimetres while the fingers close,
which a distance threshold alone mistakes for the lift.
An episode with no events at all is one `execute` phase. A quality flag records when the events do
not match what the task needs (e.g. a pick-and-place episode without exactly one grasp).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MOVE_TO_OBJECT = "move_to_object"
GRASP = "grasp"
MOVE_TO_GOAL = "move_to_goal"
PLACE = "place"
RETRACT = "retract"
EXECUTE = "execute"
PHASES: tuple[str, ...] = (MOVE_TO_OBJECT, GRASP, MOVE_TO_GOAL, PLACE, RETRACT, EXECUTE)


class GripperSignalError(ValueError):
    """The episode has no usable gripper signal (missing, wrong shape, non-finite, constant NaN)."""


@dataclass(frozen=True)
class SegmentationParams:
    smooth_window: int = 5  # median filter width (odd, frames)
    close_threshold: float = 0.5  # normalised closedness above which the gripper counts as closed
    open_threshold: float = -0.5  # ... below which it counts as open again (hysteresis)
    min_closed_frames: int = 3  # shorter closed blips are dropped
    min_open_frames: int = 3  # shorter open gaps between two closes are bridged (re-grasp bounce)
    settle_speed: float = 0.004  # m/frame: grasp/place end when the end effector moves faster than this ...
    settle_dist: float = 0.015  # ... or has moved this far (m) from where the gripper closed/opened
    max_settle_frames: int = 20
    min_opening_range: float = 1e-3  # an "opening" signal must vary at least this much to have events

    def __post_init__(self) -> None:
        if self.smooth_window < 1 or self.smooth_window % 2 == 0:
            raise ValueError(f"smooth_window must be odd and >= 1, got {self.smooth_window}")
        if not self.open_threshold < self.close_threshold:
            raise ValueError("open_threshold must be below close_threshold (hysteresis)")
        if self.min_closed_frames < 1 or self.min_open_frames < 1 or self.max_settle_frames < 1:
            raise ValueError("min_closed_frames, min_open_frames and max_settle_frames must be >= 1")
        if self.settle_dist < 0 or self.settle_speed < 0:
            raise ValueError("settle_dist and settle_speed must be >= 0")


@dataclass
class PhaseSegment:
    start: int  # first frame
    end: int  # one past the last frame
    phase: str
    cycle: int  # index of the grasp cycle this phase belongs to (0-based)

    def to_json(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "phase": self.phase, "cycle": self.cycle}


@dataclass
class TemporalAnchors:
    closed: np.ndarray  # (T,) bool, hysteresis state after cleaning
    close_events: list[int]  # frames where the gripper becomes closed
    open_events: list[int]  # frames where it becomes open again
    segments: list[PhaseSegment]
    flags: list[str] = field(default_factory=list)

    @property
    def num_grasps(self) -> int:
        return len(self.close_events)

    def phase_per_frame(self) -> list[str]:
        out: list[str] = []
        for seg in self.segments:
            out.extend([seg.phase] * (seg.end - seg.start))
        return out

    def segment_at(self) -> list[int]:
        """(T,) index into `segments` for every frame."""
        out: list[int] = []
        for i, seg in enumerate(self.segments):
            out.extend([i] * (seg.end - seg.start))
        return out


def closedness(gripper: np.ndarray | None, kind: str, params: SegmentationParams) -> np.ndarray:
    """Map a gripper signal to closedness in [-1, 1] (+1 closed); raises GripperSignalError."""
    if gripper is None:
        raise GripperSignalError("episode has no gripper signal")
    g = np.asarray(gripper, dtype=np.float64).reshape(-1)  # (T,)
    if g.size == 0:
        raise GripperSignalError("gripper signal is empty")
    if not np.isfinite(g).all():
        raise GripperSignalError(
            f"gripper signal has NaN/inf at frame {int(np.argwhere(~np.isfinite(g))[0][0])}"
        )
    if kind == "command":
        return np.clip(g, -1.0, 1.0)
    if kind == "opening":
        lo, hi = float(g.min()), float(g.max())
        if hi - lo < params.min_opening_range:
            return np.full_like(g, -1.0)  # never changes: treated as open throughout
        return 1.0 - 2.0 * (g - lo) / (hi - lo)
    raise GripperSignalError(f"unknown gripper_kind {kind!r} (expected 'command' or 'opening')")


def median_smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Odd-width median filter with edge padding (keeps step edges in place)."""
    if window <= 1 or x.size < 2:
        return x.copy()
    half = window // 2
    padded = np.pad(x, half, mode="edge")  # (T + 2 * half,)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)  # (T, window)
    return np.median(windows, axis=1)


def hysteresis(x: np.ndarray, close_thr: float, open_thr: float) -> np.ndarray:
    """(T,) bool closed state: switches on above close_thr, off below open_thr; starts from x[0]."""
    closed = np.zeros(x.shape[0], dtype=bool)
    state = bool(x[0] > (close_thr + open_thr) / 2.0)
    for t, v in enumerate(x):
        if not state and v > close_thr:
            state = True
        elif state and v < open_thr:
            state = False
        closed[t] = state
    return closed


def _runs(mask: np.ndarray) -> list[tuple[bool, int, int]]:
    """Run-length encoding: [(value, start, end_exclusive), ...]."""
    out: list[tuple[bool, int, int]] = []
    start = 0
    for t in range(1, mask.shape[0] + 1):
        if t == mask.shape[0] or mask[t] != mask[start]:
            out.append((bool(mask[start]), start, t))
            start = t
    return out


def clean_blips(closed: np.ndarray, min_closed: int, min_open: int) -> np.ndarray:
    """Bridge short open gaps between closes, then drop short closed blips (first/last run kept)."""
    out = closed.copy()
    runs = _runs(out)
    for i, (val, s, e) in enumerate(runs):
        if not val and 0 < i < len(runs) - 1 and e - s < min_open:
            out[s:e] = True
    runs = _runs(out)
    for val, s, e in runs:
        interior = 0 < s and e < out.shape[0]
        if val and e - s < min_closed and (interior or len(runs) > 1):
            out[s:e] = False
    return out


def _settle_end(ee_pos: np.ndarray | None, start: int, limit: int, params: SegmentationParams) -> int:
    """First frame after `start` where the end effector starts moving (capped); >= start + 1."""
    cap = min(limit, start + params.max_settle_frames)
    if ee_pos is None:
        return max(start + 1, min(cap, start + params.max_settle_frames // 2))
    ref = ee_pos[start]
    last = ee_pos.shape[0] - 1
    for t in range(start + 1, cap):
        step = float(np.linalg.norm(ee_pos[min(t + 2, last)] - ee_pos[t])) / 2.0  # mean speed over 2 steps
        if step > params.settle_speed or float(np.linalg.norm(ee_pos[t] - ref)) > params.settle_dist:
            return t
    return max(start + 1, cap)


def segment_episode(
    gripper: np.ndarray | None,
    ee_pos: np.ndarray | None = None,
    kind: str = "command",
    params: SegmentationParams | None = None,
    expected_grasps: int | None = None,
) -> TemporalAnchors:
    """Phases of one episode from its gripper signal (see the module docstring).

    Args:
        gripper: (T,) gripper signal; `kind` says its convention.
        ee_pos: (T, 3) end-effector positions, used to find where grasp/place end; optional.
        expected_grasps: grasps the task needs (from the instruction), for the quality flag.
    Raises:
        GripperSignalError: no usable signal (the runner records a skip; never an empty annotation).
    """
    params = params or SegmentationParams()
    x = closedness(gripper, kind, params)  # (T,)
    T = x.shape[0]
    pos = None if ee_pos is None else np.asarray(ee_pos, dtype=np.float64).reshape(T, 3)  # (T, 3)
    closed = clean_blips(
        hysteresis(median_smooth(x, params.smooth_window), params.close_threshold, params.open_threshold),
        params.min_closed_frames,
        params.min_open_frames,
    )
    close_events = [t for t in range(1, T) if closed[t] and not closed[t - 1]]
    open_events = [t for t in range(1, T) if not closed[t] and closed[t - 1]]
    flags: list[str] = []
    if closed[0]:
        flags.append("starts_closed")
    segments = _phases(T, closed, close_events, open_events, pos, params)
    if expected_grasps is not None and len(close_events) != expected_grasps:
        flags.append(f"grasp_count_mismatch: expected {expected_grasps}, found {len(close_events)}")
    if expected_grasps and closed[-1]:
        flags.append("ends_closed")
    return TemporalAnchors(
        closed=closed, close_events=close_events, open_events=open_events, segments=segments, flags=flags
    )


def _phases(
    T: int,
    closed: np.ndarray,
    closes: list[int],
    opens: list[int],
    pos: np.ndarray | None,
    params: SegmentationParams,
) -> list[PhaseSegment]:
    """Cut [0, T) at the events into named phases (contiguous, covering every frame)."""
    if not closes and not opens:
        return [PhaseSegment(0, T, EXECUTE, 0)]
    cuts: list[tuple[int, str]] = []  # (start frame, phase), in time order
    cycle_of: list[int] = []
    cycle = 0
    if closed[0]:
        cuts.append((0, MOVE_TO_GOAL))  # already holding something at the start
        cycle_of.append(0)
    else:
        cuts.append((0, MOVE_TO_OBJECT))
        cycle_of.append(0)
    events = sorted([(t, "close") for t in closes] + [(t, "open") for t in opens])
    for i, (t, kind) in enumerate(events):
        nxt = events[i + 1][0] if i + 1 < len(events) else T
        settle = _settle_end(pos, t, nxt, params)
        if kind == "close":
            if cuts[-1][1] in (
                RETRACT,
                PLACE,
            ):  # a new cycle: the retract ends where the next approach begins
                cycle += 1
                approach_start = _approach_start(cuts[-1][0], t)
                cuts.append((approach_start, MOVE_TO_OBJECT))
                cycle_of.append(cycle)
            cuts.append((t, GRASP))
            cycle_of.append(cycle)
            if settle < nxt:
                cuts.append((settle, MOVE_TO_GOAL))
                cycle_of.append(cycle)
        else:
            cuts.append((t, PLACE))
            cycle_of.append(cycle)
            if settle < nxt:
                cuts.append((settle, RETRACT))
                cycle_of.append(cycle)
    segs: list[PhaseSegment] = []
    for i, (start, phase) in enumerate(cuts):
        end = cuts[i + 1][0] if i + 1 < len(cuts) else T
        if end > start:
            segs.append(PhaseSegment(start, end, phase, cycle_of[i]))
    return segs


def _approach_start(retract_start: int, close_t: int) -> int:
    """Between one release and the next grasp: the first third retracts, the rest approaches.

    Without object positions there is no event that separates them; the split only changes the
    wording (retract vs move to the next object), not the event boundaries.
    """
    return (
        retract_start + max(1, (close_t - retract_start) // 3)
        if close_t - retract_start > 1
        else retract_start
    )
