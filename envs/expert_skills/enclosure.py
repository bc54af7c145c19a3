"""Put an object into an enclosed region whose opening faces sideways (a microwave's cavity), from
privileged state: grasp the part of the object that faces the opening (a mug's handle), slide the
object in as far as the hand can follow, set it down, then push it the rest of the way in with the
closed fingers.

Why not pick-and-place: a top-down hand sits above what it holds, and libero_10's microwave cavity is
14.4 cm tall for a 10.3 cm mug, so the hand cannot follow the object in. Everything here keeps the
hand outside the opening's plane (`Enclosure.front`): the grasp is top-down on the object's part
nearest the opening (the handle: a thin part, pinched across), the insertion stops when the hand's
inner face reaches the plane, and the last few cm are a push of that same part with the fingertips
leading (the hand tilted as in `envs.expert_skills.drawer_push`), until the whole object is a margin
inside the plane, so that the door can then close over it (`envs.expert_skills.hinge_push`).

The enclosure is read from the model: its door's hinge (a vertical hinge of the fixture that holds
the region), the door's closed direction (its slab's long axis, turned back by the joint position),
the cavity's floor, ceiling, back and side walls (the fixture's main-body geoms around the region's
centre). The way in is chosen once per episode, from a map of the hand's room over the plane it
moves in (`EnclosurePlaceSkill._insertion`): libero_10's microwave door starts 76-118 degrees
open (init states 0-49), and at the least open it leans over the opening's side, where a straight
way in would put the 20 cm wide hand into its free end.

Phases: approach -> descend -> grasp -> lift -> carry -> lower -> release -> retract, then the push:
approach (the closed fingers to the handle's outer end) -> push -> retract (opening) -> done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from envs.expert_skills.command import (
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    Command,
    FixtureJoint,
    rotate_z,
    wrist_safe_yaw,
)
from envs.expert_skills.drawer_push import HAND_HALF_WIDTH, LEAD, PITCH, pushing_rotation
from envs.grasp_planning import topdown_rotation

logger = logging.getLogger(__name__)

HAND_HALF_THICKNESS = 0.035  # m: the Panda hand's half depth across its fingers' width (palm side)
HAND_BOTTOM, HAND_TOP = 0.045, 0.12  # m: the hand's body above a top-down eef (the fingers below it)
HANDLE_DEPTH = 0.05  # m: the object's part this close to its outermost point is the part to grasp
MAX_HANDLE_WIDTH = 0.03  # m: wider than this across, the part is not something the fingers pinch
MIN_DOOR_SPAN = 0.1  # m: a vertical hinge whose moving part is smaller across is a knob


@dataclass(frozen=True)
class Enclosure:
    """A cavity with a hinged door. Coordinates along `inward` (3,), the horizontal unit vector from
    the opening into the cavity: `front` is the opening's plane (the door's hinge line), `back` the
    back wall's inner face; along `side`: `walls` (lo, hi), the side walls' inner faces; `floor` and
    `ceiling` are the cavity's heights."""

    inward: np.ndarray
    front: float
    back: float
    walls: tuple[float, float]
    floor: float
    ceiling: float

    @property
    def side(self) -> np.ndarray:
        """(3,) the horizontal unit vector across the opening."""
        return np.array([-self.inward[1], self.inward[0], 0.0])


def closed_door_direction(joint: FixtureJoint, geom) -> np.ndarray:  # SceneGeometry
    """(3,) horizontal unit vector from the hinge along the door of `joint` when it is shut (q = 0):
    the longest horizontal axis of the door's largest collision geom (its slab; the slab's centre is
    off the hinge line by half its thickness, so the centre's direction is not the door's), pointing
    away from the hinge, turned back about the axis by the joint position."""
    model, data = geom.model, geom.sim.data._data
    ids = np.flatnonzero(model.geom_bodyid == joint.body)
    ids = ids[(model.geom_contype[ids] | model.geom_conaffinity[ids]) > 0]
    half = model.geom_aabb[ids, 3:]  # (G, 3) local half sizes
    rot = data.geom_xmat[ids].reshape(-1, 3, 3)  # (G, 3, 3): columns are the local axes in the world
    flat = np.abs(rot[:, 2, :]) < 0.3  # (G, 3): local axes that lie horizontal
    g, k = np.unravel_index(np.argmax(np.where(flat, half, 0.0)), half.shape)
    u = rot[g, :, k].copy()
    u[2] = 0.0
    if (data.geom_xpos[ids[g]] - joint.anchor()) @ u < 0:
        u = -u
    u = rotate_z(u, -joint.qpos * float(np.sign(joint.axis()[2])))
    return u / np.linalg.norm(u)


def door_inward(joint: FixtureJoint, geom) -> np.ndarray:  # SceneGeometry
    """(3,) horizontal unit vector through the shut door of `joint` (a vertical hinge) into its
    fixture: across the door's closed direction, toward the fixture's main body (the door's parent)."""
    u = closed_door_direction(joint, geom)
    inward = np.array([-u[1], u[0], 0.0])
    main = geom.body_corners(int(geom.model.body_parentid[joint.body])).reshape(-1, 3)
    return inward if (main.mean(axis=0) - joint.anchor()) @ inward > 0 else -inward


def enclosure_of(env, geom, region: str) -> Enclosure | None:  # LiberoEnv, SceneGeometry
    """The enclosure that holds region site `region`, or None when the region's fixture has no
    vertical-hinged door (an open region: a basket, a plate, a drawer)."""
    sites = env.raw_env.object_sites_dict
    if region not in sites or sites[region].joints:
        return None
    try:
        joint = FixtureJoint(env, sites[region].parent_name)
    except (KeyError, ValueError, AttributeError):
        return None
    if not joint.hinge or abs(joint.axis()[2]) < 0.9:
        return None
    door = geom.body_corners(joint.body).reshape(-1, 3)[:, :2]  # (8 G, 2)
    boxes = geom.body_corners(int(geom.model.body_parentid[joint.body]))  # (G, 8, 3) the fixture's walls
    if np.linalg.norm(np.ptp(door, axis=0)) < MIN_DOOR_SPAN or not len(boxes):
        return None  # a knob, or a hinged part on a body without walls (the stove's button)
    centre, _, _ = geom.site(region)
    inward = door_inward(joint, geom)
    side = np.array([-inward[1], inward[0], 0.0])
    lo, hi = boxes.min(axis=1), boxes.max(axis=1)  # (G, 3)
    s_lo, s_hi = (boxes @ side).min(axis=1), (boxes @ side).max(axis=1)  # (G,)
    i_lo, i_hi = (boxes @ inward).min(axis=1), (boxes @ inward).max(axis=1)
    c_side, c_in = float(centre @ side), float(centre @ inward)
    over = (s_lo <= c_side) & (c_side <= s_hi)  # walls across the region's centre line
    level = (lo[:, 2] < centre[2]) & (hi[:, 2] > centre[2])  # walls at the region's centre height
    floors = hi[over & (hi[:, 2] <= centre[2]), 2]
    ceilings = lo[over & (lo[:, 2] >= centre[2]), 2]
    backs = i_lo[over & level & (i_lo > c_in)]
    beside = level & (i_lo <= c_in) & (c_in <= i_hi)
    left, right = s_hi[beside & (s_hi < c_side)], s_lo[beside & (s_lo > c_side)]
    if not (len(floors) and len(ceilings) and len(backs) and len(left) and len(right)):
        return None
    front = float(joint.anchor() @ inward)
    walls = (float(left.max()), float(right.min()))
    return Enclosure(inward, front, float(backs.min()), walls, float(floors.max()), float(ceilings.min()))


def handle_boxes(boxes: np.ndarray, inward: np.ndarray, depth: float = HANDLE_DEPTH) -> np.ndarray:
    """(H, 2, 3) of the object's geom boxes (G, 2, 3) that lie wholly within `depth` of its outermost
    point against `inward`: the part that faces the opening."""
    corners = np.stack([boxes[:, 0], boxes[:, 1]], axis=1)  # (G, 2, 3)
    along = corners @ inward  # (G, 2)
    outermost = along.min()
    return boxes[along.max(axis=1) < outermost + depth]


def hand_points(eef: np.ndarray, side: np.ndarray, inward: np.ndarray) -> np.ndarray:
    """(42, 3) points spread over the body of a top-down hand at `eef` (3,) whose closing axis is
    `side` (3,): what must stay clear of the enclosure while the object goes in (the fingers hold the
    object, and the object is checked by the enclosure's own walls)."""
    a = np.linspace(-HAND_HALF_WIDTH, HAND_HALF_WIDTH, 7)
    b = np.linspace(-HAND_HALF_THICKNESS, HAND_HALF_THICKNESS, 3)
    c = np.array([HAND_BOTTOM, HAND_TOP])
    grid = np.stack(np.meshgrid(a, b, c, indexing="ij"), axis=-1).reshape(-1, 3)  # (42, 3)
    return eef + grid[:, :1] * side + grid[:, 1:2] * inward + grid[:, 2:] * np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Insertion:
    """The hand's way in, as eef coordinates at height `z`: across the opening (along
    `Enclosure.side`) to `approach` where it picked the object up, along `inward` to `outside` (the
    whole object out of the opening), then on to `deepest` while moving across to `inside` (a door
    swung part open leans over the opening's side: the hand may pass its free end on one line and go
    in on another); `room`: the hand's least distance to anything on the way (m)."""

    approach: float
    inside: float
    outside: float
    deepest: float
    z: float
    room: float


class EnclosurePlaceSkill:
    """`place` object `obj` into region `region` of an enclosure (see the module docstring)."""

    PRE = 0.07  # m above the grasp before descending
    BELOW_TOP = 0.012  # eef this far below the handle's top
    FLOOR_CLEAR = 0.017  # object bottom above the cavity floor while sliding in
    SET_DOWN = 0.004  # ... and when let go
    HAND_MARGINS = (0.008, 0.03)  # hand's inner face this far outside the opening's plane (tried in order)
    WALL_CLEAR = 0.008  # object this far from the cavity's side walls
    INSIDE = 0.015  # object pushed until its outermost point is this far inside the plane
    ROOM = 0.005  # m the hand keeps from everything on its way in, where it can

    def __init__(self, env, geom, obj: str, region: str, enclosure: Enclosure):  # LiberoEnv, SceneGeometry
        self.env, self.geom, self.obj, self.region, self.box = env, geom, obj, region, enclosure
        self.phase, self.done, self._steps = "approach", False, 0
        self._sub = 0
        self._pushing = False  # after the release: the push in (approach -> push -> retract)
        self._push_rot = np.eye(3)  # the pushing hand (`pushing_rotation`), chosen when the push starts
        self._point: np.ndarray | None = None  # (3,) the grasp
        self._path: Insertion | None = None
        self._yaw = 0.0
        self._hold = np.zeros(3)

    def _set(self, phase: str) -> None:
        self.phase, self._steps, self._sub = phase, 0, 0

    def _handle(self) -> np.ndarray:
        """(2, 3) lo / hi of the object's part facing the opening, now (NaN without one)."""
        h = handle_boxes(self.geom.boxes(self.obj), self.box.inward)
        if not len(h):
            return np.full((2, 3), np.nan)
        return np.stack([h[:, 0].min(axis=0), h[:, 1].max(axis=0)])

    def _plan(self, mat: np.ndarray) -> bool:
        """Choose the grasp and the way in; False when the object shows the opening no thin part to
        pinch (read at the skill's first step: the layout is only known after the episode's reset)."""
        box, (lo, hi) = self.box, self._handle()
        pts = self.geom.collision_corners(self.obj)  # (N, 3)
        height, length = np.ptp(pts[:, 2]), np.ptp(pts @ box.inward)
        why = None
        if not float((hi - lo) @ np.abs(box.side)) <= MAX_HANDLE_WIDTH:  # NaN: no such part
            why = "shows the opening no thin part to grasp"
        elif height + self.FLOOR_CLEAR > box.ceiling - box.floor:
            why = f"is too tall ({height:.3f} m) for the opening"
        elif length + self.INSIDE > box.back - box.front:
            why = f"is too long ({length:.3f} m) to fit inside past the door"
        if why is not None:
            logger.warning("%s %s of %s: not placed", self.obj, why, self.region)
            return False
        along = float(np.mean(np.stack([lo, hi]) @ box.inward))
        across = float(np.mean(np.stack([lo, hi]) @ box.side))
        z = float(hi[2]) - self.BELOW_TOP
        self._point = box.side * across + box.inward * along + np.array([0.0, 0.0, z])
        yaw = float(np.arctan2(box.side[1], box.side[0]))  # closing axis across the handle
        self._yaw = wrist_safe_yaw(self.env, mat, yaw)
        self._path = self._insertion()
        logger.debug("insertion %s", self._path)
        return True

    def _insertion(self) -> Insertion:
        """The way in with the most room for the hand (`Insertion`): every line across at which the
        object fits between the side walls at the end (`inside`, 5 mm apart), every line 5 cm beyond
        that range on the way (`approach`), each of `HAND_MARGINS` (deepest first). The deepest with
        `ROOM` to spare wins, then the one ending nearest the cavity's middle, then the straightest;
        without that room anywhere, the most room. Room is read off a map of the hand's distance to
        everything but the object, over a grid of eef positions in the plane it moves in."""
        box, point = self.box, self._point
        pts = self.geom.collision_corners(self.obj)  # (N, 3)
        rel_in = pts @ box.inward - point @ box.inward  # (N,): the object along inward, from the grasp
        rel_across = pts @ box.side - point @ box.side
        z = point[2] + box.floor + self.FLOOR_CLEAR - float(pts[:, 2].min())
        start_in, start_across = float(point @ box.inward), float(point @ box.side)
        outside = box.front - 0.015 - float(rel_in.max())
        deepest = [box.front - m - HAND_HALF_THICKNESS for m in self.HAND_MARGINS]
        lo = box.walls[0] + self.WALL_CLEAR - float(rel_across.min())
        hi = box.walls[1] - self.WALL_CLEAR - float(rel_across.max())
        middle = (box.walls[0] + box.walls[1]) / 2 - float(rel_across.mean())
        inside = np.arange(lo, hi + 1e-9, 0.005) if hi >= lo else np.array([middle])
        lines = np.arange(min(lo, start_across) - 0.05, max(hi, start_across) + 0.05 + 1e-9, 0.005)  # (S,)
        depths = np.linspace(min(start_in, outside), max(deepest), 30)  # (D,)
        obstacles = self.geom.oriented_boxes([n for n in self.geom.names if n != self.obj])
        up = np.array([0.0, 0.0, z])
        room_map = np.array(
            [
                [
                    obstacles.distance(hand_points(box.side * a + box.inward * d + up, box.side, box.inward))
                    for d in depths
                ]
                for a in lines
            ]
        )  # (S, D)

        def room(across: np.ndarray, along: np.ndarray) -> float:
            i = np.abs(lines[:, None] - across[None]).argmin(axis=0)
            j = np.abs(depths[:, None] - along[None]).argmin(axis=0)
            return float(room_map[i, j].min())

        t = np.linspace(0.0, 1.0, 12)
        best: tuple[tuple, Insertion] | None = None
        for a in lines:
            reach = min(
                room(start_across + t * (a - start_across), np.full_like(t, start_in)),
                room(np.full_like(t, a), start_in + t * (outside - start_in)),
            )
            for rank, deep in enumerate(deepest):
                for b in inside:
                    r = min(reach, room(a + t * (b - a), outside + t * (deep - outside)))
                    short = r < self.ROOM
                    key = (short, -r if short else 0.0, rank, round(abs(b - middle), 3), abs(a - b))
                    if best is None or key < best[0]:
                        best = (key, Insertion(float(a), float(b), outside, deep, z, r))
        return best[1]

    def act(self, pos: np.ndarray, mat: np.ndarray, finger_q: float) -> Command:
        self._steps += 1
        if self._point is None and not self._plan(mat):
            self.done = True  # the episode fails; the expert holds still (a layout, not a task, is at fault)
            self._set("done")
            return Command(pos, mat, GRIPPER_OPEN)
        down = topdown_rotation(self._yaw)
        box, way = self.box, self._path
        if self.phase == "approach" and not self._pushing:
            target = self._point + np.array([0.0, 0.0, self.PRE])
            target[2] = max(target[2], min(pos[2], target[2] + 0.1))
            if np.linalg.norm(target - pos) < 0.012 and np.linalg.norm(down - mat) < 0.1 or self._steps > 80:
                self._set("descend")
            return Command(target, down, GRIPPER_OPEN)
        if self.phase == "descend":
            if np.linalg.norm(self._point - pos) < 0.006 or self._steps > 40:
                self._set("grasp")
            return Command(self._point, down, GRIPPER_OPEN, 0.5)
        if self.phase == "grasp":
            if self._steps > 8:
                self._set("lift")
            return Command(self._point, down, GRIPPER_CLOSE)
        if self.phase == "lift":  # straight up to the height it goes in at
            target = self._point.copy()
            target[2] = way.z
            if abs(pos[2] - way.z) < 0.008 or self._steps > 60:
                self._set("carry")
            return Command(target, down, GRIPPER_CLOSE, 0.5 if self._steps < 8 else 1.0)
        if self.phase == "carry":  # across to the way's line, to the opening, then in
            across, inward = (
                (way.approach, self._point @ box.inward),
                (way.approach, way.outside),
                (way.inside, way.deepest),
            )[self._sub]
            target = box.side * across + box.inward * inward + np.array([0.0, 0.0, way.z])
            if np.linalg.norm(target - pos) < 0.008 or self._steps > 60:
                if self._sub == 2:
                    self._hold = target - np.array([0.0, 0.0, self.FLOOR_CLEAR - self.SET_DOWN])
                    self._set("lower")
                else:
                    self._sub, self._steps = self._sub + 1, 0
            return Command(target, down, GRIPPER_CLOSE, 0.6)
        if self.phase == "lower":  # set it down on the floor
            if np.linalg.norm(self._hold - pos) < 0.005 or self._steps > 20:
                self._set("release")
            return Command(self._hold, down, GRIPPER_CLOSE, 0.5)
        if self.phase == "release":
            if finger_q > 0.04 or self._steps > 12:
                self._hold = pos - box.inward * 0.04 + np.array([0.0, 0.0, 0.05])
                self._set("retract")
            return Command(self._hold, down, GRIPPER_OPEN)
        if self.phase == "retract" and not self._pushing:
            if np.linalg.norm(self._hold - pos) < 0.015 or self._steps > 40:
                self._push_rot = pushing_rotation(box.inward, mat, PITCH)
                self._pushing = True
                self._set("approach")  # to the handle's outer end, the fingers closed
            return Command(self._hold, down, GRIPPER_OPEN)
        if self._pushing and self.phase in ("approach", "push"):
            return self._push(pos, mat)
        if self.phase == "retract":
            # after the push, opening as it backs off: each push is its own closed-gripper interval
            # in the recording, which is how the annotator tells a push from what follows
            if np.linalg.norm(self._hold - pos) < 0.02 or self._steps > 40:
                self.done = True
                self._set("done")
            return Command(self._hold, self._push_rot, GRIPPER_OPEN)
        return Command(self._hold, mat, GRIPPER_OPEN)

    def _push(self, pos: np.ndarray, mat: np.ndarray) -> Command:
        """Fingertips leading, at the handle's mid-height just outside its outermost point, then on
        along `inward` until the object's outermost point is `INSIDE` past the plane."""
        box, (lo, hi) = self.box, self._handle()
        outer = float(np.min(np.stack([lo, hi]) @ box.inward))
        across = float(np.mean(np.stack([lo, hi]) @ box.side))
        z = float(lo[2] + hi[2]) / 2
        contact = box.side * across + box.inward * (outer - LEAD) + np.array([0.0, 0.0, z])
        remaining = box.front + self.INSIDE - outer
        if self._sub == 0:  # above the contact point, turning, then down just outside it
            target = contact - box.inward * 0.01 + np.array([0.0, 0.0, 0.06])
            if np.linalg.norm(target - pos) < 0.012 and np.linalg.norm(self._push_rot - mat) < 0.15:
                self._sub = 1
            return Command(target, self._push_rot, GRIPPER_CLOSE)
        if self._sub == 1:
            target = contact - box.inward * 0.01
            if np.linalg.norm(target - pos) < 0.008 or self._steps > 60:
                self._set("push")
                self._sub = 2
            return Command(target, self._push_rot, GRIPPER_CLOSE, 0.5)
        target = contact + box.inward * min(remaining + 0.01, 0.04)
        if remaining <= 0.0 or self._steps > 120:
            self._set("retract")
            self._hold = pos - box.inward * 0.06 + np.array([0.0, 0.0, 0.08])
        return Command(target, self._push_rot, GRIPPER_CLOSE, 0.5)
