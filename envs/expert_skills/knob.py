"""Turn a fixture's knob (a hinge about the vertical, e.g. the flat stove's button) on or off from
privileged state: grasp its ridge top-down across its narrow side, twist the wrist about the
knob's axis until the joint is past LIBERO's turn-on (turn-off) edge, release.

The ridge is the knob body's collision geoms whose tops are within 1 cm of the highest; the grasp
is centred on the hinge axis (the knob turns about it, so the hand only rotates), the closing axis
across the ridge's narrowest horizontal width (scanned every 5 degrees).

Phases: approach -> descend -> grasp -> turn -> release -> retract -> done.
"""

from __future__ import annotations

import math

import numpy as np

from envs.expert_skills.command import GRIPPER_CLOSE, GRIPPER_OPEN, Command, FixtureJoint
from envs.grasp_planning import topdown_rotation, wrap_half_turn


def narrowest_yaw(points: np.ndarray) -> tuple[float, float]:
    """(yaw of the closing axis across the narrowest horizontal width of the (N, 3) points, width)."""
    best = (math.inf, 0.0)
    for deg in range(0, 180, 5):
        yaw = math.radians(deg)
        proj = points[:, :2] @ np.array([math.cos(yaw), math.sin(yaw)])
        best = min(best, (float(proj.max() - proj.min()), yaw))
    return best[1], best[0]


class KnobSkill:
    """`turn_on` or `turn_off` the knob of fixture `name` (its first joint: a vertical hinge)."""

    GRASP_BELOW_TOP = 0.018
    PRE = 0.07

    def __init__(self, env, geom, name: str, on: bool):  # LiberoEnv, SceneGeometry
        self.env, self.geom, self.on = env, geom, on
        self.joint = FixtureJoint(env, name)
        if not self.joint.hinge:
            raise ValueError(f"{name!r} has no hinge to turn")
        self.goal_q = self.joint.goal_qpos("turnon" if on else "turnoff", 0.25 if on else 0.05)
        other = self.joint.goal_qpos("turnoff" if on else "turnon", 0.0)
        self._dir = float(np.sign(self.goal_q - other))  # the side of goal_q on which the predicate holds
        self.phase, self.done, self._steps = "approach", False, 0
        self._yaw0 = 0.0
        self._q0 = 0.0
        self._point: np.ndarray | None = None

    def _set(self, phase: str) -> None:
        self.phase, self._steps = phase, 0

    def ridge_points(self) -> np.ndarray:
        """(N, 3) world corners of the knob's highest collision geoms."""
        world = self.geom.body_corners(self.joint.body)  # (G, 8, 3)
        tops = world[:, :, 2].max(axis=1)
        return world[tops >= tops.max() - 0.01].reshape(-1, 3)

    def plan(self, cur_yaw: float) -> None:
        pts = self.ridge_points()
        yaw, _ = narrowest_yaw(pts)
        self._yaw0 = cur_yaw + wrap_half_turn(yaw - cur_yaw)
        anchor = self.joint.anchor()
        self._point = np.array([anchor[0], anchor[1], float(pts[:, 2].max()) - self.GRASP_BELOW_TOP])

    def act(self, pos: np.ndarray, mat: np.ndarray, finger_q: float) -> Command:
        self._steps += 1
        if self.phase == "approach" and self._steps == 1 and (self.goal_q - self.joint.qpos) * self._dir <= 0:
            # already on (off) with the margin: libero_10's "both moka pots" scene starts with the stove
            # on, and turning "toward" goal_q from there would turn it back past the edge, off
            self.done = True
            self._set("done")
        if self.phase == "done" and self._point is None:  # skipped: hold still
            return Command(pos, mat, GRIPPER_OPEN)
        if self._point is None:
            self.plan(math.atan2(mat[1, 0], mat[0, 0]))
        point, yaw = self._point, self._yaw0
        if self.phase == "approach":
            target = point + np.array([0.0, 0.0, self.PRE])
            if np.linalg.norm(target - pos) < 0.012 or self._steps > 80:
                self._set("descend")
            return Command(target, topdown_rotation(yaw), GRIPPER_OPEN)
        if self.phase == "descend":
            if np.linalg.norm(point - pos) < 0.008 or self._steps > 40:
                self._set("grasp")
            return Command(point, topdown_rotation(yaw), GRIPPER_OPEN, 0.5)
        if self.phase == "grasp":
            if self._steps > 10:
                self._q0 = self.joint.qpos
                self._set("turn")
            return Command(point, topdown_rotation(yaw), GRIPPER_CLOSE)
        sign = float(np.sign(self.joint.axis()[2]))  # +qpos turns counter-clockwise seen from above
        if self.phase == "turn":
            q = self.joint.qpos
            twist = yaw + sign * (self.goal_q - self._q0 + 0.1 * np.sign(self.goal_q - self._q0))
            if (self.goal_q - q) * np.sign(self.goal_q - self._q0) <= 0.0 or self._steps > 60:
                self._yaw_end = math.atan2(mat[1, 0], mat[0, 0])
                self._set("release")
            return Command(point, topdown_rotation(twist), GRIPPER_CLOSE, 0.6)
        end = topdown_rotation(self._yaw_end)
        if self.phase == "release":
            if self._steps > 8:
                self._set("retract")
            return Command(point, end, GRIPPER_OPEN)
        lift = point + np.array([0.0, 0.0, 0.1])
        if self.phase == "retract" and (pos[2] > lift[2] - 0.01 or self._steps > 40):
            self.done = True
            self._set("done")
        return Command(lift, end, GRIPPER_OPEN)
