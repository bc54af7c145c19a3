"""A toy policy and synthetic dataset with the trainer's contracts (curriculum.builders).

Small and deterministic, so the trainer's mechanics (accumulation, resume, DDP, atomic
checkpoints) are tested without the real model. Importing this module registers them as
policy_type "toy" / "toy-noisy" and data.type "toy", and the training preset size "toy" (stages
1-3: `load_train_config(preset="toy", stage=k)`, `lara train --curriculum toy`). "toy" has no
randomness in forward (exact equivalence tests); "toy-noisy" adds dropout, random latent draws and
flow-matching noise: the forward consumes the global RNG, so resume exactness depends on restoring it.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import Dataset

from curriculum.builders import register_dataset, register_policy
from curriculum.config import DataConfig, OptimConfig, TrainConfig
from curriculum.presets import register_size, stage_objective
from lara.configuration_lara import ForesightConfig, InferenceConfig, LaraConfig
from lara.utils.errors import LaraUserError

STATE, ACTION, HIDDEN = 8, 7, 32


class ToyPolicy(nn.Module):
    def __init__(self, horizon: int = 4, noisy: bool = False, ema_momentum: float = 0.9) -> None:
        super().__init__()
        self.horizon, self.noisy, self.ema_momentum = horizon, noisy, ema_momentum
        self.backbone = nn.ModuleDict(
            {"q_proj": nn.Linear(STATE + 3, HIDDEN), "o_proj": nn.Linear(HIDDEN, HIDDEN)}
        )
        self.dropout = nn.Dropout(0.1 if noisy else 0.0)
        self.vision = nn.Linear(3, 3)  # the encoder whose EMA copy gives the foresight target
        self.ema_vision = copy.deepcopy(self.vision).requires_grad_(False)
        self.action_head = nn.Linear(HIDDEN, horizon * ACTION)
        self.cot_head = nn.Linear(HIDDEN, 1)
        self.visual_head = nn.Linear(HIDDEN, 3)
        self.expert = nn.Linear(HIDDEN + horizon * ACTION + 1, horizon * ACTION)
        self.latent_probability = 0.0
        self.loss_weights: dict[str, float] = {}

    # -- the trainer contract ----------------------------------------------------------------
    def set_latent_probability(self, p: float) -> None:
        self.latent_probability = p

    def set_loss_weights(self, weights: dict[str, float]) -> None:
        self.loss_weights = dict(weights)

    def parameter_groups(self, backbone_lr: float, head_lr: float) -> list[dict]:
        backbone = list(self.backbone.parameters()) + list(self.vision.parameters())
        ids = {id(p) for p in backbone}
        heads = [p for p in self.parameters() if id(p) not in ids and p.requires_grad]
        return [
            {"params": backbone, "lr": backbone_lr, "name": "backbone"},
            {"params": heads, "lr": head_lr, "name": "heads"},
        ]

    @torch.no_grad()
    def ema_update(self) -> None:
        for e, p in zip(self.ema_vision.parameters(), self.vision.parameters(), strict=True):
            e.mul_(self.ema_momentum).add_(p, alpha=1 - self.ema_momentum)

    def forward(self, batch: dict, stage: int):
        if os.environ.get("TOY_STEP_SLEEP"):  # lets the SIGKILL test kill a run mid-way
            time.sleep(float(os.environ["TOY_STEP_SLEEP"]))
        image = batch["image.agentview"].mean(dim=(2, 3))  # (B, 3)
        x = torch.cat([batch["state"], self.vision(image)], dim=-1)  # (B, 11)
        h = self.backbone["o_proj"](torch.tanh(self.dropout(self.backbone["q_proj"](x))))  # (B, HIDDEN)
        B = h.shape[0]
        action = batch["action"].reshape(B, -1)  # (B, H * A)
        with torch.no_grad():
            target = self.ema_vision(batch["next_image.agentview"].mean(dim=(2, 3)))  # (B, 3)
        terms = {"visual_l1": (self.visual_head(h) - target).abs().mean()}
        if stage in (1, 2):
            terms["action_ce"] = ((self.action_head(h) - action) ** 2).mean()
            explicit = torch.ones(B, 1)
            if self.noisy:
                explicit = (torch.rand(B, 1) >= self.latent_probability).float()
            elif self.latent_probability > 0:
                explicit = explicit * (1 - self.latent_probability)
            terms["cot_ce"] = (((self.cot_head(h) - 1.0) ** 2) * explicit).mean() + 1e-3
        else:
            t = torch.rand(B, 1)
            noise = torch.randn_like(action)
            x_t = (1 - t) * noise + t * action
            velocity = self.expert(torch.cat([h, x_t, t], dim=-1))
            terms["flow"] = ((velocity - (action - noise)) ** 2).mean()
        loss = sum(self.loss_weights.get(k, 0.0) * v for k, v in terms.items())
        return loss, {f"loss/{k}": v.item() for k, v in terms.items()}

    def save_pretrained(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path / "model.safetensors"))
        (path / "config.json").write_text(json.dumps({"horizon": self.horizon, "noisy": self.noisy}))

    @classmethod
    def from_pretrained(cls, path) -> ToyPolicy:
        path = Path(path)
        policy = cls(**json.loads((path / "config.json").read_text()))
        policy.load_state_dict(load_file(str(path / "model.safetensors")))
        return policy


class ToyDataset(Dataset):
    """Interface sample dicts whose actions are a fixed function of the state (learnable)."""

    def __init__(self, n: int = 64, horizon: int = 4, size: int = 8) -> None:
        self.n, self.horizon, self.size = n, horizon, size
        self.w = np.random.default_rng(0).normal(size=(STATE, horizon * ACTION)).astype(np.float32) / 3

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng(1000 + i)
        state = rng.normal(size=STATE).astype(np.float32)
        img = rng.random((3, self.size, self.size), dtype=np.float32)
        return {
            "image.agentview": torch.from_numpy(img),
            "image.wrist": torch.from_numpy(img[::-1].copy()),
            "next_image.agentview": torch.from_numpy(
                (img * 0.5 + state[:3, None, None] * 0.1).astype(np.float32)
            ),
            "state": torch.from_numpy(state),
            "action": torch.from_numpy(np.tanh(state @ self.w).reshape(self.horizon, ACTION)),
            "action_is_pad": torch.zeros(self.horizon, dtype=torch.bool),
            "instruction": "put the bowl on the plate",
            "cot": [("SUBTASK", "grasp the bowl"), ("MOVE", "move down")],
            "episode_index": i // 8,
            "frame_index": i % 8,
            "task_index": 0,
        }


def collate(samples: list[dict]) -> dict:
    out = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        if isinstance(vals[0], torch.Tensor):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], int):
            out[k] = torch.tensor(vals)
        else:
            out[k] = vals
    return out


def build_toy_policy(cfg, dataset, init_from):
    if init_from is not None:
        return ToyPolicy.from_pretrained(init_from)
    return ToyPolicy(
        horizon=cfg.model.chunk_size,
        noisy=cfg.policy_type == "toy-noisy",
        ema_momentum=cfg.model.foresight.ema_momentum,
    )


def build_toy_dataset(cfg):
    if cfg.stage in (1, 2) and cfg.data.annotation not in ("latest", "v1"):
        raise LaraUserError(f"toy dataset has no CoT annotation {cfg.data.annotation!r} (has: v1)")
    n = int(cfg.data.root) if cfg.data.root.isdigit() else 64
    return ToyDataset(n=n, horizon=cfg.model.chunk_size), collate


def toy_preset(stage: str) -> TrainConfig:
    """The trainer tests' size: 20 steps at batch 8 on 64 toy samples, 4-action chunks."""
    model = LaraConfig(
        chunk_size=4, inference=InferenceConfig(n_action_steps=4), foresight=ForesightConfig(ema_momentum=0.9)
    )  # the toy policy reads these two
    return stage_objective(
        TrainConfig(
            output_dir="outputs/train/toy",
            policy_type="toy",
            steps=20,
            batch_size=8,
            seed=7,
            save_every=10,
            log_every=5,
            progress=False,
            mixed_precision="no",
            optim=OptimConfig(backbone_lr=1e-3, head_lr=1e-2, warmup_steps=2),
            model=model,
            data=DataConfig(type="toy", root="64"),
        ),
        stage,
    )


register_policy("toy", build_toy_policy)
register_policy("toy-noisy", build_toy_policy)
register_dataset("toy", build_toy_dataset)
register_size("toy", toy_preset)
