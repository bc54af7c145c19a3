"""The standard LIBERO evaluation protocol, as small pure pieces.

Every number here is the convention used by OpenVLA-OFT, openpi, GR00T and LaRA-VLA (see
docs/protocol.md). They live in one file so that the evaluator, the data collection and the
scripted expert cannot drift apart: a different step limit or a flipped gripper sign silently
changes a success rate, so nobody should re-type them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lara.utils.errors import LaraUserError

SUITES: tuple[str, ...] = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")

# Max policy steps per suite (after the wait steps). Chosen upstream as ~1.1x the longest
# human demonstration of the suite.
MAX_STEPS: dict[str, int] = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}

# Objects fall and settle during the first steps after an init state is loaded: the protocol
# waits with the no-op action before the policy acts (and these steps do not count).
NUM_WAIT_STEPS: int = 10
# How frames are rendered: standard (robosuite's 4x multisampling, the protocol) or fast (none: ~40%
# cheaper on the CPU renderer, ~9% of pixels differ at edges). Demos and evaluation should match.
RENDER_QUALITIES: tuple[str, ...] = ("standard", "fast")

# Environment gripper convention: -1 = open, +1 = close. The no-op keeps the gripper open.
GRIPPER_OPEN: float = -1.0
GRIPPER_CLOSE: float = 1.0
NOOP_ACTION: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)

ACTION_DIM: int = 7
STATE_DIM: int = 8
CAMERA_NAMES: tuple[str, ...] = ("agentview", "wrist")
# LIBERO / robosuite camera name for each protocol camera name.
ROBOSUITE_CAMERAS: dict[str, str] = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}


@dataclass
class Observation:
    """What a policy sees at one step (docs/interfaces.md)."""

    images: dict[str, np.ndarray]  # {"agentview": (H, W, 3) uint8, "wrist": (H, W, 3) uint8}, upright
    state: np.ndarray  # (8,) float32
    instruction: str
    sim_state: np.ndarray | None  # flattened MuJoCo state (privileged; scripted expert / replay only)


def check_suite(suite: str) -> str:
    """Return `suite` when it is a known LIBERO suite, else raise a LaraUserError naming them."""
    if suite not in SUITES:
        raise LaraUserError(f"unknown LIBERO suite {suite!r}; valid suites: {', '.join(SUITES)}")
    return suite


def check_render_quality(quality: str) -> str:
    """Return `quality` when it is one of RENDER_QUALITIES, else raise a LaraUserError naming them."""
    if quality not in RENDER_QUALITIES:
        raise LaraUserError(f"--render_quality {quality!r}: choose one of {', '.join(RENDER_QUALITIES)}")
    return quality


def parse_task_ids(spec: str, n_tasks: int) -> list[int]:
    """`"all"` or comma-separated ids like `"0,3"` -> sorted unique task ids, checked against the suite."""
    if spec.strip() == "all":
        return list(range(n_tasks))
    try:
        tasks = [int(tok) for tok in spec.split(",") if tok.strip()]
    except ValueError:
        raise LaraUserError(
            f"--tasks must be 'all' or comma-separated integers like 0,3; got {spec!r}"
        ) from None
    if not tasks or any(not 0 <= t < n_tasks for t in tasks):
        raise LaraUserError(f"--tasks {spec!r}: valid task ids are 0..{n_tasks - 1}")
    return sorted(set(tasks))


def max_steps(suite: str) -> int:
    """Policy step limit for `suite` (the wait steps are not counted)."""
    return MAX_STEPS[check_suite(suite)]


def noop_action() -> np.ndarray:
    """A fresh (7,) float64 no-op action (gripper open), safe to mutate."""
    return np.asarray(NOOP_ACTION, dtype=np.float64)


def flip_image(img: np.ndarray) -> np.ndarray:
    """Rotate an (H, W, C) MuJoCo render by 180 degrees (it comes upside down), contiguous."""
    if img.ndim < 2:
        raise LaraUserError(f"flip_image expects an (H, W[, C]) image, got shape {img.shape}")
    return np.ascontiguousarray(img[::-1, ::-1])


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """(4,) quaternion in robosuite's (x, y, z, w) order -> (3,) axis-angle (float64).

    Same formula as robosuite's `quat2axisangle` (used to build the official datasets' state),
    including its choice of not canonicalising w >= 0, so states match the datasets bit for bit.
    """
    q = np.asarray(quat, dtype=np.float64)
    if q.shape != (4,):
        raise LaraUserError(f"quaternion must have shape (4,), got {q.shape}")
    if not np.all(np.isfinite(q)):
        raise LaraUserError(f"quaternion has non-finite values: {q}")
    w = float(np.clip(q[3], -1.0, 1.0))
    den = math.sqrt(1.0 - w * w)
    if math.isclose(den, 0.0):
        return np.zeros(3, dtype=np.float64)
    return q[:3] * 2.0 * math.acos(w) / den


def build_state(raw_obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """robosuite observation dict -> (8,) float32 `[eef_pos(3), axis_angle(3), gripper_qpos(2)]`."""
    try:
        pos = np.asarray(raw_obs["robot0_eef_pos"], dtype=np.float64)  # (3,)
        quat = np.asarray(raw_obs["robot0_eef_quat"], dtype=np.float64)  # (4,) xyzw
        grip = np.asarray(raw_obs["robot0_gripper_qpos"], dtype=np.float64)  # (2,)
    except KeyError as err:
        raise LaraUserError(
            f"raw observation lacks {err}; expected robosuite's robot0_* proprio keys"
        ) from err
    state = np.concatenate([pos, quat_to_axis_angle(quat), grip])  # (8,)
    if state.shape != (STATE_DIM,):
        raise LaraUserError(f"state must have {STATE_DIM} values, got shape {state.shape}")
    return state.astype(np.float32)


def gripper_01_to_env(g: np.ndarray | float) -> np.ndarray:
    """Dataset gripper in [0, 1] with 0 = close, 1 = open -> env convention -1 = open, +1 = close.

    Linear map `1 - 2 g` (0 -> +1 close, 1 -> -1 open, 0.5 -> 0); values outside [0, 1] are an error
    because they mean the data uses another convention.
    """
    arr = np.asarray(g, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0.0) or np.any(arr > 1.0):
        raise LaraUserError(f"gripper values must be finite and in [0, 1] (0 = close, 1 = open), got {arr}")
    return 1.0 - 2.0 * arr


def gripper_env_to_01(g: np.ndarray | float) -> np.ndarray:
    """Env gripper in [-1, 1] (-1 = open, +1 = close) -> [0, 1] with 0 = close, 1 = open."""
    arr = np.asarray(g, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < -1.0) or np.any(arr > 1.0):
        raise LaraUserError(
            f"gripper values must be finite and in [-1, 1] (-1 = open, +1 = close), got {arr}"
        )
    return (1.0 - arr) / 2.0


def binarize_gripper(g: np.ndarray | float) -> np.ndarray:
    """Env-convention gripper -> exactly -1 (open) or +1 (close); 0 counts as open."""
    arr = np.asarray(g, dtype=np.float64)
    return np.where(arr > 0.0, GRIPPER_CLOSE, GRIPPER_OPEN)


def validate_action(action: np.ndarray) -> np.ndarray:
    """Return `action` as a (7,) float64 array, or raise ValueError saying what is wrong."""
    arr = np.asarray(action, dtype=np.float64)
    if arr.shape != (ACTION_DIM,):
        raise ValueError(
            f"action must have shape ({ACTION_DIM},) [dx, dy, dz, dax, day, daz, gripper], got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"action has non-finite values: {arr}")
    return arr
