"""Push a flat object (a plate: too low and wide for the gripper) across the table onto a region,
from privileged state.

The open gripper, its closing axis across the push direction (two fingertips ~8 cm apart: the
object cannot roll off a single point), comes down behind the object at 1.5 cm above its bottom and
moves toward the goal. The contact point is re-aimed every step from the object's measured position
(behind it on the line to the goal), so a push that drifts sideways turns back onto the line.

Phases: approach -> descend -> push -> retract -> done.
"""

from __future__ import annotations

import math

import numpy as np

from envs.expert_skills.command import GRIPPER_OPEN, Command
from envs.grasp_planning import topdown_rotation

FLAT_HEIGHT = 0.03  # objects lower than this and wider than WIDE are pushed, not grasped
WIDE = 0.1


def is_flat(corners: np.ndarray) -> bool:
    """The (N, 3) corners of an object's collision geoms describe a plate-like object."""
    extent = corners.max(axis=0) - corners.min(axis=0)
    return bool(extent[2] < FLAT_HEIGHT and min(extent[0], extent[1]) > WIDE)


def push_contact(
    obj_xy: np.ndarray, goal_xy: np.ndarray, radius: float, lead: float
) -> tuple[np.ndarray, float]:
    """(eef xy (2,) to go to, yaw of the closing axis): `lead` metres past the object's back edge on
    the line from the object to the goal (a lead > 0 moves the object)."""
    d = goal_xy - obj_xy
    d = d / max(float(np.linalg.norm(d)), 1e-9)
    return obj_xy - d * (radius - lead), math.atan2(d[1], d[0]) + math.pi / 2


class PushSkill:
    """Push movable object `obj` until its body position is within `tol` of region `target`'s centre."""

    HOVER = 0.06  # above the object's top on the way to the start point
    Z_OFF = 0.015  # eef above the object's bottom while pushing
    TOL = 0.012

    def __init__(self, env, geom, obj: str, target: str):  # LiberoEnv, SceneGeometry
        self.env, self.geom, self.obj, self.target = env, geom, obj, target
        self.phase, self.done, self._steps = "approach", False, 0
        self._yaw: float | None = None
        self._hold: np.ndarray | None = None

    def _set(self, phase: str) -> None:
        self.phase, self._steps = phase, 0

    def goal_xy(self) -> np.ndarray:
        if self.target in self.env.raw_env.object_sites_dict:
            return self.geom.site(self.target)[0][:2]
        return self.geom.body_pos(self.target)[:2]

    def act(self, pos: np.ndarray, mat: np.ndarray, finger_q: float) -> Command:
        self._steps += 1
        pts = self.geom.collision_corners(self.obj)
        radius = 0.5 * float(np.max(pts[:, :2].max(0) - pts[:, :2].min(0)))
        obj_xy, goal = self.geom.body_pos(self.obj)[:2], self.goal_xy()
        push_z = float(pts[:, 2].min()) + self.Z_OFF
        if self.phase in ("approach", "descend"):
            start, yaw = push_contact(obj_xy, goal, radius, -0.035)
            if self._yaw is None:
                self._yaw = yaw
            hover = max(float(pts[:, 2].max()) + self.HOVER, min(pos[2], float(pts[:, 2].max()) + 0.15))
            z = hover if self.phase == "approach" else push_z
            target = np.array([start[0], start[1], z])
            if self.phase == "approach" and (np.linalg.norm(target - pos) < 0.015 or self._steps > 80):
                self._set("descend")
            elif self.phase == "descend" and (np.linalg.norm(target - pos) < 0.01 or self._steps > 40):
                self._set("push")
            return Command(target, topdown_rotation(self._yaw), GRIPPER_OPEN)
        if self.phase == "push":
            contact, self._yaw = push_contact(obj_xy, goal, radius, 0.04)
            if np.linalg.norm(goal - obj_xy) < self.TOL or self._steps > 200:
                self._hold = pos + np.array([0.0, 0.0, 0.1])
                self._set("retract")
            return Command(
                np.array([contact[0], contact[1], push_z]), topdown_rotation(self._yaw), GRIPPER_OPEN, 0.5
            )
        if self.phase == "retract" and (pos[2] > self._hold[2] - 0.01 or self._steps > 40):
            self.done = True
            self._set("done")
        return Command(self._hold, topdown_rotation(self._yaw), GRIPPER_OPEN)
