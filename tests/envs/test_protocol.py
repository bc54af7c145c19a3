"""Unit tests of the LIBERO protocol pieces (no simulator)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.protocol import (
    MAX_STEPS,
    NOOP_ACTION,
    NUM_WAIT_STEPS,
    SUITES,
    Observation,
    binarize_gripper,
    build_state,
    check_suite,
    flip_image,
    gripper_01_to_env,
    gripper_env_to_01,
    max_steps,
    noop_action,
    quat_to_axis_angle,
    validate_action,
)
from lara.utils.errors import LaraUserError


def test_suites_and_step_limits_match_the_standard() -> None:
    assert SUITES == ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
    assert MAX_STEPS == {
        "libero_spatial": 220,
        "libero_object": 280,
        "libero_goal": 300,
        "libero_10": 520,
        "libero_90": 400,
    }
    assert max_steps("libero_10") == 520
    assert NUM_WAIT_STEPS == 10


def test_unknown_suite_names_the_valid_ones() -> None:
    with pytest.raises(LaraUserError, match="libero_spatial"):
        check_suite("libero_100")
    with pytest.raises(LaraUserError):
        max_steps("nope")


def test_noop_keeps_gripper_open_and_is_a_fresh_copy() -> None:
    assert NOOP_ACTION == (0, 0, 0, 0, 0, 0, -1)
    a = noop_action()
    assert a.shape == (7,) and a[-1] == -1.0
    a[0] = 5.0
    assert noop_action()[0] == 0.0


def test_flip_rotates_180_degrees() -> None:
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)  # (H, W, C)
    out = flip_image(img)
    assert out.shape == img.shape and out.flags["C_CONTIGUOUS"]
    assert np.array_equal(out[0, 0], img[-1, -1])
    assert np.array_equal(out[-1, -1], img[0, 0])
    assert np.array_equal(flip_image(out), img)
    with pytest.raises(LaraUserError):
        flip_image(np.zeros(3))


def test_gripper_conversions() -> None:
    # dataset 0 = close, 1 = open  ->  env +1 = close, -1 = open
    assert np.allclose(gripper_01_to_env(np.array([0.0, 1.0, 0.5])), [1.0, -1.0, 0.0])
    assert np.allclose(gripper_env_to_01(np.array([1.0, -1.0])), [0.0, 1.0])
    x = np.linspace(0, 1, 7)
    assert np.allclose(gripper_env_to_01(gripper_01_to_env(x)), x)
    assert np.array_equal(binarize_gripper(np.array([-0.3, 0.0, 0.2])), [-1.0, -1.0, 1.0])
    with pytest.raises(LaraUserError):
        gripper_01_to_env(-1.0)  # already in env convention: refuse instead of converting twice
    with pytest.raises(LaraUserError):
        gripper_env_to_01(np.array([np.nan]))


def test_axis_angle_of_known_rotations() -> None:
    assert np.allclose(quat_to_axis_angle(np.array([0.0, 0.0, 0.0, 1.0])), 0.0)
    half = math.pi / 4  # 90 degrees about z, xyzw
    q = np.array([0.0, 0.0, math.sin(half), math.cos(half)])
    assert np.allclose(quat_to_axis_angle(q), [0.0, 0.0, math.pi / 2])
    # 180 degrees about x (gripper pointing down, as in LIBERO's home pose)
    assert np.allclose(quat_to_axis_angle(np.array([1.0, 0.0, 0.0, 0.0])), [math.pi, 0.0, 0.0])
    with pytest.raises(LaraUserError):
        quat_to_axis_angle(np.zeros(3))
    with pytest.raises(LaraUserError):
        quat_to_axis_angle(np.array([0.0, 0.0, np.inf, 1.0]))


def test_build_state_layout() -> None:
    raw = {
        "robot0_eef_pos": np.array([0.1, 0.2, 0.3]),
        "robot0_eef_quat": np.array([1.0, 0.0, 0.0, 0.0]),
        "robot0_gripper_qpos": np.array([0.04, -0.04]),
    }
    state = build_state(raw)
    assert state.shape == (8,) and state.dtype == np.float32
    assert np.allclose(state, [0.1, 0.2, 0.3, math.pi, 0.0, 0.0, 0.04, -0.04], atol=1e-6)
    with pytest.raises(LaraUserError, match="robot0_gripper_qpos"):
        build_state({k: v for k, v in raw.items() if k != "robot0_gripper_qpos"})


def test_validate_action_rejects_bad_shapes_and_values() -> None:
    assert validate_action(np.zeros(7)).shape == (7,)
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        validate_action(np.zeros(6))
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        validate_action(np.zeros((1, 7)))
    with pytest.raises(ValueError, match="non-finite"):
        validate_action(np.array([0, 0, np.nan, 0, 0, 0, -1.0]))


def test_observation_fields() -> None:
    obs = Observation(images={}, state=np.zeros(8, np.float32), instruction="x", sim_state=None)
    assert obs.images == {} and obs.state.shape == (8,) and obs.sim_state is None
