"""A small annotated dataset for `lara probe` tests, and a brief in-process training of the tiny preset.

Why this dataset: the gripper state (and the subtask, which follows it) is shown by a texture, a
checkerboard patch at a random place on a noisy background, against a flat patch of the same mean
colour when open. A fixed marker would be linearly readable through any network, random ones
included (a linear map of a fixed pattern is a fixed vector), so the random-init control would read
it as well as the trained model; texture at a random place is not a linear function of the pixels,
so what a probe reads from the slots is what training made readable. The OBJECTS box follows the
patch, in dataset-image pixels.

`signal="colour"` shows the same bit as the patch's hue instead (red when closed, green when open,
at one brightness): a linear function of the pixels, so a random network reads it too, but a
briefly trained one reads it better (docs/probe.md: 97% vs 75-83% from the GRIPPER and SUBTASK
slots). That margin, not the texture's, is what a test can find in a minute of training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 32
PATCH = 12


def _episode(index: int, T: int, signal: str = "texture"):
    from data_pipeline.episode import Episode

    rng = np.random.default_rng(100 + index)
    closed = (np.arange(T) >= T // 2 - 2 + index % 3) & (np.arange(T) < T - 3)  # (T,) bool
    images = rng.integers(60, 196, (T, SIZE, SIZE, 3), dtype=np.uint8)  # noisy background
    boxes = []
    checker = (np.indices((PATCH, PATCH)).sum(0) % 2).astype(bool)  # (P, P)
    for t in range(T):
        y, x = (int(v) for v in rng.integers(0, SIZE - PATCH, 2))
        patch = np.full((PATCH, PATCH, 3), 128, np.uint8)
        if signal == "colour":
            patch[..., :2] = (168, 88) if closed[t] else (88, 168)  # red / green, the same brightness
        elif closed[t]:
            patch[checker], patch[~checker] = 255, 0
        images[t, y : y + PATCH, x : x + PATCH] = patch
        boxes.append((x, y, x + PATCH, y + PATCH))
    action = np.clip(rng.normal(0, 0.3, (T, 7)), -1, 1).astype(np.float32)
    action[:, -1] = np.where(closed, 1.0, -1.0)
    state = rng.normal(size=(T, 8)).astype(np.float32)
    wrist = rng.integers(60, 196, (T, SIZE, SIZE, 3), dtype=np.uint8)
    ep = Episode(
        images={"agentview": images, "wrist": wrist},
        state=state,
        action=action,
        gripper=action[:, -1].copy(),
        ee_pos=state[:, :3].copy(),
        ee_ori=state[:, 3:6].copy(),
        instruction="put the bowl on the plate",
        task_index=0,
        task_name="task_0",
        suite="libero_object",
        episode_index=index,
        sim_states=rng.normal(size=(T, 4)),
        bddl_file="x.bddl",
        init_state=rng.normal(size=4),
        expert_phases=["approach"] * T,
    )
    return ep, closed, boxes


def write_probe_dataset(root: Path, episodes: int = 12, T: int = 16, signal: str = "texture") -> Path:
    """`episodes` episodes of T frames, annotated as run "v1" (SUBTASK, OBJECTS with a box, MOVE,
    GRIPPER); `signal`: how the frames show the gripper bit, "texture" or "colour"."""
    from data_pipeline.annotation.sidecar import EpisodeAnnotation, annotation_dir, write_episode, write_meta
    from data_pipeline.lerobot_io import write_lerobot_dataset

    made = [_episode(i, T, signal) for i in range(episodes)]
    write_lerobot_dataset(root, [ep for ep, _, _ in made])
    run = annotation_dir(root, "v1")
    for ep, closed, boxes in made:
        frames = [
            [
                ("SUBTASK", "place the bowl" if closed[t] else "grasp the bowl"),
                ("OBJECTS", f"bowl [{boxes[t][0]}, {boxes[t][1]}, {boxes[t][2]}, {boxes[t][3]}]"),
                ("MOVE", "move up" if closed[t] else "move down"),
                ("GRIPPER", "close" if closed[t] else "open"),
            ]
            for t in range(T)
        ]
        write_episode(
            run, EpisodeAnnotation(episode=ep.episode_index, status="ok", num_frames=T, frames=frames)
        )
    write_meta(run, {"complete": True})
    return root


def train_briefly(
    root: Path,
    out: Path,
    episodes: list[int],
    steps: int,
    stage: int = 1,
    lr: float = 1e-3,
    seed: int = 0,
    start: Path | None = None,
) -> Path:
    """The tiny preset (or the checkpoint `start`) after `steps` AdamW steps of curriculum stage
    `stage` on `episodes`, saved at `out`."""
    import torch

    from data_pipeline.samples import LaraSampleDataset, SampleConfig, collate_samples
    from data_pipeline.stats import load_or_compute_stats
    from lara.modeling_lara import LaraPolicy
    from lara.presets import load_config

    torch.manual_seed(seed)
    policy = LaraPolicy.from_pretrained(start) if start else LaraPolicy(load_config("tiny", []))
    stats = policy.stats if start else load_or_compute_stats(root, "libero")
    policy.set_normalization(stats)
    cfg = policy.cfg
    sc = SampleConfig(
        mapping="libero",
        chunk_size=cfg.chunk_size,
        image_size=cfg.vision.image_size,
        foresight_image_size=cfg.foresight.image_size,
        norm_mode=stats.mode,
        annotation="v1",
    )
    ds = LaraSampleDataset(root, sc, stats=stats, episodes=episodes)
    if not start:
        chunks = np.stack([ds[i]["action"].numpy() for i in range(len(ds))])  # (N, H, A)
        policy.train_fast_tokenizer(chunks)
        policy.seed_output_vocab(ds.cot.values())
    policy.train()
    policy.set_latent_probability(1.0)  # stage II: every CoT segment latent (stage II's last level)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = collate_samples([ds[int(i)] for i in rng.integers(0, len(ds), 8)])
        loss, _ = policy.forward(batch, stage=stage)
        opt.zero_grad()
        loss.backward()
        opt.step()
        policy.ema_update()
    policy.save_pretrained(out)
    return out
