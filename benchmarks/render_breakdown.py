"""Where one LIBERO camera frame's time goes on the CPU renderer (Mesa llvmpipe through EGL or
OSMesa): MuJoCo's scene update, the GL draw, the read-back, per camera, and what multisampling
(`vis.quality.offsamples`, robosuite's default 4) costs. Also checks which settings change pixels.

One process, libero_object task 0 from init state 0, each variant timed over `--frames` frames of
both cameras, variants interleaved round by round so that machine load hits them alike.

    .venv/bin/python benchmarks/render_breakdown.py --camera_size 256 --frames 20 \
        --out benchmarks/render_breakdown_results
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from results_table import markdown_table, publish

from envs import libero_setup
from envs.libero_env import LiberoEnv
from envs.protocol import ROBOSUITE_CAMERAS


def frame_parts(sim, camera: str, size: int) -> tuple[np.ndarray, dict[str, float]]:
    """Render one frame of `camera` the way robosuite does, timing each part (seconds)."""
    import mujoco

    ctx = sim._render_context_offscreen
    ctx.gl_ctx.make_current()
    viewport = mujoco.MjrRect(0, 0, size, size)
    ctx.cam.fixedcamid = sim.model.camera_name2id(camera)
    ctx.cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
    t0 = time.perf_counter()
    mujoco.mjv_updateScene(
        sim.model._model, sim.data._data, ctx.vopt, ctx.pert, ctx.cam, mujoco.mjtCatBit.mjCAT_ALL, ctx.scn
    )
    t1 = time.perf_counter()
    mujoco.mjr_render(viewport=viewport, scn=ctx.scn, con=ctx.con)
    t2 = time.perf_counter()
    rgb = np.empty((size, size, 3), dtype=np.uint8)
    mujoco.mjr_readPixels(rgb=rgb, depth=None, viewport=viewport, con=ctx.con)
    t3 = time.perf_counter()
    return rgb, {"scene update": t1 - t0, "draw": t2 - t1, "read-back": t3 - t2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera_size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    libero_setup.configure()
    size = args.camera_size
    with LiberoEnv("libero_object", 0, camera_size=size) as env:
        env.reset(0)
        sim = env.sim
        variants = {"offsamples 4 (robosuite default)": 4, "offsamples 0 (no multisampling)": 0}
        contexts = {}
        for name, samples in variants.items():  # one context per setting: offsamples is read at creation
            sim.model.vis.quality.offsamples = samples
            sim._render_context_offscreen = None
            from robosuite.utils.binding_utils import MjRenderContextOffscreen

            contexts[name] = MjRenderContextOffscreen(sim, device_id=-1)
        times = {name: {"scene update": 0.0, "draw": 0.0, "read-back": 0.0} for name in variants}
        images = {}
        for _round in range(args.frames + 1):  # round 0 warms the caches and is not counted
            for name, ctx in contexts.items():
                sim._render_context_offscreen = ctx
                for rs_camera in ROBOSUITE_CAMERAS.values():
                    rgb, parts = frame_parts(sim, rs_camera, size)
                    images[(name, rs_camera)] = rgb
                    if _round:
                        for part, seconds in parts.items():
                            times[name][part] += seconds
    per_frame = 2 * args.frames  # two cameras per round
    rows = []
    for name in variants:
        ms = {part: 1e3 * t / per_frame for part, t in times[name].items()}
        rows.append({"variant": name, **ms, "total": sum(ms.values())})
    base = next(iter(variants))
    differs = {
        name: float(
            np.mean(
                [
                    np.mean(images[(name, c)].astype(int) != images[(base, c)].astype(int))
                    for c in ROBOSUITE_CAMERAS.values()
                ]
            )
        )
        for name in variants
    }
    header = [f"variant ({size} px)", "scene update ms", "draw ms", "read-back ms", "total ms per frame"]
    header.append("pixels differing from the default")
    cells = ("scene update", "draw", "read-back", "total")
    table = markdown_table(
        header,
        [
            [r["variant"], *(f"{r[c]:.1f}" for c in cells), f"{100 * differs[r['variant']]:.1f}%"]
            for r in rows
        ],
    )
    publish(table, args.out, {"camera_size": size, "rows": rows})


if __name__ == "__main__":
    main()
