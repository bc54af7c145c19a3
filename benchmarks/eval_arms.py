"""What the `lara eval` throughput benchmarks share: a policy to measure, and one timed run of it.

- `checkpoint_for(args, root)`: `--policy PATH` (a trained checkpoint: the figures a user will see)
  or, without it, an untrained checkpoint of `--preset` with synthetic statistics (random weights,
  the preset's compute; it fails every episode, so each runs the suite's full step limit).
- `timed_eval(cfg)`: `lara eval` of one arm, timed from start to finish (environment and policy
  construction included: they are part of what a user waits for) -> its episode records and hours.
- `seconds_per_step(records)`: where a step's time went (physics, rendering, policy).

Imported as `from eval_arms import ...`: a benchmark runs as `python benchmarks/NAME.py`, which puts
this folder first on sys.path.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from envs.evaluator import EvalConfig, evaluate
from lara.scripts.eval_policies import policy_builder


def add_policy_args(parser: argparse.ArgumentParser, preset: str) -> None:
    parser.add_argument("--policy", type=Path, default=None, help="a checkpoint (default: an untrained one)")
    parser.add_argument("--preset", default=preset, help="the untrained checkpoint's preset (tiny, small)")


def random_checkpoint(path: Path, preset: str) -> Path:
    """An untrained `preset` LaraPolicy with a FAST tokenizer and synthetic statistics, saved at `path`."""
    import torch

    from lara.modeling_lara import LaraPolicy
    from lara.normalization import NormalizationStats
    from lara.presets import load_config

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    policy = LaraPolicy(load_config(preset))
    chunks = np.clip(rng.normal(0, 0.3, (400, policy.cfg.chunk_size, 7)), -1, 1).astype(np.float32)
    chunks[..., -1] = np.sign(chunks[..., -1] + 1e-6)  # the gripper +-1
    policy.train_fast_tokenizer(chunks)
    action = rng.normal(0, 0.3, (500, 7))  # (N, A)
    action[:, -1] = np.where(rng.uniform(size=500) > 0.5, 1.0, -1.0)
    stats = NormalizationStats.from_arrays(
        {"action": action, "state": rng.normal(0, 1, (500, 8))}, passthrough_dims={"action": [6]}
    )
    policy.set_normalization(stats)
    policy.save_pretrained(path)
    return path


def checkpoint_for(args: argparse.Namespace, root: Path) -> Path:
    return (
        args.policy
        if args.policy is not None
        else random_checkpoint(root / f"{args.preset}_random", args.preset)
    )


def timed_eval(cfg: EvalConfig) -> tuple[list[dict], float]:
    start = time.perf_counter()
    evaluate(cfg, policy_builder=policy_builder(cfg))
    hours = (time.perf_counter() - start) / 3600.0
    return [json.loads(line) for line in (cfg.out / "episodes.jsonl").read_text().splitlines()], hours


def seconds_per_step(records: list[dict]) -> dict[str, float]:
    steps = max(1, sum(r["steps"] for r in records))
    parts = {"render": "render_seconds", "sim": "sim_seconds", "policy": "policy_seconds"}
    return {name: sum(r[key] or 0.0 for r in records) / steps for name, key in parts.items()}
