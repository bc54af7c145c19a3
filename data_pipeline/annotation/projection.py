"""Object boxes in image pixels by projecting MuJoCo geometry through the camera.

Why project geometry instead of rendering segmentation: projection needs no renderer (a replayed
state plus `forward()` is enough, ~100x cheaper than a render), so every frame of every episode
gets boxes. Each object's visual geoms contribute their points in the world frame (mesh vertices
for mesh geoms, the 8 corners of the local bounding box otherwise: `envs.scene_geometry`, the
simulator's one reading of the scene, shared with the scripted expert); the 2D box is their extent
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


def camera_matrix(sim: Any, camera: str, height: int, width: int) -> np.ndarray:
    """(4, 4) world -> pixel (homogeneous) for the correct (non-flipped) view at height x width."""
    from robosuite.utils.camera_utils import get_camera_transform_matrix

    return np.asarray(get_camera_transform_matrix(sim, camera, height, width), dtype=np.float64)


def project(points: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) world points -> ((N, 2) continuous pixel (u right, v down) of the correct view,
    (N,) in front)."""
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


def robot_geoms(sim: Any, prefixes: tuple[str, ...] = ("robot0_", "gripper0_", "mount0_")) -> np.ndarray:
    """Geom ids of the robot arm, gripper and mount (bodies named with robosuite's prefixes)."""
    model = sim.model._model
    names = [sim.model.body_id2name(b) or "" for b in range(model.nbody)]
    robot_body = np.array([n.startswith(prefixes) for n in names], dtype=bool)
    return np.flatnonzero(robot_body[model.geom_bodyid])


def render_geom_segmentation(
    sim: Any, camera: str, height: int, width: int, hide_geoms: np.ndarray | None = None
) -> np.ndarray:
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
    seg = (
        rgb[..., 0].astype(np.int64)
        + (rgb[..., 1].astype(np.int64) << 8)
        + (rgb[..., 2].astype(np.int64) << 16)
    )
    lut = np.full(ctx.scn.ngeom + 1, -1, dtype=np.int64)
    for i in range(ctx.scn.ngeom):
        geom = ctx.scn.geoms[i]
        if geom.segid != -1 and geom.objtype == mujoco.mjtObj.mjOBJ_GEOM:
            lut[geom.segid + 1] = geom.objid
    seg[seg >= ctx.scn.ngeom + 1] = 0
    return lut[seg]
