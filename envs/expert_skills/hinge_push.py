"""Close a hinged door (a vertical hinge: libero_10's microwave) from privileged state by pushing its
outer face round with the closed fingers.

Why a push: a door swung open lies across the table with its handle at the free end; closing needs
no grasp, only a force on the outer face that follows the door round its arc. The fingers point down
with the closing axis along the door, so the hand's thin side faces it, at a height where only the
fingers reach below the door's top edge (the hand's body above it). Every step the target is the
point of the outer face `PUSH_AT` of the door's length from the hinge, at the door's angle advanced
`LEAD_ANGLE` toward shut: the fingers stay on the face and press it on. The door is done when
LIBERO's own close range holds (with a margin); the hand then backs away from the face and rises.

The hand gets to the face over the door's top edge (it may start on the door's inner side, after
putting something in), turning there, to a yaw its last joint can hold all the way round
(`wrist_safe_yaw`: the door turns the hand by up to 118 degrees).

Phases: approach -> push -> retract -> done.
"""

from __future__ import annotations

import numpy as np

from envs.expert_skills.command import (
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    Command,
    FixtureJoint,
    rotate_z,
    wrist_safe_yaw,
)
from envs.expert_skills.enclosure import door_inward
from envs.grasp_planning import topdown_rotation, wrap_half_turn

PUSH_AT = 0.62  # fraction of the door's length from the hinge: clear of the handle at the free end
LEAD_ANGLE = 0.25  # rad the target runs ahead of the door
FINGER_HALF = 0.012  # m: the closed fingers' half thickness across the hand
BELOW_TOP = 0.03  # eef below the door's top edge: fingers on the face, the hand above it
CLEAR_TOP = 0.06  # eef above the door's top edge when passing over it


class HingePushSkill:
    """`close` fixture `name`'s door: its first joint, a vertical hinge."""

    def __init__(self, env, geom, name: str):  # LiberoEnv, SceneGeometry
        self.env, self.geom = env, geom
        self.joint = FixtureJoint(env, name)
        if not self.joint.hinge:
            raise ValueError(f"{name!r} has no hinged door")
        self.goal_q = self.joint.goal_qpos("close", 0.002)
        self._dir = float(np.sign(self.goal_q - self.joint.goal_qpos("open", 0.0)))  # qpos's way to shut
        self._sign = float(np.sign(self.joint.axis()[2]))  # +qpos turns counter-clockwise seen from above
        self._outer0 = -door_inward(self.joint, geom)  # (3,) the shut door's outer normal
        self.phase, self.done, self._steps, self._sub = "approach", False, 0, 0
        self._hold = np.zeros(3)
        self._yaw: float | None = None

    def _set(self, phase: str) -> None:
        self.phase, self._steps = phase, 0

    def _door(self, q: float) -> tuple[np.ndarray, np.ndarray, float, float]:
        """At door angle `q`: (along (3,): hinge -> free end, outer (3,): the outer normal, the push
        point's distance from the hinge, the outer face's offset there from the hinge line)."""
        anchor, q_now = self.joint.anchor(), self.joint.qpos
        corners = self.geom.body_corners(self.joint.body)  # (G, 8, 3)
        outer_now = rotate_z(self._outer0, self._sign * q_now)
        along_now = np.array([outer_now[1], -outer_now[0], 0.0])
        if (corners.reshape(-1, 3).mean(axis=0) - anchor) @ along_now < 0:
            along_now = -along_now
        r = (corners - anchor) @ along_now  # (G, 8)
        length = float(r.max())
        at = PUSH_AT * length
        spans = (r.min(axis=1) <= at) & (r.max(axis=1) >= at)  # the geoms across the push point
        face = float(((corners[spans] - anchor) @ outer_now).max())
        turn = self._sign * (q - q_now)
        return rotate_z(along_now, turn), rotate_z(outer_now, turn), at, face

    def _target(self, q: float, z: float) -> tuple[np.ndarray, np.ndarray]:
        along, outer, at, face = self._door(q)
        point = self.joint.anchor() + along * at + outer * (face + FINGER_HALF)
        point[2] = z
        yaw = float(np.arctan2(along[1], along[0]))
        self._yaw = yaw if self._yaw is None else self._yaw + wrap_half_turn(yaw - self._yaw)
        return point, topdown_rotation(self._yaw)

    def _first_yaw(self, mat: np.ndarray, q: float) -> float:
        """The hand's yaw at the door now, chosen so that the wrist can follow the door shut."""
        along, _, _, _ = self._door(q)
        turn = self._sign * (self.goal_q - q)  # the door's (and the hand's) turn until shut
        return wrist_safe_yaw(self.env, mat, float(np.arctan2(along[1], along[0])), turn)

    def _shut(self, q: float) -> bool:
        return (self.goal_q - q) * self._dir <= 0.0

    def act(self, pos: np.ndarray, mat: np.ndarray, finger_q: float) -> Command:
        self._steps += 1
        q = self.joint.qpos
        if self.phase == "approach" and self._steps == 1 and self._shut(q):
            self.done = True
            self._set("done")
        if self.phase == "done":
            return Command(pos if self._yaw is None else self._hold, mat, GRIPPER_OPEN)
        if self._yaw is None:
            self._yaw = self._first_yaw(mat, q)
            self._top = float(self.geom.body_corners(self.joint.body)[..., 2].max())
            self._start = pos.copy()
        z = self._top - BELOW_TOP
        if self.phase == "approach":
            # up over the door's top edge where the hand is (it may be on the door's inner side), across
            # to above the face's push point, then down beside the face
            point, rot = self._target(q, z)
            _, outer, _, _ = self._door(q)
            point = point + outer * 0.02
            over = self._top + CLEAR_TOP
            if self._sub == 0:
                target = np.array([self._start[0], self._start[1], max(self._start[2], over)])
            else:
                target = point + np.array([0.0, 0.0, over - z if self._sub == 1 else 0.0])
            near = np.linalg.norm(target - pos) < (0.008 if self._sub == 2 else 0.015)
            if self._sub == 0 and near and np.linalg.norm(rot - mat) < 0.15:
                self._sub, self._steps = 1, 0
            elif self._sub == 1 and near:
                self._sub, self._steps = 2, 0
            elif self._sub == 2 and (near or self._steps > 40):
                self._set("push")
            # the hand turns once it is over the door (turning near the opening swings the tilted fingers)
            turning = self._sub > 0 or pos[2] > over - 0.02
            return Command(target, rot if turning else mat, GRIPPER_CLOSE, 0.5 if self._sub == 2 else 1.0)
        if self.phase == "push":
            ahead = q + self._dir * LEAD_ANGLE
            ahead = min(ahead, self.goal_q + 0.05) if self._dir > 0 else max(ahead, self.goal_q - 0.05)
            target, rot = self._target(ahead, z)
            if self._shut(q) or self._steps > 150:
                _, outer, _, _ = self._door(q)
                self._hold = pos + outer * 0.05 + np.array([0.0, 0.0, 0.1])
                self._set("retract")
            return Command(target, rot, GRIPPER_CLOSE, 0.6)
        # retract, opening as the drawer push does
        if np.linalg.norm(self._hold - pos) < 0.02 or self._steps > 40:
            self.done = True
            self._set("done")
        return Command(self._hold, mat, GRIPPER_OPEN)
