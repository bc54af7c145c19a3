"""Accuracy and speed of `lara annotate --backend sim` on scripted-expert episodes in LIBERO.

For each task: record one scripted-expert episode (no rendering), annotate it with the `sim`
backend, then render MuJoCo's geom segmentation of the agentview camera at every `--stride`-th
frame and compare each task object's projected box with the bounding box of its pixels (IoU),
with the robot hidden (boxes are amodal; the arm occludes held objects), with only the object drawn
(pure geometry + camera convention check, no occlusion at all), and as the camera sees it; objects
with fewer than `--min-pixels` pixels are left out.
Also: phase boundaries vs the expert's own phases (frames), motion words vs the true sign of the
end-effector displacement, and the `sim` backend's annotation time per frame.

    .venv/bin/python benchmarks/annotation_accuracy.py --tasks libero_spatial:0 libero_object:0 --out result.json
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _bounds(phases: list[str]) -> list[tuple[int, str]]:
    return [(t, p) for t, p in enumerate(phases) if t == 0 or p != phases[t - 1]]


def run_task(suite: str, task: int, size: int, stride: int, min_pixels: int) -> dict:
    from data_pipeline.annotation.annotate import annotate_episode
    from data_pipeline.annotation.backends.sim import SimBackend
    from data_pipeline.annotation.config import AnnotationConfig
    from data_pipeline.annotation.expert_truth import EXPERT_TO_PHASE, record_expert_episode
    from data_pipeline.annotation.motion import motion_agreement
    from data_pipeline.annotation.projection import box_iou, render_geom_segmentation, robot_geoms
    from envs.libero_env import LiberoEnv
    from envs.scene_geometry import body_subtree_geoms

    fast = LiberoEnv(suite, task, camera_size=size, render=False)
    try:
        episode = record_expert_episode(fast, 0)
        success = fast.check_success()
    finally:
        fast.close()
    env = LiberoEnv(suite, task, camera_size=size, render=True)
    try:
        cfg = AnnotationConfig(backend="sim")
        backend = SimBackend(cfg, env_factory=lambda ep: env)
        t0 = time.perf_counter()
        ann = annotate_episode(episode, cfg, backend)
        annotate_s = time.perf_counter() - t0
        if ann.status != "ok":
            return {"suite": suite, "task": task, "status": ann.status, "reason": ann.reason}
        hide = robot_geoms(env.sim)
        ious: list[float] = []  # robot hidden: the geometry check (boxes are amodal)
        ious_arm: list[float] = []  # robot drawn: agreement with what the camera sees
        ious_alone: list[float] = []  # only the object drawn: pure geometry/camera check, no occlusion
        all_geoms = np.arange(env.sim.model._model.ngeom)
        contained: list[float] = []  # fraction of the object's visible pixels inside its projected box
        for t in range(0, episode.length, stride):
            env.sim.set_state_from_flattened(episode.sim_states[t])
            env.sim.forward()
            boxes = {}
            for part in dict(ann.frames[t])["OBJECTS"].split("; "):
                name, _, rest = part.partition(" [")
                if rest:
                    boxes[name] = [int(v) for v in rest.rstrip("]").split(", ")]
            for hidden, out in ((hide, ious), (None, ious_arm)):
                seg = render_geom_segmentation(env.sim, "agentview", size, size, hide_geoms=hidden)[
                    ::-1, ::-1
                ]
                for obj in ann.objects:
                    key = backend._box_key(env.raw_env, obj["key"])
                    if key not in env.raw_env.obj_body_id or obj["name"] not in boxes:
                        continue
                    mask = np.isin(
                        seg, body_subtree_geoms(env.sim.model._model, env.raw_env.obj_body_id[key])
                    )
                    if mask.sum() < min_pixels:
                        continue
                    rows, cols = np.nonzero(mask)
                    x1, y1, x2, y2 = boxes[obj["name"]]
                    if hidden is None:
                        contained.append(
                            float(np.mean((cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)))
                        )
                    out.append(
                        box_iou(boxes[obj["name"]], [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
                    )
            for obj in ann.objects:
                key = backend._box_key(env.raw_env, obj["key"])
                if key not in env.raw_env.obj_body_id or obj["name"] not in boxes:
                    continue
                own = body_subtree_geoms(env.sim.model._model, env.raw_env.obj_body_id[key])
                seg = render_geom_segmentation(
                    env.sim, "agentview", size, size, hide_geoms=np.setdiff1d(all_geoms, own)
                )[::-1, ::-1]
                mask = np.isin(seg, own)
                if mask.sum() >= min_pixels:
                    rows, cols = np.nonzero(mask)
                    ious_alone.append(
                        box_iou(boxes[obj["name"]], [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
                    )
    finally:
        env.close()
    truth = [EXPERT_TO_PHASE[p] for p in episode.expert_phases]
    found: list[str] = []
    for seg_ in ann.segments:
        found += [seg_["phase"]] * (seg_["end"] - seg_["start"])
    tb, fb = _bounds(truth), _bounds(found)
    same_sequence = [p for _, p in tb] == [p for _, p in fb]
    boundary_err = [abs(a - b) for (a, _), (b, _) in zip(tb, fb)] if same_sequence else []
    T = episode.length
    named, agree = motion_agreement(episode.ee_pos, [dict(f)["MOVE"] for f in ann.frames], cfg.motion_window)
    return {
        "suite": suite,
        "task": task,
        "instruction": episode.instruction,
        "expert_success": bool(success),
        "frames": T,
        "status": ann.status,
        "quality_flags": ann.quality_flags,
        "plan": ann.plan,
        "box_iou": {
            "n": len(ious),
            "mean": float(np.mean(ious)) if ious else None,
            "min": float(np.min(ious)) if ious else None,
            "frac_ge_0.5": float(np.mean(np.asarray(ious) >= 0.5)) if ious else None,
            "visible_pixels_inside_box": float(np.mean(contained)) if contained else None,
        },
        "box_iou_object_alone": {
            "n": len(ious_alone),
            "mean": float(np.mean(ious_alone)) if ious_alone else None,
            "min": float(np.min(ious_alone)) if ious_alone else None,
        },
        "box_iou_robot_drawn": {
            "n": len(ious_arm),
            "mean": float(np.mean(ious_arm)) if ious_arm else None,
            "frac_ge_0.5": float(np.mean(np.asarray(ious_arm) >= 0.5)) if ious_arm else None,
        },
        "phase_sequence_matches": same_sequence,
        "boundary_error_frames": boundary_err,
        "motion_words": {"named_axes": named, "agree": agree},
        "sim_annotate_ms_per_frame": round(1000 * annotate_s / T, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--tasks", nargs="+", default=["libero_spatial:0", "libero_object:0"], help="suite:task_id"
    )
    p.add_argument("--size", type=int, default=128, help="camera / dataset image size")
    p.add_argument("--stride", type=int, default=5, help="check boxes every N-th frame")
    p.add_argument("--min-pixels", type=int, default=30)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    from envs import libero_setup

    libero_setup.configure()
    results = []
    for spec in args.tasks:
        suite, task = spec.split(":")
        try:
            res = run_task(suite, int(task), args.size, args.stride, args.min_pixels)
        except Exception as err:  # e.g. a task the scripted expert does not support: report, go on
            res = {
                "suite": suite,
                "task": int(task),
                "status": "error",
                "reason": f"{type(err).__name__}: {err}",
            }
        print(json.dumps(res), flush=True)
        results.append(res)
    ious = [r for r in results if r.get("box_iou", {}).get("n")]
    all_err = [e for r in results for e in r.get("boundary_error_frames", [])]
    summary = {
        "tasks": len(results),
        "mean_box_iou_over_tasks": float(np.mean([r["box_iou"]["mean"] for r in ious])) if ious else None,
        "boxes_checked": int(sum(r["box_iou"]["n"] for r in ious)),
        "frac_boxes_iou_ge_0.5": float(
            sum(r["box_iou"]["frac_ge_0.5"] * r["box_iou"]["n"] for r in ious)
            / max(1, sum(r["box_iou"]["n"] for r in ious))
        ),
        "visible_pixels_inside_box": float(np.mean([r["box_iou"]["visible_pixels_inside_box"] for r in ious]))
        if ious
        else None,
        "mean_box_iou_object_alone": float(np.mean([r["box_iou_object_alone"]["mean"] for r in ious]))
        if ious
        else None,
        "min_box_iou_object_alone": float(np.min([r["box_iou_object_alone"]["min"] for r in ious]))
        if ious
        else None,
        "mean_box_iou_robot_drawn": float(np.mean([r["box_iou_robot_drawn"]["mean"] for r in ious]))
        if ious
        else None,
        "max_boundary_error_frames": max(all_err) if all_err else None,
        "phase_sequences_matching": sum(bool(r.get("phase_sequence_matches")) for r in results),
        "motion_agreement": (
            sum(r["motion_words"]["agree"] for r in results if "motion_words" in r),
            sum(r["motion_words"]["named_axes"] for r in results if "motion_words" in r),
        ),
    }
    print("summary:", json.dumps(summary))
    if args.out:
        Path(args.out).write_text(json.dumps({"results": results, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
