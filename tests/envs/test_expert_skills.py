"""The skills' pure geometry (envs.expert_skills): no simulator."""

from __future__ import annotations

import math

import numpy as np

from envs.expert_skills.articulated import handle_box
from envs.expert_skills.command import facing_rotation
from envs.expert_skills.knob import narrowest_yaw
from envs.expert_skills.push import disc_clearance, push_path


def test_facing_rotation_points_the_fingers_along_the_direction_with_a_vertical_closing_axis() -> None:
    rot = facing_rotation(np.array([0.0, -2.0, 0.3]))  # the vertical part is dropped
    assert np.allclose(rot @ rot.T, np.eye(3)) and np.isclose(np.linalg.det(rot), 1.0)
    assert np.allclose(rot[:, 2], [0.0, -1.0, 0.0])  # fingers (eef z) into the cabinet
    assert np.allclose(rot[:, 0], [0.0, 0.0, 1.0])  # closing axis vertical


def test_handle_box_is_the_geom_reaching_furthest_out() -> None:
    # a drawer front (y up to -0.16), two posts (to -0.145) and the bar (to -0.13), opening to +y
    boxes = np.array(
        [
            [[-0.08, -0.17, 0.98], [0.13, -0.16, 1.05]],
            [[-0.01, -0.166, 1.01], [0.0, -0.145, 1.02]],
            [[0.055, -0.166, 1.01], [0.065, -0.145, 1.02]],
            [[-0.017, -0.145, 1.007], [0.072, -0.13, 1.024]],
        ]
    )
    signs = np.array([[i // 4, (i // 2) % 2, i % 2] for i in range(8)])  # (8, 3) lo / hi picks
    corners = np.where(signs[None] == 1, boxes[:, 1:2], boxes[:, 0:1])  # (4, 8, 3)
    lo, hi = handle_box(corners, np.array([0.0, 1.0, 0.0]))
    assert np.allclose(lo, boxes[3, 0]) and np.allclose(hi, boxes[3, 1])
    lo, hi = handle_box(corners, np.array([0.0, -1.0, 0.0]))  # the other way: the drawer's back
    assert np.isclose(lo[1], -0.17)


def test_narrowest_yaw_grasps_a_ridge_across() -> None:
    # a ridge 9 cm long along x, 2.4 cm wide in y, then the same turned by 30 degrees
    corners = np.array([[x, y, z] for x in (-0.045, 0.045) for y in (-0.012, 0.012) for z in (0.9, 0.95)])
    yaw, width = narrowest_yaw(corners)
    assert math.isclose(yaw, math.pi / 2, abs_tol=1e-6) and math.isclose(width, 0.024, abs_tol=1e-6)
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    turned = corners @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    yaw, width = narrowest_yaw(turned)
    assert math.isclose(yaw, math.pi / 2 + math.pi / 6, abs_tol=1e-6) and width < 0.025


def test_disc_clearance_is_the_gap_to_the_nearest_box_minus_the_radius() -> None:
    box = np.array([[[0.0, 0.0], [0.1, 0.1]]])  # (1, 2, 2)
    assert math.isclose(disc_clearance(np.array([[0.2, 0.05]]), 0.05, box), 0.05)
    assert disc_clearance(np.array([[0.05, 0.05]]), 0.01, box) < -0.05  # inside: negative
    assert disc_clearance(np.array([[0.0, 0.0]]), 0.05, np.zeros((0, 2, 2))) == math.inf


def test_push_path_goes_around_a_box_between_start_and_region() -> None:
    start, lo, hi = np.array([0.0, 0.0]), np.array([-0.35, 0.25]), np.array([-0.25, 0.35])
    free = push_path(start, lo, hi, 0.05, np.zeros((0, 2, 2)))
    assert len(free) == 1 and np.all(free[0] >= lo) and np.all(free[0] <= hi)  # straight in
    block = np.array([[[-0.2, 0.1], [-0.1, 0.2]]])  # on the straight line
    path = push_path(start, lo, hi, 0.05, block)
    assert len(path) == 2 and np.all(path[-1] >= lo) and np.all(path[-1] <= hi)
    assert math.isclose(path[0][0], 0.0)  # an L: along y first, then along x above the box
    t = np.linspace(0.0, 1.0, 40)[:, None]  # (40, 1)
    legs = [a + t * (b - a) for a, b in zip([start, path[0]], path)]  # 2 x (40, 2)
    assert disc_clearance(np.concatenate(legs), 0.05, block) >= 0.005
    # the goal nearest the start, (-0.27, 0.27), is out of the arm's reach: a farther one
    base = np.array([-0.3, 0.6])
    far = push_path(start, lo, hi, 0.05, np.zeros((0, 2, 2)), base=base, reach=0.3)
    assert np.linalg.norm(far[-1] - base) <= 0.3 and np.linalg.norm(free[0] - base) > 0.3


def _box_corners(lo: list[float], hi: list[float]) -> np.ndarray:
    """(8, 3) corners of an axis-aligned box."""
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def test_a_moka_pot_is_grasped_across_its_lid_knob_and_a_bowl_at_its_rim() -> None:
    from envs.expert_config import ExpertConfig
    from envs.grasp_planning import plan_grasp, top_knob
    from envs.scene_geometry import OrientedBoxes

    cfg = ExpertConfig()
    # libero_10's moka pot at the origin: an 8 x 6.6 cm body up to 1.033, spout and handle along y,
    # and a 1.1 x 1.2 cm knob up to 1.052 on the lid
    pot = np.concatenate(
        [
            _box_corners([-0.041, -0.033, 0.9], [0.041, 0.033, 1.033]),
            _box_corners([-0.017, 0.03, 0.984], [0.018, 0.056, 1.033]),  # spout
            _box_corners([-0.006, -0.092, 0.96], [0.007, -0.035, 1.034]),  # handle
            _box_corners([-0.0055, -0.006, 1.029], [0.0055, 0.006, 1.052]),  # knob
        ]
    )
    knob = top_knob(pot, cfg)
    assert knob is not None and len(knob[0]) == 8 and np.isclose(knob[0][:, 2].max(), 1.052)
    assert 1.034 + 0.013 < knob[1] < 1.052  # the fingertips above the lid, the pads on the knob
    none = OrientedBoxes(np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros((0, 3)))
    base, place = np.array([-0.6, 0.0]), np.array([-0.05, -0.2])
    plan = plan_grasp(pot, none, 0.0, cfg, np.zeros(2), place, base)
    assert not plan.rim and plan.width < 0.02 and np.allclose(plan.point, [0.0, 0.0, knob[1]], atol=1e-9)
    # a bowl: its topmost geoms are the whole rim, too wide for a knob: a rim grasp, as before
    ring = [(0.05 * np.cos(a), 0.05 * np.sin(a)) for a in np.radians(np.arange(0, 360, 45))]
    bowl = np.concatenate(
        [_box_corners([x - 0.006, y - 0.006, 0.9], [x + 0.006, y + 0.006, 0.95]) for x, y in ring]
        + [_box_corners([-0.03, -0.03, 0.9], [0.03, 0.03, 0.91])]
    )
    assert top_knob(bowl, cfg) is None and plan_grasp(bowl, none, 0.0, cfg, np.zeros(2), place, base).rim


def test_a_drawer_is_pushed_with_the_fingertips_leading_and_beside_its_neighbours() -> None:
    from envs.expert_skills.drawer_push import PITCH, push_offset, pushing_rotation

    rot = pushing_rotation(np.array([0.0, 1.0, 0.0]), np.eye(3), PITCH)
    assert np.allclose(rot @ rot.T, np.eye(3)) and np.isclose(np.linalg.det(rot), 1.0)
    assert abs(rot[2, 0]) < 1e-9  # closing axis horizontal, across the push
    assert rot[1, 2] > 0.5 and rot[2, 2] < -0.5  # fingers down and toward the drawer
    bar = (-0.039, 0.05)  # libero_10 task 3's bottom handle along x
    assert np.isclose(push_offset(bar, np.zeros((0, 2))), np.mean(bar))
    assert np.isclose(push_offset(bar, np.array([[-0.3, -0.25]])), np.mean(bar), atol=0.012)  # far: middle
    s = push_offset(bar, np.array([[-0.12, -0.08]]))  # a bottle close on the left: push right of middle
    assert s > np.mean(bar) + 0.02 and s <= bar[1] - 0.01


def test_the_part_of_a_mug_facing_an_opening_is_its_handle_and_the_hand_spans_its_closing_axis() -> None:
    from envs.expert_skills.drawer_push import HAND_HALF_WIDTH
    from envs.expert_skills.enclosure import (
        HAND_BOTTOM,
        HAND_HALF_THICKNESS,
        HAND_TOP,
        hand_points,
        handle_boxes,
    )

    inward = np.array([0.0, 1.0, 0.0])  # the opening is at +y: the mug's -y side faces it
    wall = [[-0.046, -0.046, 0.9], [0.046, 0.046, 1.0]]  # the cup
    bar = [[-0.004, -0.095, 0.93], [0.004, -0.087, 0.99]]  # the handle's outer bar
    arm = [[-0.004, -0.092, 0.97], [0.004, -0.046, 0.99]]  # its top arm, from the cup to the bar
    boxes = np.array([wall, bar, arm])  # (3, 2, 3)
    np.testing.assert_array_equal(handle_boxes(boxes, inward), boxes[1:])
    assert len(handle_boxes(boxes, -inward)) == 0  # from the other side: the cup, 9 cm deep, is no handle
    side = np.array([-1.0, 0.0, 0.0])
    pts = hand_points(np.array([0.1, 0.2, 1.0]), side, inward)
    np.testing.assert_allclose(
        pts.min(axis=0), [0.1 - HAND_HALF_WIDTH, 0.2 - HAND_HALF_THICKNESS, 1.0 + HAND_BOTTOM]
    )
    np.testing.assert_allclose(
        pts.max(axis=0), [0.1 + HAND_HALF_WIDTH, 0.2 + HAND_HALF_THICKNESS, 1.0 + HAND_TOP]
    )


def test_the_wrist_turns_the_way_its_last_joint_can_follow() -> None:
    from types import SimpleNamespace

    from envs.expert_skills.command import wrist_safe_yaw
    from envs.grasp_planning import topdown_rotation

    def env_with_wrist(q7: float):
        model = SimpleNamespace(
            _model=SimpleNamespace(jnt_range=np.array([[-2.8973, 2.8973]])),
            joint_name2id=lambda name: 0,
            get_joint_qpos_addr=lambda name: 0,
        )
        sim = SimpleNamespace(model=model, data=SimpleNamespace(qpos=np.array([q7])))
        return SimpleNamespace(
            sim=sim, raw_env=SimpleNamespace(robots=[SimpleNamespace(robot_joints=["j7"])])
        )

    hand = topdown_rotation(0.0)
    door = math.radians(-84.0)  # libero_10's microwave door, 84 degrees open: the closing axis along it
    # the nearer yaw (-84) would turn the last joint from 1.84 past its 2.90 limit: the other end (96)
    assert math.isclose(wrist_safe_yaw(env_with_wrist(1.84), hand, door), door + math.pi)
    assert math.isclose(wrist_safe_yaw(env_with_wrist(-1.84), hand, door), door)  # room that way: nearest
    # ... and after the door's further turn of 84 degrees toward shut, the joint must still be in range
    assert math.isclose(wrist_safe_yaw(env_with_wrist(-1.84), hand, door, turn=-door), door)
    # a turn of 2.3 rad from -0.53 would end past -2.65: the hand goes round the other way, by -264 degrees
    assert math.isclose(wrist_safe_yaw(env_with_wrist(-2.0), hand, door, turn=2.0), door)
    assert math.isclose(wrist_safe_yaw(env_with_wrist(-2.0), hand, door, turn=2.3), door - math.pi)


def test_a_door_swung_open_is_read_back_to_where_it_shuts() -> None:
    from types import SimpleNamespace

    from envs.expert_skills.command import rotate_z
    from envs.expert_skills.enclosure import closed_door_direction

    # libero_10's microwave door, 90 degrees open about +z: its slab (26 x 5.5 x 18.6 cm) now lies
    # along -y from the hinge; the handle (a small geom) sticks out at the free end
    q = -math.pi / 2
    slab_rot = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # local x -> world -y
    model = SimpleNamespace(
        geom_bodyid=np.array([5, 5]),
        geom_contype=np.array([1, 1]),
        geom_conaffinity=np.array([1, 1]),
        geom_aabb=np.array([[0, 0, 0, 0.13, 0.0275, 0.093], [0, 0, 0, 0.01, 0.011, 0.075]], dtype=float),
    )
    data = SimpleNamespace(
        geom_xmat=np.stack([slab_rot.reshape(9), np.eye(3).reshape(9)]),
        geom_xpos=np.array([[-0.196, 0.123, 1.016], [-0.25, 0.02, 1.016]]),
    )
    geom = SimpleNamespace(model=model, sim=SimpleNamespace(data=SimpleNamespace(_data=data)))
    joint = SimpleNamespace(
        body=5,
        qpos=q,
        anchor=lambda: np.array([-0.169, 0.253, 1.016]),
        axis=lambda: np.array([0.0, 0.0, 1.0]),
    )
    np.testing.assert_allclose(closed_door_direction(joint, geom), [1.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(rotate_z(np.array([1.0, 0.0, 0.0]), q), [0.0, -1.0, 0.0], atol=1e-9)
