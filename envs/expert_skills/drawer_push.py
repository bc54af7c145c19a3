"""Close a drawer (a slide joint) from privileged state by pushing its handle with the closed fingers.

Why not grasp the handle as opening does (`envs.expert_skills.articulated`): that side grasp turns
the closing axis vertical, and the Panda hand is 21 cm long along its closing axis. At a bottom
drawer (libero_10 task 3: the handle 4.6 cm above the table) the hand's lower half would have to go
through the table. Closing needs no grasp: the closed fingers push the bar. A hand pointing straight
into the drawer would put the wrist where that scene has a wine rack (in front of the cabinet, up to
1.25 m), and one pointing straight down leads with its palm, which meets the drawer above before
the bottom one is shut. So the fingers point down, tilted `PITCH` toward the cabinet, with the
closing axis horizontal: the fingertips lead, the hand stays 7 cm tall and the wrist above the
handle. The hand comes down just in front of the bar, pushes until the joint is past LIBERO's close
edge, backs off and rises.

The hand is 21 cm wide that way, so the push point slides along the bar away from objects beside
the drawer (`push_offset`: libero_10 task 3 has a wine bottle next to the cabinet).

Phases: approach -> push -> retract -> done.
"""

from __future__ import annotations

import numpy as np

from envs.expert_skills.articulated import SlideJointSkill, handle_box, opening_direction
from envs.expert_skills.command import GRIPPER_CLOSE, GRIPPER_OPEN, Command

HAND_HALF_WIDTH = 0.105  # m: the Panda hand's half length along its closing axis
PITCH = np.radians(45.0)  # fingers' tilt from straight down toward the cabinet
# how far the closed fingers' leading edge is ahead of the eef site, horizontally: the tips reach
# 1.3 cm past it along the fingers, and the fingers are 1.2 cm thick either side of it
LEAD = 0.013 * np.sin(PITCH) + 0.012 * np.cos(PITCH)


def pushing_rotation(direction: np.ndarray, current: np.ndarray, pitch: float) -> np.ndarray:
    """(3, 3) eef orientation whose fingers point down, tilted by `pitch` (rad) toward the horizontal
    `direction` (3,), with the closing axis horizontal; of the two such hands, the one nearest
    `current` (3, 3)."""
    d = np.array([direction[0], direction[1], 0.0])
    d /= np.linalg.norm(d)
    z = np.cos(pitch) * np.array([0.0, 0.0, -1.0]) + np.sin(pitch) * d
    best, best_angle = np.eye(3), np.inf
    for sign in (1.0, -1.0):
        x = sign * np.array([-d[1], d[0], 0.0])
        rot = np.stack([x, np.cross(z, x), z], axis=1)
        angle = float(np.arccos(np.clip((np.trace(rot @ current.T) - 1.0) / 2.0, -1.0, 1.0)))
        if angle < best_angle:
            best, best_angle = rot, angle
    return best


def push_offset(bar: tuple[float, float], others: np.ndarray, half: float = HAND_HALF_WIDTH) -> float:
    """Where along the bar (its (lo, hi) coordinate along the hand's closing axis) to push: the
    point, 1 cm inside the bar's ends, at which a hand of half width `half` keeps the most room
    from the (K, 2) lo / hi intervals of the objects in its way (ties: the bar's middle)."""
    cands = np.linspace(bar[0] + 0.01, bar[1] - 0.01, 9)  # (9,)
    if len(others) == 0 or bar[1] - bar[0] < 0.02:
        return float(np.mean(bar))
    lo, hi = cands[:, None] - half, cands[:, None] + half  # (9, 1) the hand's extent
    gap = np.maximum(others[None, :, 0] - hi, lo - others[None, :, 1])  # (9, K)
    room = np.minimum(gap.min(axis=1), 0.03)  # (9,): beyond 3 cm, more room does not matter
    best = np.flatnonzero(room >= room.max() - 1e-9)
    return float(cands[best[np.argmin(np.abs(cands[best] - np.mean(bar)))]])


class DrawerPushSkill(SlideJointSkill):
    """`close` the drawer that holds region `name` (a site with a slide joint) by pushing."""

    ABOVE = 0.08  # m above the push point before coming down
    GAP = 0.01  # m between the fingers and the bar on the way down

    def __init__(self, env, geom, name: str):  # LiberoEnv, SceneGeometry
        super().__init__(env, geom, name)
        self.goal_q = self.joint.goal_qpos("close", 0.006)
        self._dir = float(np.sign(self.goal_q - self.joint.goal_qpos("open", 0.0)))
        self._point: np.ndarray | None = None  # (3,) eef where the fingertips touch the bar
        self._rot: np.ndarray | None = None

    def plan(self, mat: np.ndarray) -> None:
        out = opening_direction(self.joint)
        lo, hi = handle_box(self.geom.body_corners(self.joint.body), out)
        side = np.array([-out[1], out[0], 0.0])  # the hand's closing axis
        travel = abs(self.goal_q - self.joint.qpos)
        front = float(np.max(np.stack([lo, hi]) @ out))  # the bar's face toward the hand
        drawer = self.geom.body_corners(self.joint.body).reshape(-1, 3)[:, :2]
        others = []
        for name in self.env.raw_env.objects_dict:  # movable objects the hand sweeps past
            pts = self.geom.collision_corners(name)
            xy = pts[:, :2].mean(axis=0)
            if np.all((drawer.min(axis=0) <= xy) & (xy <= drawer.max(axis=0))):
                continue  # in the drawer: it moves with it
            along, across = pts @ out, pts @ side
            if along.max() > front - travel and along.min() < front + 0.15 and pts[:, 2].min() < hi[2] + 0.05:
                others.append((across.min(), across.max()))
        bar = (float(min(lo @ side, hi @ side)), float(max(lo @ side, hi @ side)))
        centre = (lo + hi) / 2
        s = push_offset(bar, np.array(others).reshape(-1, 2))
        self._point = centre + (s - centre @ side) * side + out * (front - centre @ out + LEAD)
        self._rot = pushing_rotation(-out, mat, PITCH)

    def act(self, pos: np.ndarray, mat: np.ndarray, finger_q: float) -> Command:
        self._steps += 1
        q = self.joint.qpos
        if self.phase == "approach" and self._point is None:
            if (self.goal_q - q) * self._dir <= 0.002:  # already closed
                self.done = True
                self._set("done")
                self._hold = pos.copy()
            else:
                self.plan(mat)
                self._start_z = float(pos[2])
        if self.phase == "done":
            return Command(self._hold, mat if self._rot is None else self._down, GRIPPER_OPEN)
        out = opening_direction(self.joint)
        if self.phase == "approach":
            # above the push point first, turning there, then straight down just in front of the bar
            target = (
                self._point + out * self.GAP + np.array([0.0, 0.0, self.ABOVE if self._sub == 0 else 0.0])
            )
            if self._sub == 0:
                target[2] = max(target[2], self._start_z)
            turned = np.linalg.norm(self._rot - mat) < 0.15
            if self._sub == 0 and np.linalg.norm(target - pos) < 0.015 and turned:
                self._sub, self._steps = 1, 0
            elif self._sub == 1 and (np.linalg.norm(target - pos) < 0.008 or self._steps > 40):
                self._set("push")
            return Command(target, self._rot, GRIPPER_CLOSE, 1.0 if self._sub == 0 else 0.5)
        if self.phase == "push":
            remaining = abs(self.goal_q - q)
            target = pos - out * min(remaining + 0.01, 0.05)
            target[2] = self._point[2]
            if (self.goal_q - q) * self._dir <= 0.0 or self._steps > 100:
                self._hold = pos + out * self.RETRACT
                self._sub = 1
                self._set("retract")
            return Command(target, self._rot, GRIPPER_CLOSE, 0.6)
        return self.retract(pos, mat, self._rot)
