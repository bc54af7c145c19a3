"""envs.set_aside: where an object in the way is set down (pure geometry, no simulator)."""

from __future__ import annotations

import math

import numpy as np

from envs.set_aside import box_gap, free_spot, overlaps


def test_box_gap_is_the_distance_between_boxes_and_negative_inside() -> None:
    a = np.array([[[0.0, 0.0], [0.1, 0.1]]])
    b = np.array([[[0.2, 0.0], [0.3, 0.1]], [[0.13, 0.14], [0.2, 0.2]], [[0.05, 0.05], [0.2, 0.2]]])
    gap = box_gap(a, b)[0]
    assert math.isclose(gap[0], 0.1) and math.isclose(gap[1], 0.05)  # apart along x; corner to corner
    assert gap[2] < 0.0  # overlapping
    assert overlaps(a[0], b[2]) and not overlaps(a[0], b[0]) and overlaps(a[0], b[0], margin=0.11)


def test_free_spot_is_the_nearest_clear_spot_within_reach() -> None:
    base, half = np.array([-0.66, 0.0]), np.array([0.05, 0.05])
    start = np.array([-0.1, 0.0])
    # nothing in the way: the object can stay where it is
    assert np.allclose(free_spot(start, half, np.zeros((0, 2, 2)), base), start, atol=0.011)
    # a drawer's sweep over it (x -0.15..0.15, y up to 0.05): out to the side or in front of it
    sweep = np.array([[[-0.15, -0.3], [0.15, 0.05]]])
    spot = free_spot(start, half, sweep, base, want=0.02)
    lo, hi = spot - half, spot + half
    assert box_gap(np.stack([lo, hi])[None], sweep)[0, 0] >= 0.02 - 1e-9
    assert 0.45 <= np.linalg.norm(spot - base) <= 0.72
    # a next target far to the left pulls the spot there
    left = free_spot(start, half, sweep, base, want=0.02, toward=np.array([-0.3, -0.2]))
    assert left[0] < -0.15 - 0.05 and np.linalg.norm(left - start) > 0.0
