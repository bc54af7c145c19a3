"""Objects to move out of the way before a plan step, and a free table spot to put each (privileged
state; the scripted expert runs the move as a pick-and-place onto the spot).

Why: two libero_goal scenes defeat the plan's skills as the objects lie. The top drawer, once open,
hangs over the bowl that must then go inside it, and the top-down hand cannot reach under it; the
cream cheese lies where the plate must be pushed, and the light plate rides up onto it. One hand
cannot hold an object aside while it works, so the object is set down first at a free spot: out of
the drawer's sweep, or clear of the pushed object's goal region.

`with_set_asides` inserts the `set_aside(o)` steps into a plan (for an opening drawer only objects a
later step picks up: the rest may stay under the drawer); `aside_spot` picks the spot when the step
starts. Both read the scene (a `LiberoEnv` and its `SceneGeometry`); `overlaps` and `free_spot` are
the pure geometry (xy boxes) under them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.expert_skills.command import FixtureJoint
from envs.task_plan import Step


def box_gap(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(A, B) gap between each (A, 2, 2) xy box (lo, hi) and each (B, 2, 2) box; <= 0 when they touch
    or overlap (then minus the smaller of the two overlap depths)."""
    lo_a, hi_a = boxes_a[:, None, 0], boxes_a[:, None, 1]  # (A, 1, 2)
    lo_b, hi_b = boxes_b[None, :, 0], boxes_b[None, :, 1]  # (1, B, 2)
    sep = np.maximum(lo_b - hi_a, lo_a - hi_b)  # (A, B, 2): > 0 apart along that axis
    outside = np.linalg.norm(np.maximum(sep, 0.0), axis=-1)  # (A, B)
    return np.where(np.all(sep <= 0.0, axis=-1), sep.max(axis=-1), outside)


def overlaps(box: np.ndarray, zone: np.ndarray, margin: float = 0.0) -> bool:
    """The (2, 2) xy box comes within `margin` of the (2, 2) xy `zone`."""
    return bool(box_gap(box[None], zone[None])[0, 0] < margin)


def free_spot(
    start: np.ndarray,
    half: np.ndarray,
    blocked: np.ndarray,
    base: np.ndarray,
    reach: tuple[float, float] = (0.45, 0.72),
    table: tuple[np.ndarray, np.ndarray] = (np.array([-0.35, -0.3]), np.array([0.15, 0.3])),
    want: float = 0.04,
    step: float = 0.02,
    toward: np.ndarray | None = None,
) -> np.ndarray:
    """(2,) centre for an object of xy half-size `half` (2,) now at `start` (2,): on a `step` grid of
    the `table` area within `reach` (min, max) of the robot's `base` (2,). Of the spots at least
    `want` clear of every (K, 2, 2) `blocked` box, the nearest to `start` (a short carry there) plus,
    given, to `toward` (2,) (a short carry on to where the object goes next); else the one with the
    most clearance."""
    xs = np.arange(table[0][0], table[1][0] + 1e-9, step)
    ys = np.arange(table[0][1], table[1][1] + 1e-9, step)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)  # (P, 2)
    dist = np.linalg.norm(grid - base, axis=1)
    grid = grid[(dist >= reach[0]) & (dist <= reach[1])]
    near = np.linalg.norm(grid - start, axis=1)  # (P,)
    if toward is not None:
        near = near + np.linalg.norm(grid - toward, axis=1)
    if len(blocked) == 0:
        return grid[np.argmin(near)]
    spots = np.stack([grid - half, grid + half], axis=1)  # (P, 2, 2)
    clear = box_gap(spots, blocked).min(axis=1)  # (P,)
    ok = clear >= want
    if np.any(ok):
        return grid[np.flatnonzero(ok)[np.argmin(near[ok])]]
    return grid[np.argmax(clear)]


def xy_box(geom: Any, name: str) -> np.ndarray:
    """(2, 2) lo / hi of an object's collision geoms in the horizontal plane."""
    pts = geom.collision_corners(name)
    return np.stack([pts[:, :2].min(0), pts[:, :2].max(0)])


def _open_shift(env: Any, region: str) -> np.ndarray:
    """(3,) how far the drawer holding `region` moves when the expert opens it."""
    joint = FixtureJoint(env, region)
    return joint.axis() * (joint.goal_qpos("open", 0.012) - joint.qpos)


def keep_clear(env: Any, geom: Any, step: Step) -> np.ndarray:
    """(K, 2, 2) xy boxes a step needs free of other objects: a drawer's sweep as it opens, or the
    pushed object's footprint anywhere in its goal region and on the straight way there."""
    if step.skill == "open":
        corners = geom.body_corners(FixtureJoint(env, step.obj).body).reshape(-1, 3)  # (G * 8, 3)
        pts = np.concatenate([corners, corners + _open_shift(env, step.obj)])[:, :2]
        return np.stack([pts.min(0), pts.max(0)])[None]
    if step.skill == "push" and step.target in env.raw_env.object_sites_dict:
        centre, half, _ = geom.site(step.target)
        radius = 0.5 * float(np.max(np.diff(xy_box(geom, step.obj), axis=0)))
        region = np.stack([centre[:2] - half[:2] - radius, centre[:2] + half[:2] + radius])
        start = geom.body_pos(step.obj)[:2]
        line = start + np.linspace(0.0, 1.0, 8)[:, None] * (centre[:2] - start)  # (8, 2)
        way = np.stack([line - radius, line + radius], axis=1)  # (8, 2, 2)
        return np.concatenate([region[None], way])
    return np.zeros((0, 2, 2))


def with_set_asides(env: Any, geom: Any, steps: list[Step]) -> list[Step]:
    """`steps` with a `set_aside(o)` before each step whose keep-clear zone's first box (the drawer's
    sweep, the push's goal region) holds movable object o."""
    out: list[Step] = []
    for i, step in enumerate(steps):
        zone = keep_clear(env, geom, step)
        if len(zone):
            later = {s.obj for s in steps[i + 1 :] if s.skill == "place"}
            movable = later if step.skill == "open" else set(env.raw_env.objects_dict) - {step.obj}
            out += [Step("set_aside", n) for n in sorted(movable) if overlaps(xy_box(geom, n), zone[0])]
        out.append(step)
    return out


def aside_spot(env: Any, geom: Any, steps: list[Step], index: int, base: np.ndarray) -> np.ndarray:
    """(2,) a free table spot for set_aside step `index`'s object: clear of the other objects, the
    fixtures and the next step's keep-clear zone, near the object's later place target (the robot
    base `base` (2,) bounds the reach)."""
    name, following = steps[index].obj, steps[index + 1]
    bottom = float(geom.collision_corners(name)[:, 2].min())
    boxes = [geom.boxes(n) for n in geom.names if n != name]
    boxes = np.concatenate(boxes) if boxes else np.zeros((0, 2, 3))  # (K, 2, 3)
    boxes = boxes[(boxes[:, 1, 2] > bottom + 0.005) & (boxes[:, 0, 2] > bottom - 0.05)]  # not the table
    blocked = np.concatenate([boxes[:, :, :2], keep_clear(env, geom, following)])
    toward = None
    later = [s for s in steps[index + 1 :] if s.skill == "place" and s.obj == name]
    if later and later[0].target in env.raw_env.object_sites_dict:
        toward = geom.site(str(later[0].target))[0][:2]
        if following.skill == "open":  # the region moves out with the drawer
            toward = toward + _open_shift(env, following.obj)[:2]
    box = xy_box(geom, name)
    return free_spot(box.mean(0), (box[1] - box[0]) / 2, blocked, base, want=0.01, toward=toward)
