"""Policies the evaluator can run.

A policy is anything with `reset()` and `select_action(obs) -> (7,)`; one that plans action chunks
also has `chunk_latency_ms` (ms of each chunk planned since `reset()`), which the evaluator
reports. `--policy` names one:
- `noop`: always the no-op (gripper open); a floor for any success table.
- `scripted`: the privileged-state expert (`envs.scripted_expert`), needs no images.
- `replay`: plays back the recorded actions of a dataset's episodes of the same task, starting
  from the recorded initial simulator state (checks action alignment end to end). Reading a
  dataset is the data layer's job: `data_pipeline.replay.ReplayPolicyBuilder`, which the `lara eval`
  command passes to `evaluate(cfg, policy_builder=...)`.
- a checkpoint directory: a trained `LaraPolicy` (`save_pretrained` layout); its own action queue
  runs the first k of each chunk open-loop (`--execute_steps`, default inference.n_action_steps
  of the checkpoint). It acts with what the stage that trained it trained (`lara.inference_plan`): stage
  I through its explicit CoT and FAST action tokens, stage II through its (partly) latent CoT and
  FAST tokens, stage III through the flow-matching action expert; `checkpoint_inference` names
  the stage and the path for run.json and the report. This layer does not build it: the command
  passes `lara.modeling_lara.LaraPolicyBuilder` as `evaluate(cfg, policy_builder=...)`.
A builder is `env -> policy`. One with `batched = True` builds a policy with the batched entry
(`new_episode(seed)`, `select_actions(observations, episodes)`, `needs_observation(episode)`):
the evaluation driver builds one and runs it on every episode in flight (envs.driver); any other
policy is built next to its simulator, one per env (`build_policy` for the built-in ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from envs.protocol import NOOP_ACTION, Observation, validate_action
from lara.utils.errors import LaraUserError

BUILTIN_POLICIES = ("noop", "scripted", "replay")


class Policy(Protocol):
    def reset(self) -> None: ...

    def select_action(self, obs: Observation) -> np.ndarray: ...


def is_batched(builder) -> bool:
    """Whether `builder` builds a policy with the batched entry (see module doc)."""
    return bool(getattr(builder, "batched", False))


def start_episode(policy, seed: int) -> None:
    """`policy.reset()`; a batched policy's takes the episode's seed (its own noise generator)."""
    if getattr(policy, "batched", False):
        policy.reset(seed=seed)
    else:
        policy.reset()


def needs_observation(policy) -> bool:
    """Whether `policy`'s next `select_action` reads the observation's images: a chunked policy's
    `needs_observation()` (False while its queue holds actions), else True. The simulator renders
    only the frames a policy reads (or a video records)."""
    ask = getattr(policy, "needs_observation", None)
    return True if ask is None else bool(ask())


class NoopPolicy:
    needs_images = False

    def reset(self) -> None:
        pass

    def select_action(self, obs: Observation) -> np.ndarray:
        return np.asarray(NOOP_ACTION, dtype=np.float32)


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
            f"--policy {spec!r} is neither one of {', '.join(BUILTIN_POLICIES)} nor an existing checkpoint "
            "directory"
        )
    return resolve_checkpoint_dir(spec)


def validate_policy_spec(spec: str) -> None:
    """Fail fast in the parent process, before workers start."""
    if spec not in BUILTIN_POLICIES:
        resolve_checkpoint(spec)


def checkpoint_inference(spec: str) -> dict | None:
    """For a checkpoint policy: {"stage": the stage that trained it, "inference": its inference path
    in words} (run.json, the report); a user error when that path cannot run; None for a built-in
    policy."""
    if spec in BUILTIN_POLICIES:
        return None
    from lara.inference_plan import checkpoint_inference as inference_of

    return inference_of(resolve_checkpoint(spec))


def build_policy(spec: str, env):
    """A built-in policy for `env` (the others come from a `policy_builder`, see module doc)."""
    if spec == "noop":
        return NoopPolicy()
    if spec == "scripted":
        from envs.scripted_expert import ScriptedExpert

        return ScriptedExpert(env)
    if spec == "replay":  # built by data_pipeline.replay.ReplayPolicyBuilder, passed to evaluate()
        raise LaraUserError("--policy replay needs --dataset DIR (a LeRobot or LIBERO HDF5 dataset)")
    raise LaraUserError(
        f"--policy {spec}: a checkpoint is built by the command layer; pass evaluate(cfg, policy_builder="
        "lara.modeling_lara.LaraPolicyBuilder(checkpoint)) (`lara eval` does)"
    )
