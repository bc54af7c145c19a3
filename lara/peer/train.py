"""Train lerobot's Diffusion Policy on a `lara collect` dataset, as lerobot's own trainer does.

What follows lerobot 0.4.4's `lerobot_train.py` for this policy: the dataset read with the
policy's `delta_timestamps` (n_obs_steps observations, `horizon` actions, out-of-episode frames
padded and flagged `action_is_pad`; `lara.peer.dataset`: lerobot's dataset with cheaper frame
queries), `EpisodeAwareSampler` dropping each episode's last
`drop_n_last_frames` starts, `make_diffusion_pre_post_processors` with the dataset's stats
(images MEAN_STD, state and action MIN_MAX), the config's optimizer and scheduler presets (Adam
1e-4, cosine with 500 warm-up steps over `--steps`), gradient clipping at the optimizer's
`grad_clip_norm`. What is ours: the input features come from the dataset (two 128 px cameras,
8-d state, 7-d action for `lara collect` data); a random crop of `crop_ratio` of the image in
training (center crop at evaluation: Diffusion Policy's augmentation); a budget in training wall
or CPU minutes summed over resumes, a resumable checkpoint (`lara.peer.checkpoint`), a progress bar and
`<out>/loss.jsonl`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lara.peer import checkpoint as ckpt
from lara.utils.errors import LaraUserError

logger = logging.getLogger(__name__)

# Settings that define the run: a resume with any of them changed is refused.
IDENTITY = ("dataset", "seed", "batch_size", "crop_ratio", "down_dims", "vision_backbone", "horizon")


@dataclass
class PeerTrainConfig:
    """`lara peer-train` settings."""

    dataset: Path | None = None  # a LeRobot v3 dataset folder written by `lara collect`
    out: Path = Path("runs/peer/diffusion")
    steps: int = 20000  # the LR schedule's length and a stop; set it to what the budget buys
    budget_minutes: float | None = None  # stop after this much training wall time, summed over resumes
    # or after this much process CPU time (all threads; fairer than wall time on a shared machine)
    budget_cpu_minutes: float | None = None
    batch_size: int = 32
    seed: int = 0
    crop_ratio: float = 0.9  # random crop of this share of each side in training, center crop at eval
    down_dims: tuple[int, ...] = (512, 1024, 2048)  # lerobot's U-Net default
    vision_backbone: str = "resnet18"  # torchvision's ResNet, no pretrained weights (none reachable)
    horizon: int = 16  # lerobot's default (n_obs_steps 2, n_action_steps 8)
    # sampling at evaluation: lerobot's default is DDPM over all 100 steps; DDIM with ~10 is the
    # Diffusion Policy paper's faster choice (same training: both share the forward noising)
    noise_scheduler_type: str = "DDPM"
    num_inference_steps: int | None = None  # denoising steps at evaluation (None: all 100)
    save_every: int = 250  # steps between checkpoints (and at the end)
    log_every: int = 10  # steps between loss.jsonl lines
    num_workers: int = 0  # DataLoader workers (0: decode in the training process)
    threads: int | None = None  # torch CPU threads (None: torch's default)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.dataset is None:
            raise LaraUserError("--dataset DIR is required (a LeRobot dataset written by `lara collect`)")
        self.dataset, self.out = Path(self.dataset), Path(self.out)
        if self.steps < 1 or self.batch_size < 1 or self.save_every < 1 or self.log_every < 1:
            raise LaraUserError("--steps, --batch_size, --save_every and --log_every must be >= 1")
        if self.noise_scheduler_type not in ("DDPM", "DDIM"):
            raise LaraUserError(f"--noise_scheduler_type: DDPM or DDIM, not {self.noise_scheduler_type!r}")
        if not 0 < self.crop_ratio <= 1:
            raise LaraUserError(f"--crop_ratio must be in (0, 1], got {self.crop_ratio}")
        for name in ("budget_minutes", "budget_cpu_minutes"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise LaraUserError(f"--{name} must be > 0, got {getattr(self, name)}")
        self.down_dims = tuple(int(d) for d in self.down_dims)

    def identity(self) -> dict:
        return {key: (str(v) if isinstance(v := getattr(self, key), Path) else v) for key in IDENTITY}


def _features(meta) -> tuple[dict, dict, dict[str, str], tuple[int, int]]:
    """(input features, output features, camera -> key, image (H, W)) from the dataset's features."""
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features

    from data_pipeline.key_mapping import load_key_mapping

    features = dataset_to_policy_features(meta.features)
    mapping = load_key_mapping("libero")  # what `lara collect` writes; its gripper convention is env's
    cameras = {cam: key for cam, key in mapping.cameras.items() if key in features}
    missing = [k for k in (mapping.state, mapping.action) if k not in features]
    if missing or not cameras:
        raise LaraUserError(
            f"the dataset lacks {missing or 'camera images'}: the peer arm trains on `lara collect` datasets "
            f"({', '.join(mapping.cameras.values())}, {mapping.state}, {mapping.action})"
        )
    inputs = {key: features[key] for key in cameras.values()}
    inputs[mapping.state] = features[mapping.state]
    outputs = {mapping.action: features[mapping.action]}
    if outputs[mapping.action].type is not FeatureType.ACTION or outputs[mapping.action].shape != (7,):
        raise LaraUserError(f"the dataset's {mapping.action} is {outputs[mapping.action]}, expected 7-d")
    _, h, w = inputs[next(iter(cameras.values()))].shape  # (C, H, W)
    return inputs, outputs, cameras, (h, w)


def policy_config(cfg: PeerTrainConfig, inputs: dict, outputs: dict, image_hw: tuple[int, int]):
    from lara.peer.lerobot_diffusion import DiffusionConfig

    crop = None if cfg.crop_ratio == 1 else tuple(int(s * cfg.crop_ratio) for s in image_hw)
    return DiffusionConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        push_to_hub=False,
        crop_shape=crop,
        crop_is_random=True,
        vision_backbone=cfg.vision_backbone,
        pretrained_backbone_weights=None,
        down_dims=cfg.down_dims,
        horizon=cfg.horizon,
        noise_scheduler_type=cfg.noise_scheduler_type,
        num_inference_steps=cfg.num_inference_steps,
    )


def _delta_timestamps(policy_cfg, meta) -> dict[str, list[float]]:
    """lerobot.datasets.factory.resolve_delta_timestamps, for the observation and action keys."""
    out = {}
    for key in meta.features:
        if key == "action":
            out[key] = [i / meta.fps for i in policy_cfg.action_delta_indices]
        elif key.startswith("observation."):
            out[key] = [i / meta.fps for i in policy_cfg.observation_delta_indices]
    return out


def _batches(dataset, policy_cfg, cfg: PeerTrainConfig, step: int):
    """Endless batches; each epoch's order from a generator seeded by (seed, step it starts at)."""
    import torch
    from lerobot.datasets.sampler import EpisodeAwareSampler

    episodes = dataset.meta.episodes
    while True:
        torch.manual_seed(cfg.seed * 1_000_003 + step)  # the sampler shuffles with torch's global RNG
        sampler = EpisodeAwareSampler(
            episodes["dataset_from_index"],
            episodes["dataset_to_index"],
            drop_n_last_frames=policy_cfg.drop_n_last_frames,
            shuffle=True,
        )
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers, drop_last=True
        )
        for batch in loader:
            step += 1
            yield batch
        if len(sampler) < cfg.batch_size:
            raise LaraUserError(f"the dataset has {len(sampler)} usable frames, fewer than --batch_size")


def _check_resume(cfg: PeerTrainConfig) -> None:
    saved = cfg.out / "train_config.json"
    if saved.is_file():
        before = json.loads(saved.read_text())["identity"]
        now = json.loads(json.dumps(cfg.identity()))  # tuples as lists, as saved
        changed = sorted(k for k in now if before.get(k) != now[k])
        if changed:
            raise LaraUserError(
                f"{cfg.out} was trained with other settings ({', '.join(changed)}): use a new --out "
                "or the same settings"
            )
    cfg.out.mkdir(parents=True, exist_ok=True)
    record = {"identity": cfg.identity(), "config": json.loads(json.dumps(asdict(cfg), default=str))}
    saved.write_text(json.dumps(record, indent=2) + "\n")


def train(cfg: PeerTrainConfig) -> dict:
    """Train (or resume) into cfg.out; returns the final checkpoint's peer.json."""
    import torch

    from data_pipeline.lerobot_compat import LeRobotDatasetMetadata
    from lara.peer.dataset import ColumnQueryDataset
    from lara.peer.lerobot_diffusion import DiffusionPolicy, make_diffusion_pre_post_processors

    # checked here, not at parse time: a command line parses without its data at hand
    if not (cfg.dataset / "meta" / "info.json").is_file():
        raise LaraUserError(f"--dataset {cfg.dataset}: no meta/info.json (not a LeRobot v3 dataset)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _check_resume(cfg)
    ckpt.recover(cfg.out)
    repo_id = f"local/{cfg.dataset.name}"
    meta = LeRobotDatasetMetadata(repo_id, root=cfg.dataset)
    inputs, outputs, cameras, image_hw = _features(meta)
    policy_cfg = policy_config(cfg, inputs, outputs, image_hw)
    deltas = _delta_timestamps(policy_cfg, meta)
    dataset = ColumnQueryDataset(repo_id, root=cfg.dataset, delta_timestamps=deltas)

    torch.manual_seed(cfg.seed)
    policy = DiffusionPolicy(policy_cfg)
    preprocessor, postprocessor = make_diffusion_pre_post_processors(
        policy_cfg, dataset_stats=dataset.meta.stats
    )
    optim_cfg = policy_cfg.get_optimizer_preset()
    optimizer = optim_cfg.build(policy.get_optim_params())
    scheduler = policy_cfg.get_scheduler_preset().build(optimizer, num_training_steps=cfg.steps)
    step, seconds, cpu = 0, 0.0, 0.0  # training wall seconds, process CPU seconds (all threads)
    last = cfg.out / ckpt.CHECKPOINT
    if (last / ckpt.TRAINING_STATE).is_file():
        from safetensors.torch import load_model

        load_model(policy, str(last / "model.safetensors"))
        state = torch.load(last / ckpt.TRAINING_STATE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, seconds, cpu = state["step"], state["train_seconds"], state.get("cpu_seconds", 0.0)
        logger.info("resuming %s at step %d (%.1f min trained)", cfg.out, step, seconds / 60)
    random.seed(cfg.seed + step)
    np.random.seed((cfg.seed + step) % 2**32)

    def meta_now() -> dict:
        return {
            "policy": "lerobot.policies.diffusion (lerobot 0.4.4)",
            "dataset": str(cfg.dataset),
            "cameras": cameras,  # Observation.images name -> dataset key (the adapter's input map)
            "image_hw": list(image_hw),
            "state_key": "observation.state",
            "step": step,
            "train_seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1),
            "batch_size": cfg.batch_size,
            "n_params": sum(p.numel() for p in policy.parameters()),
        }

    def save() -> None:
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "train_seconds": seconds,
            "cpu_seconds": cpu,
        }
        ckpt.save(cfg.out, policy, preprocessor, postprocessor, meta_now(), state)

    def spent() -> bool:
        wall = cfg.budget_minutes is not None and seconds >= 60 * cfg.budget_minutes
        return wall or (cfg.budget_cpu_minutes is not None and cpu >= 60 * cfg.budget_cpu_minutes)

    if step >= cfg.steps or spent():
        logger.info("%s: nothing left to train (step %d, %.1f min)", cfg.out, step, seconds / 60)
        return ckpt.read_meta(last) if last.exists() else meta_now()
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, desc="peer-train", unit="step", disable=not cfg.progress)
    policy.train()
    losses: list[float] = []
    with (cfg.out / "loss.jsonl").open("a") as log:
        tick, cpu_tick = time.perf_counter(), time.process_time()
        for batch in _batches(dataset, policy_cfg, cfg, step):
            batch = preprocessor(batch)
            loss, _ = policy.forward(batch)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), optim_cfg.grad_clip_norm)
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            step += 1
            now, cpu_now = time.perf_counter(), time.process_time()
            seconds, tick = seconds + now - tick, now  # data loading included; checkpoint writes not
            cpu, cpu_tick = cpu + cpu_now - cpu_tick, cpu_now
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                raise RuntimeError(f"loss is {losses[-1]} at step {step}")
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if step % cfg.log_every == 0 or step == cfg.steps:
                line = {
                    "step": step,
                    "loss": float(np.mean(losses)),
                    "grad_norm": float(grad_norm),
                    "lr": scheduler.get_last_lr()[0],
                    "train_seconds": round(seconds, 2),
                    "cpu_seconds": round(cpu, 2),
                }
                log.write(json.dumps(line) + "\n")
                log.flush()
                losses.clear()
            over = spent()
            if step % cfg.save_every == 0 or step >= cfg.steps or over:
                save()
                tick, cpu_tick = time.perf_counter(), time.process_time()
            if step >= cfg.steps or over:
                break
    bar.close()
    return meta_now()
