"""Object boxes in image pixels by projecting MuJoCo geometry through the camera.

Why project geometry instead of rendering segmentation: projection needs no renderer (a replayed
state plus `forward()` is enough, ~100x cheaper than a render), so every frame of every episode
gets boxes. Each object's visual geoms contribute their points in the world frame (mesh vertices
for mesh geoms, the 8 corners of the local bounding box otherwise); the 2D box is their extent
after projection. Occlusion is ignored: a box covers the whole object, hidden parts included.

Pixel convention: boxes are `[x1, y1, x2, y2]` in the upright dataset image at its resolution,
x to the right, y down, edges on pixel boundaries (x2, y2 exclusive, like numpy slices).
robosuite's camera matrix (`get_camera_transform_matrix`) maps to the *correct* view (its
`get_camera_segmentation` is `render()[::-1]`); LIBERO datasets store `render()[::-1, ::-1]`,
i.e. the correct view mirrored left-right, so u -> W - u. The sim tests check this against
rendered segmentation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)  # (8, 3)
MJ_GEOM_MESH = 7  # mujoco.mjtGeom.mjGEOM_MESH
VISUAL_GROUP = 1  # robosuite / LIBERO put visual geoms in group 1, collision geoms in group 0


def camera_matrix(sim: Any, camera: str, height: int, width: int) -> np.ndarray:
    """(4, 4) world -> pixel (homogeneous) for the correct (non-flipped) view at height x width."""
    from robosuite.utils.camera_utils import get_camera_transform_matrix

    return np.asarray(get_camera_transform_matrix(sim, camera, height, width), dtype=np.float64)


def project(points: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) world points -> ((N, 2) continuous pixel (u right, v down) of the correct view, (N,) in front)."""
    homo = np.concatenate([points, np.ones((points.shape[0], 1))], axis=1)  # (N, 4)
    cam = homo @ P.T  # (N, 4)
    depth = cam[:, 2]
    in_front = depth > 1e-6
    uv = cam[:, :2] / np.where(in_front, depth, 1.0)[:, None]  # (N, 2)
    return uv, in_front


def to_dataset_view(uv: np.ndarray, width: int, height: int, flip: str = "libero") -> np.ndarray:
    """Continuous pixel coordinates of the correct view -> those of the stored image.

    flip: "libero" (stored = render[::-1, ::-1], a left-right mirror of the correct view),
    "none" (stored = correct view).
    """
    if flip == "none":
        return uv
    if flip == "libero":
        out = uv.copy()
        out[:, 0] = width - uv[:, 0]
        return out
    raise ValueError(f"unknown image flip convention {flip!r}")


def box_from_uv(uv: np.ndarray, width: int, height: int, min_pixels: int = 2) -> list[int] | None:
    """Integer box [x1, y1, x2, y2] around the points, clipped to the image; None when (almost) outside."""
    if uv.shape[0] == 0:
        return None
    x1 = int(np.clip(np.floor(uv[:, 0].min()), 0, width))
    y1 = int(np.clip(np.floor(uv[:, 1].min()), 0, height))
    x2 = int(np.clip(np.ceil(uv[:, 0].max()), 0, width))
    y2 = int(np.clip(np.ceil(uv[:, 1].max()), 0, height))
    if x2 - x1 < max(1, min_pixels) or y2 - y1 < max(1, min_pixels):
        return None
    return [x1, y1, x2, y2]


def box_iou(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    """IoU of two [x1, y1, x2, y2] boxes (edges, exclusive max)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def hull_points(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull (a box's extremes under any rigid motion and projection are hull
    vertices, so this is exact and shrinks 100k-vertex meshes to a few hundred points)."""
    if points.shape[0] <= 64:
        return points
    try:
        from scipy.spatial import ConvexHull

        return points[ConvexHull(points).vertices]
    except Exception:  # degenerate (flat) meshes or no scipy: keep every vertex
        return points


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


class SceneGeometry:
    """World points of named objects (bodies) and regions (sites) of one MuJoCo model.

    `key` is a LIBERO object/fixture name (root body via `obj_body_id`) or a region site name.
    Geom lists and local points are computed once per model; `points(key)` applies the current
    poses (call after `sim.forward()`).
    """

    def __init__(self, sim: Any, body_ids: dict[str, int], site_names: set[str] | None = None):
        self.sim = sim
        self.model = sim.model._model
        self.body_ids = dict(body_ids)
        self.site_names = set(site_names or ())
        self._local: dict[str, list[tuple[int, np.ndarray]]] = {}

    def geoms(self, key: str) -> np.ndarray:
        """Visual geoms of the object's subtree (all geoms when it has no visual ones)."""
        ids = body_subtree_geoms(self.model, self.body_ids[key])
        visual = ids[self.model.geom_group[ids] == VISUAL_GROUP]
        return visual if visual.size else ids

    def _local_points(self, key: str) -> list[tuple[int, np.ndarray]]:
        if key not in self._local:
            m = self.model
            out: list[tuple[int, np.ndarray]] = []
            for g in self.geoms(key):
                if m.geom_type[g] == MJ_GEOM_MESH and m.geom_dataid[g] >= 0:
                    mesh = m.geom_dataid[g]
                    start, n = m.mesh_vertadr[mesh], m.mesh_vertnum[mesh]
                    pts = hull_points(np.asarray(m.mesh_vert[start:start + n], dtype=np.float64))  # (k, 3) geom frame
                else:
                    aabb = m.geom_aabb[g]  # (6,): local centre, half sizes
                    pts = aabb[None, :3] + aabb[None, 3:] * _SIGNS  # (8, 3)
                out.append((int(g), pts))
            self._local[key] = out
        return self._local[key]

    def has(self, key: str) -> bool:
        return key in self.body_ids or key in self.site_names

    def points(self, key: str) -> np.ndarray:
        """(N, 3) world points of `key` at the current state."""
        data = self.sim.data._data
        if key in self.body_ids:
            chunks = []
            for g, local in self._local_points(key):
                rot = data.geom_xmat[g].reshape(3, 3)  # (3, 3)
                chunks.append(local @ rot.T + data.geom_xpos[g][None])  # (n, 3)
            return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 3))
        if key in self.site_names:
            sid = self.sim.model.site_name2id(key)
            size = np.asarray(self.model.site_size[sid], dtype=np.float64)  # (3,) half sizes
            rot = data.site_xmat[sid].reshape(3, 3)
            return (_SIGNS * size[None]) @ rot.T + data.site_xpos[sid][None]  # (8, 3)
        raise KeyError(key)

    def position(self, key: str) -> np.ndarray:
        """(3,) centre of the object's points (for "which object is in the gripper")."""
        pts = self.points(key)
        return 0.5 * (pts.min(axis=0) + pts.max(axis=0))


def robot_geoms(sim: Any, prefixes: tuple[str, ...] = ("robot0_", "gripper0_", "mount0_")) -> np.ndarray:
    """Geom ids of the robot arm, gripper and mount (bodies named with robosuite's prefixes)."""
    model = sim.model._model
    names = [sim.model.body_id2name(b) or "" for b in range(model.nbody)]
    robot_body = np.array([n.startswith(prefixes) for n in names], dtype=bool)
    return np.flatnonzero(robot_body[model.geom_bodyid])


def render_geom_segmentation(sim: Any, camera: str, height: int, width: int,
                             hide_geoms: np.ndarray | None = None) -> np.ndarray:
    """(H, W) int geom id per pixel (-1 = none), in robosuite's raw render orientation.

    Uses robosuite's offscreen context (an env built with a renderer) but decodes the id colours
    itself: robosuite 1.4's `read_pixels(segmentation=True)` overflows uint8 under numpy 2.
    `hide_geoms` are left out of the render (moved to a geom group the renderer does not draw),
    e.g. the robot, to see objects unoccluded by the arm. Used by the box accuracy check.
    """
    import mujoco

    ctx = sim._render_context_offscreen
    if ctx is None:
        raise RuntimeError("the simulator has no offscreen renderer (build the env with render=True)")
    cam_id = sim.model.camera_name2id(camera)
    model = sim.model._model
    saved = None
    if hide_geoms is not None and len(hide_geoms):
        saved = model.geom_group[hide_geoms].copy()
        model.geom_group[hide_geoms] = 5  # the default visual options draw groups 0-2 only
    try:
        ctx.render(width=width, height=height, camera_id=cam_id, segmentation=True)
    finally:
        if saved is not None:
            model.geom_group[hide_geoms] = saved
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    mujoco.mjr_readPixels(rgb=rgb, depth=None, viewport=mujoco.MjrRect(0, 0, width, height), con=ctx.con)
    seg = rgb[..., 0].astype(np.int64) + (rgb[..., 1].astype(np.int64) << 8) + (rgb[..., 2].astype(np.int64) << 16)
    lut = np.full(ctx.scn.ngeom + 1, -1, dtype=np.int64)
    for i in range(ctx.scn.ngeom):
        geom = ctx.scn.geoms[i]
        if geom.segid != -1 and geom.objtype == mujoco.mjtObj.mjOBJ_GEOM:
            lut[geom.segid + 1] = geom.objid
    seg[seg >= ctx.scn.ngeom + 1] = 0
    return lut[seg]
