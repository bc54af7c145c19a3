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
