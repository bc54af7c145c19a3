"""Policies the evaluator can run, and the adapter that executes action chunks.

A policy is anything with `reset()` and `select_action(obs) -> (7,)`. `--policy` names one:
- `noop`: always the no-op (gripper open); a floor for any success table.
- `scripted`: the privileged-state expert (`envs.scripted_expert`), needs no images.
- `replay`: plays back the recorded actions of a dataset's episodes of the same task, starting
  from the recorded initial simulator state (checks action alignment end to end). Reading a
  dataset is the data layer's job: `data_pipeline.replay.ReplayPolicyBuilder`, which the `lara eval`
  command passes to `evaluate(cfg, policy_builder=...)`.
- a checkpoint directory: a trained `LaraPolicy` (`save_pretrained` layout), wrapped in
  `ChunkedPolicy` so the first k actions of each predicted chunk run open-loop.
Policies are built inside the worker process that owns the simulator (`build_policy`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import numpy as np

from envs.protocol import NOOP_ACTION, Observation, validate_action
from lara.utils.errors import LaraUserError

BUILTIN_POLICIES = ("noop", "scripted", "replay")


class Policy(Protocol):
    def reset(self) -> None: ...

    def select_action(self, obs: Observation) -> np.ndarray: ...


class NoopPolicy:
    needs_images = False

    def reset(self) -> None:
        pass

    def select_action(self, obs: Observation) -> np.ndarray:
        return np.asarray(NOOP_ACTION, dtype=np.float32)


class ChunkedPolicy:
    """Runs a chunk predictor open-loop: predict (H, 7), execute the first k, re-plan.

    `chunk_latency_ms` collects the time of each `predict_action_chunk` call (the model's real
    latency); steps served from the queue cost nothing and are not counted.
    """

    needs_images = True

    def __init__(self, model, execute_steps: int | None = None):
        self.model = model
        self.execute_steps = execute_steps
        self._queue: list[np.ndarray] = []
        self.chunk_latency_ms: list[float] = []

    def reset(self) -> None:
        self._queue.clear()
        if hasattr(self.model, "reset"):
            self.model.reset()

    def select_action(self, obs: Observation) -> np.ndarray:
        if not self._queue:
            start = time.perf_counter()
            chunk = np.asarray(self.model.predict_action_chunk(obs), dtype=np.float32)
            self.chunk_latency_ms.append(1e3 * (time.perf_counter() - start))
            if chunk.ndim == 3 and chunk.shape[0] == 1:
                chunk = chunk[0]  # (1, H, A) -> (H, A)
            if chunk.ndim != 2:
                raise PolicyOutputError(f"predict_action_chunk returned shape {chunk.shape}, expected (H, 7)")
            k = self.execute_steps or chunk.shape[0]
            if not 1 <= k <= chunk.shape[0]:
                raise LaraUserError(f"execute_steps={k} but the policy predicts chunks of {chunk.shape[0]}")
            self._queue = list(chunk[:k])
        return self._queue.pop(0)


class PolicyOutputError(LaraUserError):
    """The policy returned an action the environment cannot take (shape, NaN)."""


def check_action(action) -> np.ndarray:
    """The protocol's action check, re-raised as a user error that says where to look."""
    try:
        return validate_action(action)
    except ValueError as err:
        raise PolicyOutputError(
            f"the policy returned a bad action: {err}. Check the checkpoint's action dimension "
            "and its normalization statistics (a zero range gives inf/NaN)"
        ) from None


def resolve_checkpoint(spec: str) -> Path:
    """A `save_pretrained` folder, or a trainer checkpoint (`.../final`, `.../checkpoints/step_N`)
    whose `model/` subfolder is one (`lara.checkpoint.resolve_checkpoint_dir`). Raises a user error
    naming what is missing."""
    from lara.checkpoint import resolve_checkpoint_dir  # torch + transformers: not at import (CLI start-up)

    if not Path(spec).is_dir():
        raise LaraUserError(
            f"--policy {spec!r} is neither one of {', '.join(BUILTIN_POLICIES)} nor an existing checkpoint directory"
        )
    return resolve_checkpoint_dir(spec)


def validate_policy_spec(spec: str) -> None:
    """Fail fast in the parent process, before workers start."""
    if spec not in BUILTIN_POLICIES:
        resolve_checkpoint(spec)


def build_policy(spec: str, env, execute_steps: int | None = None):
    if spec == "noop":
        return NoopPolicy()
    if spec == "scripted":
        from envs.scripted_expert import ScriptedExpert

        return ScriptedExpert(env)
    if spec == "replay":  # built by data_pipeline.replay.ReplayPolicyBuilder, passed to evaluate()
        raise LaraUserError("--policy replay needs --replay_dataset DIR (a LeRobot or LIBERO HDF5 dataset)")
    from lara.modeling_lara import LaraPolicy

    return ChunkedPolicy(LaraPolicy.from_pretrained(str(resolve_checkpoint(spec))), execute_steps=execute_steps)
