"""A synthetic in-memory dataset (data.type "synthetic") with the interface's sample format.

For `lara bench train` and smoke runs without a dataset on disk: random images at the model's
sizes, a fixed structured CoT, action chunks that are a smooth function of the state. Every
sample is a pure function of its index (seeded), so DataLoader workers and resumed runs see the
same data. `data.root` may hold the number of samples (default 256).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from lara.normalization import NormalizationStats

COT = [
    ("SUBTASK", "grasp the black bowl"),
    ("OBJECTS", "black bowl [10, 20, 30, 40]; plate [50, 60, 70, 80]"),
    ("MOVE", "move down"),
    ("GRIPPER", "close"),
]


class SyntheticSamples(Dataset):
    def __init__(
        self,
        n: int,
        chunk_size: int,
        image_size: int,
        foresight_image_size: int,
        cameras: list[str],
        action_dim: int = 7,
        state_dim: int = 8,
        with_cot: bool = True,
    ) -> None:
        self.n, self.chunk_size, self.image_size, self.foresight_image_size = (
            n,
            chunk_size,
            image_size,
            foresight_image_size,
        )
        self.cameras, self.action_dim, self.state_dim, self.with_cot = (
            cameras,
            action_dim,
            state_dim,
            with_cot,
        )
        self.w = (
            np.random.default_rng(0).normal(size=(state_dim, chunk_size * action_dim)).astype(np.float32) / 3
        )
        self.config = type("SyntheticConfig", (), {"chunk_size": chunk_size})()
        self.stats = NormalizationStats.from_arrays(
            {
                "state": np.stack([self._state(i) for i in range(min(n, 256))]),
                "action": np.concatenate([self._action(i) for i in range(min(n, 256))]),
            },
            passthrough_dims={"action": [action_dim - 1]},
        )

    def __len__(self) -> int:
        return self.n

    def _state(self, i: int) -> np.ndarray:
        return np.random.default_rng(i).normal(size=self.state_dim).astype(np.float32)

    def _action(self, i: int) -> np.ndarray:
        a = np.tanh(self._state(i) @ self.w).reshape(self.chunk_size, self.action_dim)  # (H, A)
        a[:, -1] = np.where(a[:, -1] >= 0, 1.0, -1.0)  # gripper +-1
        return a.astype(np.float32)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng(10_000 + i)
        sample = {
            f"image.{c}": torch.from_numpy(
                rng.random((3, self.image_size, self.image_size), dtype=np.float32)
            )
            for c in self.cameras
        }
        sample["next_image.agentview"] = torch.from_numpy(
            rng.random((3, self.foresight_image_size, self.foresight_image_size), dtype=np.float32)
        )
        sample.update(
            state=self.stats.normalize("state", torch.from_numpy(self._state(i))).float(),
            action=self.stats.normalize("action", torch.from_numpy(self._action(i))).float(),
            action_is_pad=torch.zeros(self.chunk_size, dtype=torch.bool),
            instruction="put the black bowl on the plate",
            cot=list(COT) if self.with_cot else None,
            episode_index=i // 50,
            frame_index=i % 50,
            task_index=0,
        )
        return sample


def build_synthetic_dataset(cfg):
    from data_pipeline.samples import collate_samples

    mc = cfg.model
    n = int(cfg.data.root) if cfg.data.root.isdigit() else 256
    dataset = SyntheticSamples(
        n,
        mc.chunk_size,
        cfg.data.image_size or mc.vision.image_size,
        cfg.data.foresight_image_size or mc.foresight.image_size,
        list(mc.vision.cameras),
        mc.action_dim,
        mc.state_dim,
        with_cot=cfg.stage < 3,
    )
    return dataset, collate_samples
