"""Tiny-model helpers shared by tests/lara and tests/examples (a uniquely named module at the top
of tests/, which pytest puts on sys.path for tests/conftest.py: `from conftest import` resolves to
whichever conftest.py pytest loaded first, and `tests.` imports collide with a third-party package)."""


from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lara.configuration_lara import load_config  # noqa: E402
from lara.normalization import NormalizationStats  # noqa: E402

COT = [
    ("SUBTASK", "grasp the black bowl"),
    ("OBJECTS", "black bowl [12, 40, 30, 58]; plate [70, 20, 96, 44]"),
    ("MOVE", "move down"),
    ("GRIPPER", "close"),
]
INSTRUCTIONS = ["pick up the black bowl and place it on the plate", "open the top drawer of the cabinet"]


def smooth_chunks(n: int, h: int = 8, a: int = 7, seed: int = 0) -> np.ndarray:
    """Smooth normalized action chunks (N, H, A) in [-1, 1]; the last dim is a +-1 gripper."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, h)[None, :, None]
    x = np.sin(2 * np.pi * (t * rng.uniform(0.1, 0.8, (n, 1, a)) + rng.uniform(0, 1, (n, 1, a))))
    x = x * rng.uniform(0.2, 0.9, (n, 1, a))
    x[..., -1] = np.where(rng.uniform(size=(n, 1)) > 0.5, 1.0, -1.0)
    return x.astype(np.float32)


def make_stats(a: int = 7, s: int = 8) -> NormalizationStats:
    rng = np.random.default_rng(1)
    act = rng.normal(0, 0.3, (500, a))
    act[:, -1] = np.where(rng.uniform(size=500) > 0.5, 1.0, -1.0)
    return NormalizationStats.from_arrays(
        {"action": act, "state": rng.normal(0, 1, (500, s))}, passthrough_dims={"action": [a - 1]}
    )


def make_batch(b: int = 2, size: int = 64, seed: int = 0, cot: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    chunks = smooth_chunks(b, seed=seed)
    return {
        "image.agentview": torch.rand(b, 3, size, size, generator=g),
        "image.wrist": torch.rand(b, 3, size, size, generator=g),
        "next_image.agentview": torch.rand(b, 3, size, size, generator=g),
        "state": torch.randn(b, 8, generator=g),
        "action": torch.from_numpy(chunks),
        "action_is_pad": torch.zeros(b, 8, dtype=torch.bool),
        "instruction": [INSTRUCTIONS[i % 2] for i in range(b)],
        "cot": [list(COT) if cot else None for _ in range(b)],
        "episode_index": torch.arange(b),
        "frame_index": torch.zeros(b, dtype=torch.long),
        "task_index": torch.zeros(b, dtype=torch.long),
    }


@dataclass
class FakeObservation:
    images: dict
    state: np.ndarray
    instruction: str
    sim_state: np.ndarray | None = None


def make_obs(seed: int = 0, size: int = 128) -> FakeObservation:
    rng = np.random.default_rng(seed)
    imgs = {c: rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for c in ("agentview", "wrist")}
    return FakeObservation(imgs, rng.normal(size=8).astype(np.float32), INSTRUCTIONS[0])


def tiny_policy(*overrides: str, seed: int = 0):
    from lara.modeling_lara import LaraPolicy

    torch.manual_seed(seed)
    policy = LaraPolicy(load_config("tiny", list(overrides)))
    policy.train_fast_tokenizer(smooth_chunks(400, seed=3))
    policy.set_normalization(make_stats())
    return policy
