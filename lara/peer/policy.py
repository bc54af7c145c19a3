"""`lara eval --policy peer:DIR`: a trained lerobot Diffusion Policy behind the evaluator's policy API.

The evaluator calls `reset()` at each episode and `select_action(obs) -> (7,)` at each step, as
for every policy (envs.policies). This adapter turns an `envs.protocol.Observation` into lerobot's
inference batch (each camera as (3, H, W) float in [0, 1] under its dataset key, resized to the
training size as LaRA's own policies are: bilinear, antialiased; the 8-d state), runs lerobot's
preprocessor (batch dim, normalization with the training stats), `DiffusionPolicy.select_action`
(its own queues: the last n_obs_steps observations, and a chunk of n_action_steps actions re-planned
when empty), and lerobot's postprocessor (unnormalization). Each chunk's diffusion noise (initial and
DDPM's per-step) comes from a seed drawn from a generator seeded by `--seed`, so a run is
reproducible. The policy reads every observation (its
observation queue holds the previous frame too), so every step is rendered.

`PeerPolicyBuilder` is what the command layer passes to `envs.evaluator.evaluate(cfg,
policy_builder=...)`, as for `--policy replay`: the simulator layer never imports lerobot.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from envs.protocol import Observation
from lara.peer import checkpoint as ckpt
from lara.utils.errors import LaraUserError

PREFIX = "peer:"


def image_tensor(image: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, h, w) float32 in [0, 1] at the training size `hw`."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)  # (3, H, W)
    if tuple(x.shape[-2:]) != tuple(hw):
        x = F.interpolate(x[None], size=tuple(hw), mode="bilinear", align_corners=False, antialias=True)[0]
    return x


class PeerDiffusionPolicy:
    """A lerobot `DiffusionPolicy` checkpoint written by `lara peer-train`, acting in LIBERO."""

    needs_images = True

    def __init__(self, checkpoint: str | Path, seed: int = 7, execute_steps: int | None = None):
        from lerobot.processor import PolicyProcessorPipeline
        from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action

        from lara.peer.lerobot_diffusion import DiffusionPolicy

        self.checkpoint = ckpt.resolve(checkpoint)
        self.meta = ckpt.read_meta(self.checkpoint)
        self.cameras: dict[str, str] = self.meta["cameras"]
        self.image_hw = tuple(self.meta["image_hw"])
        self.state_key: str = self.meta["state_key"]
        self.policy = DiffusionPolicy.from_pretrained(self.checkpoint, local_files_only=True)
        self.policy.eval()
        if execute_steps is not None:
            limit = self.policy.config.horizon - self.policy.config.n_obs_steps + 1
            if not 1 <= execute_steps <= limit:
                raise LaraUserError(f"--execute_steps {execute_steps}: this peer policy runs 1..{limit}")
            self.policy.config.n_action_steps = execute_steps  # the action queue's length (reset below)
        self.preprocessor = PolicyProcessorPipeline.from_pretrained(
            self.checkpoint, config_filename=ckpt.PREPROCESSOR, local_files_only=True
        )
        self.postprocessor = PolicyProcessorPipeline.from_pretrained(
            self.checkpoint,
            config_filename=ckpt.POSTPROCESSOR,
            local_files_only=True,
            to_transition=policy_action_to_transition,
            to_output=transition_to_policy_action,
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.chunk_latency_ms: list[float] = []
        self.reset()

    @property
    def n_action_steps(self) -> int:
        return self.policy.config.n_action_steps

    def reset(self) -> None:
        self.policy.reset()  # empties lerobot's observation and action queues
        self.chunk_latency_ms = []

    def batch(self, obs: Observation) -> dict[str, torch.Tensor]:
        """lerobot's unbatched observation dict: (3, h, w) images in [0, 1] and the (8,) state."""
        missing = [cam for cam in self.cameras if cam not in obs.images]
        if missing:
            raise LaraUserError(
                f"the peer policy needs cameras {missing}; the observation has {list(obs.images)}"
            )
        batch = {key: image_tensor(obs.images[cam], self.image_hw) for cam, key in self.cameras.items()}
        batch[self.state_key] = torch.as_tensor(np.asarray(obs.state, dtype=np.float32))  # (8,)
        return batch

    def plans_next(self) -> bool:
        """Whether the next `select_action` samples a new chunk (lerobot's action queue is empty)."""
        return len(self.policy._queues["action"]) == 0

    @torch.no_grad()
    def select_action(self, obs: Observation) -> np.ndarray:
        start = time.perf_counter()
        planning = self.plans_next()
        batch = self.preprocessor(self.batch(obs))
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
            if planning:  # lerobot draws the chunk's noise and DDPM's per-step noise from torch's global RNG
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=self.generator)))
            action = self.policy.select_action(batch)  # (1, 7), normalized
        action = self.postprocessor(action)  # (1, 7) in the dataset's units
        if planning:
            self.chunk_latency_ms.append(1e3 * (time.perf_counter() - start))
        return action[0].to(torch.float32).numpy()


def checkpoint_of(spec: str) -> str | None:
    """`peer:DIR` -> DIR; any other --policy -> None."""
    return spec[len(PREFIX) :] if spec.startswith(PREFIX) else None


@dataclass(frozen=True)
class PeerPolicyBuilder:
    """`env -> PeerDiffusionPolicy` for `envs.evaluator.evaluate(cfg, policy_builder=...)`; picklable,
    so each evaluator worker loads the checkpoint itself."""

    checkpoint: str
    seed: int = 7
    execute_steps: int | None = None

    def __post_init__(self) -> None:
        ckpt.resolve(self.checkpoint)  # a wrong path fails here, in one line, before any simulator starts

    def describe(self) -> dict:
        """What run.json's `policy_inference` could say of this policy (as `checkpoint_inference`
        does for a LaRA checkpoint): lerobot's policy, its training step, its sampling."""
        path = ckpt.resolve(self.checkpoint)
        meta, config = ckpt.read_meta(path), json.loads((path / "config.json").read_text())
        steps = config.get("num_inference_steps") or config["num_train_timesteps"]
        k = self.execute_steps or config["n_action_steps"]
        return {
            "stage": "peer",
            "inference": f"{meta['policy']}: {config['noise_scheduler_type']} with {steps} denoising steps, "
            f"chunks of {config['horizon']} actions, {k} executed; trained {meta['step']} steps",
        }

    def __call__(self, env) -> PeerDiffusionPolicy:
        return PeerDiffusionPolicy(self.checkpoint, seed=self.seed, execute_steps=self.execute_steps)
