"""Motion words ("move left and down") from end-effector position deltas.

Why a forward window with a dead zone: the MOVE tag tells the policy what the arm is about to do,
so the word at frame t describes the displacement from t to t + window (clamped at the end of the
episode), summed over a few frames so that one noisy step does not flip a word; axes whose
displacement is inside the dead zone are left out, so hovering and tiny corrections read "stop"
rather than a random direction.

Directions are in the robot's frame as LIBERO/robosuite report `ee_pos` (world frame, robot
base facing +x): +x forward (away from the robot), +y left, +z up. The agentview camera faces
the robot, so the robot's left is the image's right; words follow the robot (as ECoT does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AXIS_WORDS: tuple[tuple[str, str], ...] = (("forward", "backward"), ("left", "right"), ("up", "down"))
STOP = "stop"


@dataclass(frozen=True)
class MotionParams:
    window: int = 4  # frames ahead
    dead_zone: float = 0.008  # metres of displacement over the window below which an axis is still
    dominance: float = 0.0  # drop axes whose displacement is below this fraction of the largest (0 = keep)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"motion window must be >= 1, got {self.window}")
        if self.dead_zone < 0 or not 0 <= self.dominance < 1:
            raise ValueError("dead_zone must be >= 0 and dominance in [0, 1)")


def displacements(ee_pos: np.ndarray, window: int) -> np.ndarray:
    """(T, 3) displacement from frame t to min(t + window, T - 1)."""
    pos = np.asarray(ee_pos, dtype=np.float64)  # (T, 3)
    T = pos.shape[0]
    ahead = np.minimum(np.arange(T) + window, T - 1)  # (T,)
    return pos[ahead] - pos


def direction_signs(delta: np.ndarray, params: MotionParams) -> np.ndarray:
    """(T, 3) in {-1, 0, +1}: sign of each axis' displacement, 0 inside the dead zone."""
    mag = np.abs(delta)  # (T, 3)
    signs = np.sign(delta).astype(np.int64)
    signs[mag < params.dead_zone] = 0
    if params.dominance > 0:
        top = mag.max(axis=1, keepdims=True)  # (T, 1)
        signs[mag < params.dominance * top] = 0
    return signs


def words_from_signs(signs: np.ndarray) -> str:
    """(3,) signs -> "move forward, left and down" / "stop"."""
    parts = [AXIS_WORDS[axis][0 if s > 0 else 1] for axis, s in enumerate(signs) if s != 0]
    if not parts:
        return STOP
    if len(parts) == 1:
        return f"move {parts[0]}"
    return "move " + ", ".join(parts[:-1]) + " and " + parts[-1]


def motion_words(ee_pos: np.ndarray, params: MotionParams | None = None) -> list[str]:
    """One motion phrase per frame."""
    params = params or MotionParams()
    pos = np.asarray(ee_pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] == 0:
        raise ValueError(f"ee_pos must be (T, 3) with T > 0, got {pos.shape}")
    if not np.isfinite(pos).all():
        raise ValueError("ee_pos has NaN/inf")
    signs = direction_signs(displacements(pos, params.window), params)  # (T, 3)
    return [words_from_signs(s) for s in signs]


def parse_words(text: str) -> np.ndarray:
    """Inverse of `words_from_signs` (for tests and checks): "move left and down" -> (3,) signs."""
    signs = np.zeros(3, dtype=np.int64)
    for axis, (pos_word, neg_word) in enumerate(AXIS_WORDS):
        tokens = text.replace(",", " ").split()
        if pos_word in tokens:
            signs[axis] = 1
        elif neg_word in tokens:
            signs[axis] = -1
    return signs


def motion_agreement(ee_pos: np.ndarray, move_texts: list[str], window: int) -> tuple[int, int]:
    """(axes named, axes whose word agrees with the sign of the true displacement over `window`).

    `move_texts[t]` is frame t's MOVE segment; the annotator's accuracy check (tests and
    benchmarks/annotation_accuracy.py) is `agree == named`.
    """
    truth = displacements(ee_pos, window)  # (T, 3)
    named = agree = 0
    for t, text in enumerate(move_texts):
        signs = parse_words(text)
        for axis in np.flatnonzero(signs):
            named += 1
            agree += int(np.sign(truth[t, axis]) == signs[axis])
    return named, agree
