"""The scripted expert on sampled layouts (planner units; no simulator)."""

import numpy as np


def test_blocked_grasp_on_a_long_box_moves_along_its_long_side():
    """Sampled layouts put tall neighbours closer than the shipped ones: after a blocked descent the
    planner also tries points along the box's long side (before, it re-planned the same point)."""
    from envs.grasp_planning import plan_grasp
    from envs.scene_geometry import OrientedBoxes
    from envs.scripted_expert import ExpertConfig

    xs, ys = np.meshgrid([0.0, 0.082], [-0.021, 0.021])  # an 8.2 x 4.2 cm box, 1.8 cm tall, long along x
    pts = np.concatenate(
        [np.stack([xs.ravel(), ys.ravel(), np.full(4, z)], 1) for z in (0.0, 0.018)]
    )  # (8, 3)
    none = OrientedBoxes(np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros((0, 3)))
    args = (
        pts,
        none,
        0.0,
        ExpertConfig(),
        np.array([0.041, 0.0]),
        np.array([0.0, 0.3]),
        np.array([-0.6, 0.0]),
    )
    first = plan_grasp(*args)
    np.testing.assert_allclose(
        first.point[:2], [0.041, 0.0], atol=1e-9
    )  # centre, closing across the 4 cm side
    again = plan_grasp(*args, avoid=[first.point[:2]])
    assert abs(again.point[1]) < 1e-9 and 0.015 < abs(again.point[0] - 0.041) <= 0.03
