"""World-frame geometry of a LIBERO scene, read from MuJoCo: one walk of the body tree for all users.

An object (or fixture) is its root body (`obj_body_id`) and every body whose ancestor chain reaches
it (`body_subtree_geoms`): a drawer's parts belong to the cabinet. Two views of those geoms:
- collision (the scripted expert: what the gripper can hit): collision geoms (contype or
  conaffinity set), each as the 8 world corners of its local bounding box (`collision_corners`),
  their axis-aligned boxes (`boxes`) or the exact oriented boxes (`oriented_boxes`);
- visual (the annotator's boxes: what the camera sees): the visual geoms (group 1; all geoms when
  an object has none), mesh vertices (their convex hull) or the 8 box corners otherwise
  (`visual_points`); a region site is its box's 8 corners.
Region sites (`site`) give a placement target's centre and extent. Geom lists and local points
are cached per MuJoCo model: a hard reset rebuilds the simulator, so the env's `sim` is read on
every call and the caches are dropped when its model changes. Points follow the current poses
(call after `sim.forward()` when the state was set by hand).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

CORNER_SIGNS = np.array(
    [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float
)  # (8, 3)
MJ_GEOM_MESH = 7  # mujoco.mjtGeom.mjGEOM_MESH
VISUAL_GROUP = 1  # robosuite / LIBERO put visual geoms in group 1, collision geoms in group 0


def body_subtree_geoms(model: Any, root_body: int) -> np.ndarray:
    """Geom ids of every body whose ancestor chain reaches `root_body` (the object and its parts)."""
    parents = model.body_parentid
    in_tree = np.zeros(model.nbody, dtype=bool)
    for b in range(model.nbody):
        p = b
        while p > 0 and p != root_body:
            p = parents[p]
        in_tree[b] = p == root_body or b == root_body
    return np.flatnonzero(in_tree[model.geom_bodyid])


def hull_points(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull (a box's extremes under any rigid motion and projection are hull
    vertices, so this is exact and shrinks 100k-vertex meshes to a few hundred points)."""
    if points.shape[0] <= 64:
        return points
    try:
        from scipy.spatial import ConvexHull

        return points[ConvexHull(points).vertices]
    except Exception:  # noqa: BLE001 - degenerate (flat) meshes or no scipy: keep every vertex
        return points


@dataclass
class OrientedBoxes:
    centre: np.ndarray  # (K, 3) world
    rot: np.ndarray  # (K, 3, 3) box frame -> world
    half: np.ndarray  # (K, 3)

    def distance(self, points: np.ndarray) -> float:
        """Smallest distance from any of the (P, 3) points to any box (0 inside)."""
        if len(self.centre) == 0:
            return math.inf
        local = np.einsum("kji,pkj->pki", self.rot, points[:, None, :] - self.centre[None])  # (P, K, 3)
        gap = np.maximum(np.abs(local) - self.half[None], 0.0)  # (P, K, 3)
        return float(np.linalg.norm(gap, axis=-1).min())


class SceneGeometry:
    """Geometry of one LIBERO env's objects, fixtures and region sites (env: `LiberoEnv` or anything
    with `sim` and `raw_env`). `names`: objects then fixtures; `body_ids`: their root bodies plus
    any part registered with `add_part`; `site_names`: the region sites."""

    def __init__(self, env: Any):
        self.env = env
        raw = env.raw_env
        self.names = list(raw.objects_dict) + list(raw.fixtures_dict)
        self.body_ids = {name: raw.obj_body_id[name] for name in self.names}
        self.site_names = set(raw.object_sites_dict)
        self._model_key: int | None = None
        self._cache: dict[tuple[str, str], Any] = {}

    @property
    def raw(self):  # LIBERO problem env
        return self.env.raw_env

    @property
    def sim(self):  # robosuite MjSim; rebuilt by every hard reset, so never cached
        return self.env.sim

    @property
    def model(self):  # the current MuJoCo model
        return self.sim.model._model

    def _cached(self, kind: str, key: str, build):
        model = self.model
        if self._model_key != id(model):
            self._model_key, self._cache = id(model), {}
        if (kind, key) not in self._cache:
            self._cache[kind, key] = build(model)
        return self._cache[kind, key]

    def has(self, key: str) -> bool:
        return key in self.body_ids or key in self.site_names

    def add_part(self, key: str, body: int) -> None:
        """Name the subtree of `body` (e.g. the moving drawer that holds a region) `key`."""
        self.body_ids.setdefault(key, body)

    # ------------------------------------------------------------------ collision view (the expert)
    def collision_geoms(self, name: str) -> np.ndarray:
        """Collision geoms of an object's body subtree."""

        def build(model):
            ids = body_subtree_geoms(model, self.body_ids[name])
            return ids[(model.geom_contype[ids] | model.geom_conaffinity[ids]) > 0]

        return self._cached("collision", name, build)

    def collision_corners(self, name: str) -> np.ndarray:
        """(8 * n_geoms, 3) world corners of the object's collision-geom bounding boxes."""
        model, data = self.model, self.sim.data._data
        ids = self.collision_geoms(name)
        aabb = model.geom_aabb[ids]  # (G, 6): local centre (3), half sizes (3)
        local = aabb[:, None, :3] + aabb[:, None, 3:] * CORNER_SIGNS[None]  # (G, 8, 3)
        rot = data.geom_xmat[ids].reshape(-1, 3, 3)  # (G, 3, 3)
        world = np.einsum("gij,gkj->gki", rot, local) + data.geom_xpos[ids][:, None, :]  # (G, 8, 3)
        return world.reshape(-1, 3)

    def body_corners(self, body: int) -> np.ndarray:
        """(G, 8, 3) world corners of the collision geoms of one body only (not its subtree): a
        drawer's or a knob's moving part."""
        model, data = self.model, self.sim.data._data
        ids = np.flatnonzero(model.geom_bodyid == body)
        ids = ids[(model.geom_contype[ids] | model.geom_conaffinity[ids]) > 0]
        aabb = model.geom_aabb[ids]  # (G, 6): local centre, half sizes
        local = aabb[:, None, :3] + aabb[:, None, 3:] * CORNER_SIGNS[None]  # (G, 8, 3)
        rot = data.geom_xmat[ids].reshape(-1, 3, 3)  # (G, 3, 3)
        return np.einsum("gij,gkj->gki", rot, local) + data.geom_xpos[ids][:, None, :]

    def oriented_boxes(self, names: list[str]) -> OrientedBoxes:
        """Exact (oriented) bounding boxes of the collision geoms of `names`."""
        model, data = self.model, self.sim.data._data
        ids = np.concatenate([self.collision_geoms(n) for n in names]) if names else np.zeros(0, dtype=int)
        aabb = model.geom_aabb[ids]  # (K, 6): local centre, half sizes
        rot = data.geom_xmat[ids].reshape(-1, 3, 3)  # (K, 3, 3)
        centre = np.einsum("kij,kj->ki", rot, aabb[:, :3]) + data.geom_xpos[ids]  # (K, 3)
        return OrientedBoxes(centre, rot, aabb[:, 3:])

    def boxes(self, name: str) -> np.ndarray:
        """(G, 2, 3) world axis-aligned box (lo, hi) of each collision geom of the object."""
        corners = self.collision_corners(name).reshape(-1, 8, 3)  # (G, 8, 3)
        return np.stack([corners.min(axis=1), corners.max(axis=1)], axis=1)

    def has_articulation(self, name: str) -> bool:
        """True when a fixture has hinge/slide joints (drawers, doors, knobs)."""
        model = self.model
        bodies = set(model.geom_bodyid[self.collision_geoms(name)].tolist()) if name in self.names else set()
        root = self.raw.obj_body_id.get(name)
        if root is not None:
            bodies.add(root)
        for j in range(model.njnt):
            if model.jnt_bodyid[j] in bodies and model.jnt_type[j] in (2, 3):  # slide, hinge
                return True
        return False

    def body_pos(self, name: str) -> np.ndarray:
        return np.array(self.sim.data.body_xpos[self.raw.obj_body_id[name]])

    def site(self, name: str) -> tuple[np.ndarray, np.ndarray, str | None]:
        """(centre (3,), half sizes (3,) rotated into the world, parent name) of a region site."""
        site = self.raw.object_sites_dict[name]
        pos = np.array(self.sim.data.get_site_xpos(name))
        mat = np.array(self.sim.data.get_site_xmat(name))
        return pos, np.abs(mat @ np.asarray(site.size, dtype=float)), site.parent_name

    # ------------------------------------------------------------------ visual view (the annotator)
    def visual_geoms(self, key: str) -> np.ndarray:
        """Visual geoms of the object's subtree (all geoms when it has no visual ones)."""

        def build(model):
            ids = body_subtree_geoms(model, self.body_ids[key])
            visual = ids[model.geom_group[ids] == VISUAL_GROUP]
            return visual if visual.size else ids

        return self._cached("visual", key, build)

    def _local_visual_points(self, key: str) -> list[tuple[int, np.ndarray]]:
        """Per visual geom: (id, its points in the geom frame): mesh hull vertices or 8 box corners."""

        def build(m):
            out: list[tuple[int, np.ndarray]] = []
            for g in self.visual_geoms(key):
                if m.geom_type[g] == MJ_GEOM_MESH and m.geom_dataid[g] >= 0:
                    mesh = m.geom_dataid[g]
                    start, n = m.mesh_vertadr[mesh], m.mesh_vertnum[mesh]
                    pts = hull_points(
                        np.asarray(m.mesh_vert[start : start + n], dtype=np.float64)
                    )  # (k, 3) geom frame
                else:
                    aabb = m.geom_aabb[g]  # (6,): local centre, half sizes
                    pts = aabb[None, :3] + aabb[None, 3:] * CORNER_SIGNS  # (8, 3)
                out.append((int(g), pts))
            return out

        return self._cached("visual_points", key, build)

    def visual_points(self, key: str) -> np.ndarray:
        """(N, 3) world points of an object's visual geoms, or the 8 corners of a region site."""
        data = self.sim.data._data
        if key in self.body_ids:
            chunks = []
            for g, local in self._local_visual_points(key):
                rot = data.geom_xmat[g].reshape(3, 3)  # (3, 3)
                chunks.append(local @ rot.T + data.geom_xpos[g][None])  # (n, 3)
            return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 3))
        if key in self.site_names:
            sid = self.sim.model.site_name2id(key)
            size = np.asarray(self.model.site_size[sid], dtype=np.float64)  # (3,) half sizes
            rot = data.site_xmat[sid].reshape(3, 3)
            return (CORNER_SIGNS * size[None]) @ rot.T + data.site_xpos[sid][None]  # (8, 3)
        raise KeyError(key)

    def position(self, key: str) -> np.ndarray:
        """(3,) centre of the object's visual points (for "which object is in the gripper")."""
        pts = self.visual_points(key)
        return 0.5 * (pts.min(axis=0) + pts.max(axis=0))
