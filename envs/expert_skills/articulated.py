"""Open a drawer (a slide joint) from privileged state: grasp its handle from the side, pull along
the joint axis, release. Closing pushes instead, without a grasp (`envs.expert_skills.drawer_push`).

Why a side grasp: a drawer handle is a horizontal bar a few cm in front of the drawer face, with
the drawer above it in the way of a top-down hand. The hand turns to point into the drawer
(`facing_rotation`), its closing axis vertical, so the open fingers pass above and below the bar.

The handle is the drawer body's collision geom(s) reaching furthest along the opening direction;
the opening direction is the joint axis read from the MuJoCo model, signed by LIBERO's own open /
close ranges (`FixtureJoint`). The skill pulls the grasped handle until the joint is a margin past
the edge of LIBERO's open range, then releases and backs off (`SlideJointSkill.retract`, shared with the
push).

Phases: approach -> grasp -> pull -> release -> retract -> done.
"""

from __future__ import annotations

import numpy as np

from envs.expert_skills.command import GRIPPER_CLOSE, GRIPPER_OPEN, Command, FixtureJoint, facing_rotation
from envs.grasp_planning import topdown_rotation


def handle_box(corners: np.ndarray, direction: np.ndarray, tol: float = 0.008) -> np.ndarray:
    """(2, 3) lo / hi of the geoms (world corners (K, 8, 3)) that reach within `tol` of the furthest
    point along the horizontal `direction` (3,): the handle bar in front of a drawer."""
    reach = (corners @ direction).max(axis=1)  # (K,)
    front = corners[reach >= reach.max() - tol].reshape(-1, 3)
    return np.stack([front.min(axis=0), front.max(axis=0)])


def opening_direction(joint: FixtureJoint) -> np.ndarray:
    """(3,) horizontal unit direction a drawer's slide `joint` opens toward (out of the cabinet)."""
    d = joint.axis() * np.sign(joint.goal_qpos("open", 0.0) - joint.goal_qpos("close", 0.0))
    d[2] = 0.0
    return d / np.linalg.norm(d)


class SlideJointSkill:
    """What the two drawer skills share: the slide joint of region `name`, the phase bookkeeping, and
    the last phase, `retract`. Subclasses set `goal_q` (the joint position they drive to) and `_dir`
    (the sign of qpos's way to it)."""

    RETRACT = 0.08  # m backed off along the axis after letting go
    RISE = 0.12  # m risen before turning the hand down

    def __init__(self, env, geom, name: str):  # LiberoEnv, SceneGeometry
        self.env, self.geom = env, geom
        self.joint = FixtureJoint(env, name)
        if self.joint.hinge:
            raise ValueError(f"{name!r} is a hinge, not a drawer")
        self.phase, self.done, self._steps = "approach", False, 0
        self._sub = 0  # a sub-step of the current phase (approach: 0 above / in front, 1 reaching)
        self._hold: np.ndarray | None = None  # (3,) where the hand holds still
        self._down = topdown_rotation(0.0)

    def _set(self, phase: str) -> None:
        self.phase, self._steps = phase, 0

    def retract(self, pos: np.ndarray, mat: np.ndarray, rot: np.ndarray) -> Command:
        """From `_hold` (`_sub` 1): back off there along the axis in the hand orientation `rot`, then
        (`_sub` 2) rise `RISE` and turn the hand down in free space: a hand turned near the drawer
        sweeps the fingers through its handle and moves it again. Ends the skill."""
        if self._sub == 1 and (np.linalg.norm(self._hold - pos) < 0.02 or self._steps > 40):
            self._sub, self._steps = 2, 0
            self._hold = self._hold + np.array([0.0, 0.0, self.RISE])
            self._down = topdown_rotation(nearest_topdown_yaw(mat))
        elif self._sub == 2 and (np.linalg.norm(self._hold - pos) < 0.03 or self._steps > 40):
            self.done = True
            self._set("done")
        return Command(self._hold, rot if self._sub == 1 else self._down, GRIPPER_OPEN)


class DrawerSkill(SlideJointSkill):
    """`open` the drawer that holds region `name` (a site with a slide joint)."""

    PRE = 0.10  # m in front of the handle before reaching in
    DEPTH = 0.004  # eef past the handle's centre, into the bar

    def __init__(self, env, geom, name: str):  # LiberoEnv, SceneGeometry
        super().__init__(env, geom, name)
        self.goal_q = self.joint.goal_qpos("open", 0.012)
        self._dir = float(np.sign(self.goal_q - self.joint.goal_qpos("close", 0.0)))  # qpos's way to the goal
        self._facing: np.ndarray | None = None  # the hand's orientation, chosen at the first step

    def out_dir(self) -> np.ndarray:
        return opening_direction(self.joint)

    def _already(self, q: float) -> bool:
        """Open enough: within 4 mm of the goal, or already past LIBERO's open edge (libero_10 task 3
        starts with the bottom drawer open: at 14.1-15.3 cm, short of the goal's 15.2 cm at times,
        and its handle is too low for the side grasp, see `drawer_push`)."""
        if (self.goal_q - q) * self._dir <= 0.004:
            return True
        return bool(self.joint.state.is_open())

    def handle_centre(self) -> np.ndarray:
        lo, hi = handle_box(self.geom.body_corners(self.joint.body), self.out_dir())
        return (lo + hi) / 2

    def act(self, pos: np.ndarray, mat: np.ndarray, finger_q: float) -> Command:
        out = self.out_dir()
        if self._facing is None:  # chosen once, from the hand before the skill
            self._facing = facing_rotation(-out, mat)
        rot = self._facing
        self._steps += 1
        q = self.joint.qpos
        if self.phase == "approach" and self._sub == 0 and self._steps == 1 and self._already(q):
            self.done = True  # a drawer the scene starts open
            self._set("done")
        if self.phase == "done":
            return Command(pos, mat, GRIPPER_OPEN)
        if self.phase == "approach":
            grip = self.handle_centre() - out * self.DEPTH
            target = grip + out * (self.PRE if self._sub == 0 else 0.0)
            rot_err = np.linalg.norm(rot - mat)
            if self._sub == 0 and np.linalg.norm(target - pos) < 0.015 and rot_err < 0.15:
                self._sub, self._steps = 1, 0
            elif self._sub == 1 and (np.linalg.norm(target - pos) < 0.008 or self._steps > 40):
                self._hold = pos.copy()
                self._set("grasp")
            return Command(target, rot, GRIPPER_OPEN, 1.0 if self._sub == 0 else 0.5)
        if self.phase == "grasp":
            if self._steps > 6:  # the fingers close on the bar in ~5 steps; libero_goal task 3 needs the time
                self._set("pull")
            return Command(self._hold, rot, GRIPPER_CLOSE)
        if self.phase == "pull":
            remaining = abs(self.goal_q - q)
            target = pos + out * min(remaining + 0.01, 0.05)
            target[2] = self._hold[2]
            reached = (self.goal_q - q) * self._dir <= 0.002
            if reached or self._steps > 100:
                self._hold = pos.copy()
                self._set("release")
            return Command(target, rot, GRIPPER_CLOSE, 0.6)
        if self.phase == "release":
            if self._steps > 5:
                self._hold = self._hold + out * self.RETRACT
                self._set("retract")
            return Command(self._hold, rot, GRIPPER_OPEN)
        if self.phase == "retract":
            return self.retract(pos, mat, rot)
        return Command(self._hold, self._down, GRIPPER_OPEN)


def nearest_topdown_yaw(mat: np.ndarray) -> float:
    """The yaw of the top-down hand orientation the least rotation away from `mat` (3, 3): turning a
    sideways hand down to yaw 0 can need more wrist turn than the Panda's last joint has."""
    yaws = np.radians(np.arange(0.0, 360.0, 10.0))
    angles = [
        np.arccos(np.clip((np.trace(topdown_rotation(y) @ mat.T) - 1.0) / 2.0, -1.0, 1.0)) for y in yaws
    ]
    return float(yaws[int(np.argmin(angles))])
