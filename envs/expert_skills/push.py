"""Push a flat object (a plate: too low and wide for the gripper) across the table onto a region,
from privileged state, by towing it from inside.

Why from inside: a push from behind needs the hand beside the object on the far side from the goal,
and in LIBERO's kitchen scenes the cabinet stands there (libero_goal's plate is 3 cm from its
front). A plate is a dish: the closed fingers lowered into it, just ahead of its centre toward the
goal, hook the inner side of the rim when the hand moves on. The contact then sits on the goal side
of the plate's centre, so the plate trails the hand like a towed cart (stable, where a push from
behind turns away from the line). The contact point is re-aimed every step from the plate's
measured position.

The path: straight, or an L (along y then x, or x then y), to a goal point inside the target
region (`push_path`): of the paths that keep the object's disc clear of the other objects and
fixtures (a plate dragged into a bowl or a cheese rides up onto it), the shortest; the region
counts anywhere inside, so the goal point need not be its centre. An object lying in the region
itself is set aside first by the expert (`envs.set_aside`). At a corner of the L, and whenever the
plate tips (its centre rises), the hand rises and hooks the rim anew on the side toward the next
waypoint: fingers slid round inside the rim climb its slope.

Phases: approach -> descend -> push (-> approach to hook anew) -> retract -> done.
"""

from __future__ import annotations

import math

import numpy as np

from envs.expert_skills.command import GRIPPER_CLOSE, Command
from envs.grasp_planning import topdown_rotation

FLAT_HEIGHT = 0.03  # objects lower than this and wider than WIDE are pushed, not grasped
WIDE = 0.1


def is_flat(corners: np.ndarray) -> bool:
    """The (N, 3) corners of an object's collision geoms describe a plate-like object."""
    extent = corners.max(axis=0) - corners.min(axis=0)
    return bool(extent[2] < FLAT_HEIGHT and min(extent[0], extent[1]) > WIDE)


def disc_clearance(centres: np.ndarray, radius: float, boxes: np.ndarray) -> float:
    """Smallest gap between a disc of `radius` at any of the (P, 2) `centres` and any of the (K, 2, 2)
    xy boxes (lo, hi); negative when they overlap, +inf without boxes."""
    if len(boxes) == 0:
        return math.inf
    gap = np.maximum(boxes[None, :, 0] - centres[:, None], centres[:, None] - boxes[None, :, 1])  # (P, K, 2)
    outside = np.linalg.norm(np.maximum(gap, 0.0), axis=-1)  # (P, K)
    inside = np.minimum(gap.max(axis=-1), 0.0)  # (P, K): depth inside a box (<= 0)
    return float((outside + inside).min() - radius)


def push_path(
    start: np.ndarray,
    region_lo: np.ndarray,
    region_hi: np.ndarray,
    radius: float,
    boxes: np.ndarray,
    base: np.ndarray | None = None,
    reach: float = 0.76,
    margin: float = 0.02,
    want: float = 0.005,
) -> list[np.ndarray]:
    """Waypoints (each (2,)) for a disc of `radius` from `start` (2,) into the xy region
    [`region_lo`, `region_hi`] (shrunk by `margin`): a goal on a 5 x 5 grid there, reached straight
    or along an L (y first or x first). Of the paths whose disc stays `want` clear of the (K, 2, 2)
    `boxes`, the shortest; else the one with the most clearance. Waypoints lie within `reach` of the
    robot's `base` (2,): the hand tows from beyond the object's centre, and the Panda stalls short
    of full extension at table height."""
    mid = (region_lo + region_hi) / 2
    lo, hi = np.minimum(region_lo + margin, mid), np.maximum(region_hi - margin, mid)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 5), np.linspace(lo[1], hi[1], 5))
    goals = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (G, 2)
    if base is not None:
        goals = (
            goals[np.linalg.norm(goals - base, axis=1) <= reach]
            if np.any(np.linalg.norm(goals - base, axis=1) <= reach)
            else goals
        )
    t = np.linspace(0.0, 1.0, 20)[:, None]  # (20, 1)
    best, best_key = [mid], (False, -math.inf)
    for goal in goals:
        # straight, or an L: along y first, or along x first (a tow along a diagonal tips the plate
        # more often: measured on libero_goal's plate)
        vias = [start, np.array([start[0], goal[1]]), np.array([goal[0], start[1]])]
        if base is not None:
            vias = [v for i, v in enumerate(vias) if i == 0 or np.linalg.norm(v - base) <= reach]
        for i, via in enumerate(vias):
            clear = min(
                disc_clearance(start + t * (via - start), radius, boxes),
                disc_clearance(via + t * (goal - via), radius, boxes),
            )
            length = float(np.linalg.norm(via - start) + np.linalg.norm(goal - via))
            key = (clear >= want, -length if clear >= want else clear)
            if key > best_key:
                best, best_key = ([goal] if i == 0 else [via, goal]), key
    return best


class PushSkill:
    """Tow movable object `obj` until its body position is within `tol` of the chosen goal point in
    region `target` (an object target: its body position)."""

    HOVER = 0.03  # above the object's top on the way to the start point
    Z_OFF = 0.010  # eef above the object's bottom while towing: the fingertips on its floor (1.6 cm: 6/10,
    # the fingers climb the rim's slope on the leg toward the robot and tip the plate)
    INNER = 0.03  # eef this far from the object's centre toward the next waypoint: inside the rim
    LEAD = 0.03  # the eef target runs this far ahead of the contact
    TOL = 0.012
    VIA_TOL = 0.025  # a via-point counts as passed this close

    def __init__(self, env, geom, obj: str, target: str):  # LiberoEnv, SceneGeometry
        self.env, self.geom, self.obj, self.target = env, geom, obj, target
        self.phase, self.done, self._steps = "approach", False, 0
        self._yaw: float | None = None
        self._hold: np.ndarray | None = None
        self._path: list[np.ndarray] | None = None
        self._rest_z: float | None = None  # the object's height lying flat
        self._tilted = 0  # consecutive steps with the object raised (tipped over the fingers)
        self._rehooks = 0

    def _rehook(self) -> None:
        """Rise and come down inside the rim again, on the side toward the next waypoint: sliding the
        fingers round inside the rim climbs its slope and tips the light plate."""
        self._rehooks += 1
        self._yaw = None
        self._set("approach")

    def _set(self, phase: str) -> None:
        self.phase, self._steps = phase, 0

    def _plan(self, obj_xy: np.ndarray, radius: float, bottom: float) -> list[np.ndarray]:
        if self.target in self.env.raw_env.object_sites_dict:
            centre, half, _ = self.geom.site(self.target)
            lo, hi = centre[:2] - half[:2], centre[:2] + half[:2]
        else:
            lo = hi = self.geom.body_pos(self.target)[:2]
        # what the dragged disc can hit: geoms reaching above its bottom (not the table under it)
        boxes = [self.geom.boxes(n) for n in self.geom.names if n not in (self.obj, self.target)]
        boxes = np.concatenate(boxes) if boxes else np.zeros((0, 2, 3))  # (K, 2, 3)
        boxes = boxes[(boxes[:, 1, 2] > bottom + 0.005) & (boxes[:, 0, 2] < bottom + 0.05)]
        raw, sim = self.env.raw_env, self.env.sim
        base = np.array(sim.data.body_xpos[sim.model.body_name2id(raw.robots[0].robot_model.root_body)])[:2]
        return push_path(obj_xy, lo, hi, radius, boxes[:, :, :2], base)

    def act(self, pos: np.ndarray, mat: np.ndarray, finger_q: float) -> Command:
        self._steps += 1
        pts = self.geom.collision_corners(self.obj)
        radius = 0.5 * float(np.max(pts[:, :2].max(0) - pts[:, :2].min(0)))
        obj_xy = self.geom.body_pos(self.obj)[:2]
        bottom = float(pts[:, 2].min())
        if self._path is None:
            self._path = self._plan(obj_xy, radius, bottom)
        obj_z = float(self.geom.body_pos(self.obj)[2])
        if self._rest_z is None:
            self._rest_z = obj_z
        self._tilted = self._tilted + 1 if obj_z > self._rest_z + 0.006 else 0
        if len(self._path) > 1 and np.linalg.norm(self._path[0] - obj_xy) < self.VIA_TOL:
            self._path.pop(0)
            if self.phase == "push":  # hook the rim anew on the side toward the next waypoint
                self._rehook()
        elif self.phase == "push" and self._tilted > 4 and self._rehooks < 4:
            self._rehook()  # the fingers climbed the rim and tip the plate: let go and hook again
        goal = self._path[0]
        d = goal - obj_xy
        dist = float(np.linalg.norm(d))
        d = d / max(dist, 1e-9)
        if self._yaw is None:
            self._yaw = math.atan2(d[1], d[0]) + math.pi / 2
        push_z = bottom + self.Z_OFF
        rot = topdown_rotation(self._yaw)
        if self.phase in ("approach", "descend"):
            start = obj_xy + d * self.INNER
            z = float(pts[:, 2].max()) + self.HOVER if self.phase == "approach" else push_z
            target = np.array([start[0], start[1], z])
            if self.phase == "approach" and (np.linalg.norm(target - pos) < 0.015 or self._steps > 80):
                self._set("descend")
            elif self.phase == "descend" and (np.linalg.norm(target - pos) < 0.008 or self._steps > 40):
                self._set("push")
            return Command(target, rot, GRIPPER_CLOSE)
        if self.phase == "push":
            contact = obj_xy + d * (self.INNER + min(self.LEAD, dist))
            if (len(self._path) == 1 and dist < self.TOL) or self._steps > 200:
                self._hold = pos + np.array([0.0, 0.0, 0.1])
                self._set("retract")
            return Command(np.array([contact[0], contact[1], push_z]), rot, GRIPPER_CLOSE, 0.5)
        if self.phase == "retract" and (pos[2] > self._hold[2] - 0.01 or self._steps > 40):
            self.done = True
            self._set("done")
        return Command(self._hold, rot, GRIPPER_CLOSE)
