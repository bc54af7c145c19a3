"""Where in its target region a placed object goes (privileged state): side by side when a plan puts
several objects on one region, and inside the open part of a drawer.

Why: libero_10's "put both moka pots on the stove" asks for two `On(pot, flat_stove_1_cook_region)`
atoms. Placing both at the region's centre drops the second pot onto the first. LIBERO's `On` for a
region only needs each object's body position inside the region's box (and contact with the
fixture), so the objects go side by side: along the region's horizontal axis (x or y) on which
their footprints are narrower in sum, packed around the centre with a gap, each body position kept
`margin` inside the region. The first object placed takes the slot farthest from the robot base:
the arm then lowers the next one without reaching over it.

A drawer's region reaches back under the cabinet: its centre can lie deeper than the drawer is
open (libero_10 task 3's bottom drawer starts open 13.5-15.3 cm and the bowl is 10.8 cm across), and
a bowl lowered there catches on the cabinet's frame and stops the drawer closing. `drawer_spot`
moves the target out, just enough that the object's footprint clears the frame by `margin`.

`slot_offsets` is the pure geometry; `place_spot` picks either for a plan step, and
`shared_region_slots` and `drawer_spot` read the scene (a `LiberoEnv` and its
`SceneGeometry`). Only `On` regions: objects put `In` a container (a basket) already land beside
one another (libero_10 tasks 0, 1 and 7).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.expert_skills.articulated import opening_direction
from envs.expert_skills.command import FixtureJoint
from envs.task_plan import Step


def slot_offsets(widths: np.ndarray, half: float, gap: float = 0.02, margin: float = 0.015) -> np.ndarray:
    """(n,) centre offsets along one axis of n footprints of `widths` (n,) packed side by side around
    0 with `gap` between neighbours, each within `half - margin` of 0 (clipped: they may then touch)."""
    edges = np.concatenate([[0.0], np.cumsum(widths[:-1] + gap)])  # (n,) left edge of each
    centres = edges + widths / 2 - (widths.sum() + gap * (len(widths) - 1)) / 2
    return np.clip(centres, -(half - margin), half - margin)


def shared_region_slots(env: Any, geom: Any, steps: list[Step], base_xy: np.ndarray) -> dict[int, np.ndarray]:
    """{step index: (2,) body xy to place at} for the `place` steps that share an `On` region target
    with another one; the other steps are not in it (they use the region's centre)."""
    groups: dict[str, list[int]] = {}
    for i, step in enumerate(steps):
        if step.skill == "place" and not step.inside and step.target in env.raw_env.object_sites_dict:
            groups.setdefault(str(step.target), []).append(i)
    slots: dict[int, np.ndarray] = {}
    for target, idx in groups.items():
        if len(idx) < 2:
            continue
        centre, half, _ = geom.site(target)
        boxes = [geom.collision_corners(steps[i].obj)[:, :2] for i in idx]  # (N, 2) each
        lo, hi = np.array([b.min(0) for b in boxes]), np.array([b.max(0) for b in boxes])  # (n, 2)
        axis = int(np.argmin((hi - lo).sum(0)))  # the axis along which they fit side by side
        # slot_offsets lays the footprints out from low to high along the axis: the first placed
        # object must be at the end away from the robot
        order = np.arange(len(idx)) if centre[axis] < base_xy[axis] else np.arange(len(idx))[::-1]
        offsets = slot_offsets(hi[order, axis] - lo[order, axis], float(half[axis]))  # (n,)
        for k, j in enumerate(order):
            spot = centre[:2].copy()
            # the footprint, not the body position, sits in the slot: shift by the body's offset in it
            body = geom.body_pos(steps[idx[j]].obj)[axis]
            spot[axis] += offsets[k] + body - (lo[j, axis] + hi[j, axis]) / 2
            slots[idx[j]] = spot
    return slots


def drawer_spot(env: Any, geom: Any, obj: str, region: str, margin: float = 0.025) -> np.ndarray:
    """(2,) body xy at which `obj` goes into `region` (a site on a drawer): the region's centre, moved
    out along the drawer's axis where the object's footprint there would reach under the cabinet
    (deeper than the drawer is open, less `margin`)."""
    joint = FixtureJoint(env, region)
    out = opening_direction(joint)
    centre = geom.site(region)[0]
    corners = geom.body_corners(joint.body)  # (G, 8, 3) the drawer's geoms
    lo, hi = corners.min(axis=1), corners.max(axis=1)  # (G, 3)
    floor = np.all((lo[:, :2] <= centre[:2]) & (centre[:2] <= hi[:, :2]), axis=1) & (hi[:, 2] < centre[2])
    if not np.any(floor):
        return centre[:2]
    front = float((corners[floor].reshape(-1, 3) @ out).max())  # the floor's edge at the drawer's front
    inside = front - abs(joint.qpos - joint.goal_qpos("close", 0.0))  # where the cabinet's frame is
    along = geom.collision_corners(obj) @ out  # (N,)
    back = float(geom.body_pos(obj) @ out - along.min())  # body to the footprint's deep edge
    deepest = inside + back + margin
    shift = max(0.0, deepest - float(centre @ out))
    return centre[:2] + shift * out[:2]


def place_spot(env: Any, geom: Any, steps: list[Step], index: int, base_xy: np.ndarray) -> np.ndarray | None:
    """(2,) where plan step `index` puts its object (body xy), or None: the target's own centre."""
    step = steps[index]
    if step.skill != "place" or step.target not in env.raw_env.object_sites_dict:
        return None
    if step.inside and env.raw_env.object_sites_dict[step.target].joints:
        return drawer_spot(env, geom, step.obj, str(step.target))
    return shared_region_slots(env, geom, steps, base_xy).get(index)
