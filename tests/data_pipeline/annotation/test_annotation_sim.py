"""`sim` backend accuracy in LIBERO: projected boxes vs rendered segmentation, phases vs the expert.

One scripted-expert episode (libero_spatial task 0) is recorded without rendering (fast); a second
environment with a renderer renders MuJoCo's geom segmentation at sampled frames of that episode.
"""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline.annotation.annotate import annotate_episode
from data_pipeline.annotation.config import AnnotationConfig
from data_pipeline.annotation.expert_truth import EXPERT_TO_PHASE, record_expert_episode
from data_pipeline.annotation.motion import motion_agreement
from data_pipeline.annotation.projection import box_iou, render_geom_segmentation, robot_geoms
from data_pipeline.episode import Episode
from envs.scene_geometry import body_subtree_geoms

pytestmark = pytest.mark.sim

SIZE = 128


@pytest.fixture(scope="module")
def sim_setup():
    from envs import libero_setup

    libero_setup.configure()
    from envs.libero_env import LiberoEnv

    fast = LiberoEnv("libero_spatial", 0, camera_size=SIZE, render=False)
    try:
        episode = record_expert_episode(fast, 0)
    finally:
        fast.close()
    render_env = LiberoEnv("libero_spatial", 0, camera_size=SIZE, render=True)
    yield episode, render_env
    render_env.close()


@pytest.fixture(scope="module")
def annotated(sim_setup):
    from data_pipeline.annotation.backends.sim import SimBackend

    episode, env = sim_setup
    cfg = AnnotationConfig(backend="sim")
    ann = annotate_episode(episode, cfg, SimBackend(cfg, env_factory=lambda ep: env))
    assert ann.status == "ok", ann.reason
    return ann


def _parse_boxes(objects_text: str) -> dict[str, list[int]]:
    out = {}
    for part in objects_text.split("; "):
        name, _, rest = part.partition(" [")
        out[name] = [int(v) for v in rest.rstrip("]").split(", ")]
    return out


def test_boxes_match_segmentation(sim_setup, annotated):
    """Projected box vs the bounding box of the object's segmentation pixels, robot hidden (the arm
    occludes held objects; the box is amodal). With the arm drawn the IoU is reported, not asserted."""
    episode, env = sim_setup
    sim, raw = env.sim, env.raw_env
    hide = robot_geoms(sim)
    ious, ious_arm = [], []
    for t in range(0, episode.length, 8):
        sim.set_state_from_flattened(episode.sim_states[t])
        sim.forward()
        boxes = _parse_boxes(dict(annotated.frames[t])["OBJECTS"])
        for hidden, out in ((hide, ious), (None, ious_arm)):
            seg = render_geom_segmentation(sim, "agentview", SIZE, SIZE, hide_geoms=hidden)[
                ::-1, ::-1
            ]  # upright
            for obj in annotated.objects:
                mask = np.isin(seg, body_subtree_geoms(sim.model._model, raw.obj_body_id[obj["key"]]))
                if mask.sum() < 30:
                    continue
                rows, cols = np.nonzero(mask)
                seg_box = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
                out.append(box_iou(boxes[obj["name"]], seg_box))
                if hidden is not None:
                    assert out[-1] >= 0.5, (t, obj, boxes[obj["name"]], seg_box, out[-1])
    assert len(ious) >= 20
    print(
        f"\nbox IoU vs segmentation: robot hidden mean {np.mean(ious):.3f} (min {np.min(ious):.3f}, "
        f"n={len(ious)}); robot drawn mean {np.mean(ious_arm):.3f} (min {np.min(ious_arm):.3f}, "
        f"n={len(ious_arm)})"
    )


def test_phases_within_3_frames_of_expert(sim_setup, annotated):
    episode, _ = sim_setup
    truth = [EXPERT_TO_PHASE[p] for p in episode.expert_phases]
    found = [None] * episode.length
    for seg in annotated.segments:
        found[seg["start"] : seg["end"]] = [seg["phase"]] * (seg["end"] - seg["start"])

    def bounds(ph):
        return [(t, p) for t, p in enumerate(ph) if t == 0 or p != ph[t - 1]]

    assert [p for _, p in bounds(found)] == [p for _, p in bounds(truth)]
    diffs = [abs(a - b) for (a, _), (b, _) in zip(bounds(found), bounds(truth))]
    assert max(diffs) <= 3, (bounds(found), bounds(truth))
    assert annotated.quality_flags == []
    assert annotated.plan == [
        "move to the black bowl",
        "grasp the black bowl",
        "carry the black bowl to the plate",
        "place it on the plate",
        "retract the arm",
    ]


def test_motion_words_agree_with_true_motion(sim_setup, annotated):
    episode, _ = sim_setup
    cfg = AnnotationConfig()
    moves = [dict(frame)["MOVE"] for frame in annotated.frames]
    named, agree = motion_agreement(episode.ee_pos, moves, cfg.motion_window)
    assert named > 30 and agree == named


def test_missing_sim_state_is_skipped(sim_setup):
    from dataclasses import replace

    from data_pipeline.annotation.backends.sim import SimBackend

    episode, env = sim_setup
    cfg = AnnotationConfig(backend="sim")
    backend = SimBackend(cfg, env_factory=lambda ep: env)
    no_state: Episode = replace(episode, sim_states=None)
    ann = annotate_episode(no_state, cfg, backend)
    assert ann.status == "skipped" and "no simulator states" in ann.reason
    wrong = replace(episode, sim_states=episode.sim_states[:, :10])
    assert "simulator state has 10 values" in annotate_episode(wrong, cfg, backend).reason


def test_runner_with_default_sim_backend_is_idempotent(sim_setup, tmp_path):
    """The path `lara annotate --backend sim` takes: the backend builds its own scene from the episode."""
    from data_pipeline.annotation import sidecar
    from data_pipeline.annotation.annotate import annotate_dataset, close_cached_backend
    from data_pipeline.annotation.source import InMemorySource

    episode, _ = sim_setup
    cfg = AnnotationConfig(backend="sim")
    try:
        for name in ("a", "b"):
            summary = annotate_dataset(InMemorySource(tmp_path, [episode]), name, cfg, progress=False)
            assert summary.annotated == 1 and summary.skipped == 0
    finally:
        close_cached_backend()
    files = [
        sidecar.episode_path(sidecar.annotation_dir(tmp_path, n), episode.episode_index) for n in ("a", "b")
    ]
    assert files[0].read_bytes() == files[1].read_bytes()
    cot = sidecar.load_annotations(tmp_path, "a")
    assert "black bowl [" in dict(cot[(episode.episode_index, 0)])["OBJECTS"]


def _expert_and_annotation(suite: str, task: int):
    from data_pipeline.annotation.backends.sim import SimBackend
    from envs import libero_setup

    libero_setup.configure()
    from envs.libero_env import LiberoEnv

    with LiberoEnv(suite, task, camera_size=SIZE, render=False) as fast:
        episode = record_expert_episode(fast, 0)
    with LiberoEnv(suite, task, camera_size=SIZE, render=True) as env:
        cfg = AnnotationConfig(backend="sim")
        ann = annotate_episode(episode, cfg, SimBackend(cfg, env_factory=lambda ep: env))
    assert ann.status == "ok", ann.reason
    truth = [EXPERT_TO_PHASE[p] for p in episode.expert_phases]
    found = [p for seg in ann.segments for p in [seg["phase"]] * (seg["end"] - seg["start"])]

    def bounds(ph):
        return [(t, p) for t, p in enumerate(ph) if t == 0 or p != ph[t - 1]]

    assert [p for _, p in bounds(found)] == [p for _, p in bounds(truth)]
    assert max(abs(a - b) for (a, _), (b, _) in zip(bounds(found), bounds(truth))) <= 6
    return ann


@pytest.mark.slow
def test_a_set_aside_and_a_push_are_written_as_the_expert_did_them():
    # libero_goal task 5: the cream cheese lies where the plate goes, so the expert sets it aside, then
    # tows the plate (closed fingers, lifting off once to hook anew)
    ann = _expert_and_annotation("libero_goal", 5)
    assert ann.plan[:4] == [
        "move to the cream cheese",
        "grasp the cream cheese",
        "move the cream cheese out of the way",
        "set the cream cheese down",
    ]
    assert "push the plate to the front of the stove" in ann.plan and "grasp the plate" not in ann.plan


@pytest.mark.slow
def test_a_drawer_pushed_shut_over_a_bowl_is_the_drawers_step():
    # libero_10 task 3: the bowl rides in the drawer as it is pushed shut, as far as the drawer moves
    ann = _expert_and_annotation("libero_10", 3)
    assert ann.plan[-3:] == [
        "move to the bottom drawer of the cabinet",
        "close the bottom drawer of the cabinet",
        "retract the arm",
    ]
