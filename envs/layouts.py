"""Object layouts of a LIBERO task: read them from MuJoCo states, compare them with the suite's
evaluation init states, and derive reproducible seeds for LIBERO's placement sampler.

Why: a success rate counts as a generalization result only when no training demo started from an
evaluation init state (docs/protocol.md). `lara collect --init sampled` draws start layouts with
LIBERO's own placement sampler (the BDDL regions) and uses this module to refuse any layout whose
objects *all* lie within `threshold` metres (x/y) of one of the task's shipped init states.

A layout is the x/y position of every free-jointed object (`objects_dict`; fixtures have no free
joint and never move). Heights are left out on purpose: objects are placed slightly above their
support and drop during the protocol's wait steps (measured on libero_object task 0: up to 4 cm
in z, under 1 mm in x/y), so a z difference says nothing about where an object stands.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from lara.utils.errors import LaraUserError

LAYOUT_THRESHOLD_M: float = 0.01  # the "within 1 cm of an evaluation init state"
_REFERENCES: dict[tuple[str, int], np.ndarray] = {}  # (suite, task_id) -> (N, O, 2), per process


@dataclass(frozen=True)
class LayoutSpec:
    """Where each free-jointed object's position sits in a flattened MuJoCo state.

    A flattened state (robosuite `MjSimState.flatten()`, also the shipped init states) is
    `[time, qpos (nq), qvel (nv)]`; a free joint's qpos is `[x, y, z, qw, qx, qy, qz]`.
    """

    names: tuple[str, ...]
    qpos_addr: tuple[int, ...]  # start of each object's free-joint qpos
    nq: int

    @classmethod
    def from_env(cls, env: Any) -> LayoutSpec:
        """Read the objects and their qpos addresses from a `LiberoEnv` (any task, any suite)."""
        model = env.sim.model
        names, addrs = [], []
        for name, obj in env.raw_env.objects_dict.items():
            for joint in obj.joints:
                start, end = model.get_joint_qpos_addr(joint)
                if end - start == 7:  # a free joint; hinge/slide joints (drawers, doors) are not layout
                    names.append(name)
                    addrs.append(int(start))
        if not names:
            raise LaraUserError(
                f"{env.suite} task {env.task_id} has no free-jointed objects: no layout to sample"
            )
        return cls(tuple(names), tuple(addrs), int(model.nq))

    def positions(self, state: np.ndarray) -> np.ndarray:
        """(D,) flattened MuJoCo state -> (O, 2) x/y of every object, in `names` order."""
        state = np.asarray(state, dtype=np.float64)
        if state.ndim != 1 or state.shape[0] < 1 + self.nq:
            raise LaraUserError(
                f"a flattened MuJoCo state of this task has >= {1 + self.nq} values, got {state.shape}"
            )
        qpos = state[1 : 1 + self.nq]  # (nq,)
        return np.stack([qpos[a : a + 2] for a in self.qpos_addr])  # (O, 2)


@dataclass(frozen=True)
class LayoutCheck:
    """How close a layout is to the evaluation init states.

    `distance` is, for the nearest shipped init state, the largest x/y distance of any object from
    its position there (metres): below `threshold` means every object is within `threshold`.
    """

    nearest_index: int  # which shipped init state is nearest
    distance: float
    threshold: float

    @property
    def too_close(self) -> bool:
        return self.distance <= self.threshold

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "nearest_init_state": self.nearest_index,
            "distance_m": round(self.distance, 5),
            "threshold_m": self.threshold,
            "too_close": self.too_close,
        }


def check_layout(
    layout: np.ndarray, references: np.ndarray, threshold: float = LAYOUT_THRESHOLD_M
) -> LayoutCheck:
    """Compare one (O, 2) layout with (N, O, 2) reference layouts (same object order)."""
    layout, references = np.asarray(layout, dtype=np.float64), np.asarray(references, dtype=np.float64)
    if references.ndim != 3 or references.shape[1:] != layout.shape or references.shape[0] == 0:
        raise LaraUserError(
            f"reference layouts must be (N, {layout.shape[0]}, 2) with N >= 1, got {references.shape}"
        )
    per_object = np.linalg.norm(references - layout[None], axis=-1)  # (N, O)
    worst = per_object.max(axis=1)  # (N,): the farthest-moved object decides
    index = int(worst.argmin())
    return LayoutCheck(index, float(worst[index]), float(threshold))


def reference_layouts(env: Any) -> np.ndarray:
    """(N, O, 2) layouts of the task's shipped (evaluation) init states, decoded once per process."""
    key = (env.suite, env.task_id)
    if key not in _REFERENCES:
        spec = LayoutSpec.from_env(env)
        _REFERENCES[key] = np.stack([spec.positions(s) for s in env.init_states])  # (N, O, 2)
    return _REFERENCES[key]


def check_env_layout(env: Any, threshold: float = LAYOUT_THRESHOLD_M) -> LayoutCheck:
    """Check the layout the env is in now against its task's shipped init states."""
    return check_layout(
        LayoutSpec.from_env(env).positions(env.get_sim_state()), reference_layouts(env), threshold
    )


def layout_seed(*parts: object) -> int:
    """A seed for numpy's legacy global RNG (0 .. 2**32 - 1) from any key, stable across runs and
    processes (Python's `hash` is salted per process)."""
    key = ":".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")


__all__ = [
    "LAYOUT_THRESHOLD_M",
    "LayoutCheck",
    "LayoutSpec",
    "check_env_layout",
    "check_layout",
    "layout_seed",
    "reference_layouts",
]
