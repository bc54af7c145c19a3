"""What a skill asks of the arm at one step, and the fixture joint reads all skills share.

A skill (`envs.expert_skills.*`) never builds controller actions: it returns a `Command` (an eef
pose to go to, the gripper, a speed cap) and `envs.scripted_expert.ScriptedExpert` tracks it with
the same OSC_POSE gains as pick-and-place, so that every skill moves the arm the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.protocol import GRIPPER_CLOSE, GRIPPER_OPEN

__all__ = [
    "GRIPPER_CLOSE",
    "GRIPPER_OPEN",
    "Command",
    "FixtureJoint",
    "facing_rotation",
    "rot_to_axis_angle",
    "rotate_z",
    "wrist_safe_yaw",
]

WRIST_MARGIN = 0.25  # rad kept from the Panda's last joint's limits


@dataclass
class Command:
    pos: np.ndarray  # (3,) eef target, world
    rot: np.ndarray  # (3, 3) eef target orientation (columns: the eef's x, y, z axes in the world)
    gripper: float  # GRIPPER_OPEN or GRIPPER_CLOSE
    speed: float = 1.0  # cap on the largest action component


def rot_to_axis_angle(mat: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) axis-angle (robust near 0 and pi)."""
    cos = float(np.clip((np.trace(mat) - 1.0) / 2.0, -1.0, 1.0))
    angle = math.acos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    if angle > math.pi - 1e-4:
        # axis from the diagonal: R = 2 a a^T - I
        axis = np.sqrt(np.clip((np.diag(mat) + 1.0) / 2.0, 0.0, None))
        k = int(np.argmax(axis))
        axis[[i for i in range(3) if i != k]] *= np.sign(mat[k, [i for i in range(3) if i != k]] + 1e-12)
        return axis / np.linalg.norm(axis) * angle
    vec = np.array([mat[2, 1] - mat[1, 2], mat[0, 2] - mat[2, 0], mat[1, 0] - mat[0, 1]])
    return vec / (2.0 * math.sin(angle)) * angle


def facing_rotation(direction: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
    """(3, 3) eef orientation whose fingers point along the horizontal `direction` (3,) with the
    closing axis vertical: a hand that grasps a horizontal handle bar from the side. Of the two such
    hands (closing axis up or down), the one the least rotation away from `current` (3, 3): the
    other one twists the Panda's last joint to its limit on the way back to a top-down hand."""
    z = np.asarray(direction, dtype=float).copy()
    z[2] = 0.0
    z /= np.linalg.norm(z)
    best, best_angle = np.eye(3), np.inf
    for up in (1.0, -1.0):
        x = np.array([0.0, 0.0, up])
        rot = np.stack([x, np.cross(z, x), z], axis=1)
        angle = (
            0.0 if current is None else float(np.arccos(np.clip((np.trace(rot @ current.T) - 1) / 2, -1, 1)))
        )
        if angle < best_angle:
            best, best_angle = rot, angle
    return best


def rotate_z(v: np.ndarray, angle: float) -> np.ndarray:
    """(3,) `v` turned by `angle` (rad) about the world's vertical."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


def wrist_safe_yaw(env, mat: np.ndarray, yaw: float, turn: float = 0.0) -> float:  # env: LiberoEnv
    """Of the top-down hand yaws `yaw + k pi` (the same grasp for a two-finger hand), the nearest to
    the hand's now (`mat` (3, 3)) that keeps the Panda's last joint within its range, `WRIST_MARGIN`
    inside, both there and after a further `turn` (rad, counter-clockwise seen from above) of the hand
    about the vertical. For a hand pointing down, the last joint turns against the yaw: a yaw of
    +d needs the joint at -d. Without such a yaw, the nearest one."""
    robot = env.raw_env.robots[0]
    joint = robot.robot_joints[-1]
    model = env.sim.model
    lo, hi = model._model.jnt_range[model.joint_name2id(joint)] + np.array([WRIST_MARGIN, -WRIST_MARGIN])
    q = float(env.sim.data.qpos[model.get_joint_qpos_addr(joint)])
    now = math.atan2(mat[1, 0], mat[0, 0])
    best: tuple[tuple[bool, float], float] | None = None
    for k in range(-3, 4):  # the hand's turn to each equivalent yaw; the joint ends at q - turn
        delta = yaw - now + k * math.pi
        start, end = q - delta, q - delta - turn
        key = (not (lo <= start <= hi and lo <= end <= hi), abs(delta))
        if best is None or key < best[0]:
            best = (key, now + delta)
    return best[1]


class FixtureJoint:
    """The joint of an articulated fixture part named by a LIBERO goal atom: a region site that moves
    with a drawer (`wooden_cabinet_1_middle_region`) or a fixture itself (`flat_stove_1`,
    `microwave_1`). Reads LIBERO's own open / close / turn-on test and the ranges it uses."""

    def __init__(self, env, name: str):  # env: envs.libero_env.LiberoEnv
        raw = env.raw_env
        self.env, self.name = env, name
        if name in raw.object_sites_dict:
            site = raw.object_sites_dict[name]
            self.fixture, joints = site.parent_name, list(site.joints)
        else:
            self.fixture, joints = name, list(raw.get_object(name).joints)
        if not joints:
            raise ValueError(f"{name!r} has no joint")
        self.joint = joints[0]
        model = env.sim.model
        self.jid = model.joint_name2id(self.joint)
        self.body = int(model._model.jnt_bodyid[self.jid])
        self.hinge = int(model._model.jnt_type[self.jid]) == 3
        self.props = raw.get_object(self.fixture).object_properties["articulation"]

    @property
    def state(self):  # LIBERO's object state of the atom's argument
        return self.env.raw_env.object_states_dict[self.name]

    @property
    def qpos(self) -> float:
        sim = self.env.sim
        return float(sim.data.qpos[sim.model.get_joint_qpos_addr(self.joint)])

    def axis(self) -> np.ndarray:
        """(3,) the joint axis in the world (a slide's direction of +qpos, a hinge's rotation axis)."""
        return np.array(self.env.sim.data._data.xaxis[self.jid])

    def anchor(self) -> np.ndarray:
        return np.array(self.env.sim.data._data.xanchor[self.jid])

    def goal_qpos(self, kind: str, margin: float) -> float:
        """A joint position `margin` past the edge of LIBERO's range for `kind` (open, close, turnon,
        turnoff) in the direction that satisfies the predicate, clipped to the joint's range."""
        lo, hi = sorted(self.props[f"default_{kind}_ranges"])
        other = {"open": "close", "close": "open", "turnon": "turnoff", "turnoff": "turnon"}[kind]
        olo, ohi = sorted(self.props[f"default_{other}_ranges"])
        if (lo + hi) / 2 > (olo + ohi) / 2:  # the predicate holds above the edge
            q = max(lo, ohi) + margin
        else:
            q = min(hi, olo) - margin
        jlo, jhi = self.env.sim.model._model.jnt_range[self.jid]
        return float(np.clip(q, jlo + 1e-3, jhi - 1e-3)) if jhi > jlo else q
