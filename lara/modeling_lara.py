"""LaraPolicy: the trained model (`lara.model.LaraModel`) as a policy, with the only action queue.

The policy adds to the model its pre/post-processing (`self.processor`, `lara.processor`), its
inference engine (`self.engine`, `lara.generation`) and the queue that runs the first k actions
of each predicted chunk open-loop. It is an `nn.Module` (the model itself, not a wrapper): the
trainer and checkpoints see the same parameters under the same names.

    policy = LaraPolicy(cfg)                               # random init, or real weights via
                                                           # cfg.backbone.pretrained_path
    policy = LaraPolicy.from_pretrained(dir, device=None)  # safetensors + JSON, never pickle
    policy.save_pretrained(dir)
    policy.predict_action_chunk(obs, stage=None)           # (H, A) un-normalized (or (B, H, A) for a batched
                                                           # dict)
    policy.select_action(obs) -> (A,) ; policy.reset(seed)  # the queue: execute_steps actions of each chunk
    episodes = [policy.new_episode(seed) for seed in seeds] # the batched entry (envs.driver): B episodes,
    policy.select_actions(observations, episodes)          # each with its own queue and noise generator;
                                                           # one forward for those whose queue is empty
    policy.execute_steps = k                               # None = inference.n_action_steps
    policy.chunk_latency_ms                                # ms of each chunk planned since reset()
    x = policy.processor.to_device(obs)                    # stage III in parts (benchmarks): one
                                                           # host-to-device copy,
    ctx, mask = policy.engine.latent_prefill(x)            # prefill over the cached prompt,
    state = policy.processor.expert_state(x.state)         # the normalized state,
    norm = policy.engine.sample_actions(ctx, mask, state, num_steps)   # the Euler steps
                                                                       # (lara.expert_runtime),
    policy.processor.unnormalize(norm)                     # un-normalized numpy chunk(s)
    policy.engine.num_generated_tokens ; policy.engine.last_cot_text   # what token generation did
Training (forward, prepare_batch, the trainer's hooks) is the model's: see lara/model.py.
Inference: stage 1 generates CoT text then (after the forced `<img_next>` slots) FAST tokens with
a KV cache; stage 2 prefills latent slots and generates FAST tokens; stage 3 is one prefill and
the expert's Euler steps (no token generation).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lara.generation import GenerationEngine
from lara.model import LaraModel
from lara.normalization import NormalizationStats
from lara.processor import LaraProcessor, stack_observations
from lara.utils.errors import LaraUserError


@dataclass
class EpisodeQueue:
    """One episode's share of the policy: its action queue, its noise generator (seeded from the
    episode's seed, so its chunks do not depend on the batch it is planned in) and the latency of
    each chunk planned for it (ms; a batch's forward counts for each of its episodes)."""

    generator: torch.Generator | None = None  # None: the global generator (unseeded use)
    queue: deque = field(default_factory=deque)
    chunk_latency_ms: list[float] = field(default_factory=list)

    @classmethod
    def seeded(cls, seed: int | None) -> EpisodeQueue:
        return cls(None if seed is None else torch.Generator().manual_seed(int(seed)))


class LaraPolicy(LaraModel):
    batched = True  # has the batched entry (`new_episode`, `select_actions`): one copy serves B episodes

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.processor = LaraProcessor(self)
        self.engine = GenerationEngine(self)
        self.execute_steps: int | None = None  # actions run per chunk; None = inference.n_action_steps
        self._episode = EpisodeQueue()  # the single-episode API's (select_action, reset)

    def set_normalization(self, stats: NormalizationStats) -> None:
        super().set_normalization(stats)
        self.engine.prompt_cache.clear()

    @torch.no_grad()
    def predict_action_chunk(
        self,
        obs,
        stage: int | None = None,
        num_steps: int | None = None,
        fixed_lengths: tuple[int, int] | None = None,
        noise: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Un-normalized action chunk (H, A) for one Observation, (B, H, A) for a batched dict.
        `stage` picks the inference path (default `inference.stage`), `num_steps` the expert's Euler
        steps; `fixed_lengths=(cot_tokens, action_tokens)` forces the generated lengths of stages 1-2
        (latency benchmarks with random weights); `noise` (B, H, A) the expert's starting draw
        (stage 3; None: the global generator's)."""
        stage = stage or self.cfg.inference.stage
        if stage == 3 and self.cfg.inference.cache:
            with torch.inference_mode():
                return self._predict_latent(obs, num_steps, noise)
        if stage == 3:
            return self._predict_latent(obs, num_steps, noise)
        x = self.processor.to_device(obs)
        actions = self.processor.unnormalize(self.engine.predict_tokens(x, stage, fixed_lengths))  # (B, H, A)
        return actions if x.batched else actions[0]

    def _predict_latent(self, obs, num_steps: int | None, noise: torch.Tensor | None) -> np.ndarray:
        x = self.processor.to_device(obs)
        if noise is not None:
            noise = noise.to(self.device)
        norm = self.engine.predict_latent(
            x, self.processor.expert_state(x.state), num_steps, noise
        )  # (B, H, A)
        actions = self.processor.unnormalize(norm)
        return actions if x.batched else actions[0]

    @property
    def chunk_latency_ms(self) -> list[float]:
        """ms of each chunk planned since `reset()` (the single-episode API): the model's real latency."""
        return self._episode.chunk_latency_ms

    def new_episode(self, seed: int | None = None) -> EpisodeQueue:
        """A new episode for `select_actions`; its chunks' noise comes from `seed` alone."""
        return EpisodeQueue.seeded(seed)

    def select_actions(self, observations: Sequence, episodes: Sequence[EpisodeQueue]) -> list[np.ndarray]:
        """The next action (A,) of each of B episodes. The episodes whose queue is empty are planned
        together, in one forward over their observations (the others' observations are not read),
        each chunk from its own episode's noise: an episode's actions do not depend on its batch."""
        plan = [i for i, episode in enumerate(episodes) if not episode.queue]
        if plan:
            start = time.perf_counter()
            noise = self._noise([episodes[i] for i in plan])  # (B, H, A)
            chunks = self.predict_action_chunk(
                stack_observations([observations[i] for i in plan]), noise=noise
            )  # (B, H, A)
            ms = 1e3 * (time.perf_counter() - start)
            for i, chunk in zip(plan, np.asarray(chunks, dtype=np.float32)):
                self._enqueue(episodes[i], chunk, ms)
        return [episode.queue.popleft() for episode in episodes]

    def select_action(self, obs, plan: Callable[[object], np.ndarray] | None = None) -> np.ndarray:
        """Next action (A,) of the episode started by `reset()`. An empty queue is refilled with the
        first `execute_steps` actions of a new chunk (H, A) from `plan(obs)` (default
        `predict_action_chunk` with this episode's noise; RL rollouts pass their sampler), whose time
        is appended to `chunk_latency_ms`."""
        if not self._episode.queue:
            start = time.perf_counter()
            chunk = np.asarray((plan or self._plan_one)(obs), dtype=np.float32)
            if chunk.ndim != 2:
                raise LaraUserError(
                    f"select_action takes one Observation, not a batch (chunk shape {chunk.shape}); "
                    "select_actions takes B"
                )
            self._enqueue(self._episode, chunk, 1e3 * (time.perf_counter() - start))
        return self._episode.queue.popleft()

    def _plan_one(self, obs) -> np.ndarray:
        """One Observation's chunk (H, A), its noise drawn as `select_actions` draws it."""
        return self.predict_action_chunk(obs, noise=self._noise([self._episode]))

    def _noise(self, episodes: Sequence[EpisodeQueue]) -> torch.Tensor | None:
        """(B, H, A): one draw per episode from its own generator (None if one has none)."""
        if any(episode.generator is None for episode in episodes):
            return None
        shape = (self.cfg.chunk_size, self.cfg.action_dim)
        return torch.stack([torch.randn(shape, generator=episode.generator) for episode in episodes])

    def actions_per_chunk(self, execute_steps: int | None = None) -> int:
        """How many actions of each chunk run open-loop: `execute_steps` (default: the policy's own
        setting, else the checkpoint's inference.n_action_steps), refused if no chunk holds them."""
        k = execute_steps or self.execute_steps or self.cfg.inference.n_action_steps
        if not 1 <= k <= self.cfg.chunk_size:
            raise LaraUserError(f"execute_steps={k} but the policy predicts chunks of {self.cfg.chunk_size}")
        return k

    def _enqueue(self, episode: EpisodeQueue, chunk: np.ndarray, ms: float) -> None:
        """The first `execute_steps` actions of `chunk` (H, A) onto `episode`'s queue."""
        episode.queue.extend(chunk[: self.actions_per_chunk()])
        episode.chunk_latency_ms.append(ms)

    def needs_observation(self, episode: EpisodeQueue | None = None) -> bool:
        """Whether the next action of `episode` (default: the `reset()` one) reads its observation:
        only when its queue is empty and a chunk is planned. The simulator skips rendering the frames
        no one reads (envs.libero_env)."""
        return not (episode or self._episode).queue

    def reset(self, seed: int | None = None) -> None:
        """A new episode (its chunks' noise from `seed`; None: the global generator): the queue and
        the latencies emptied, the prompt cache dropped (a new episode may bring a new instruction)."""
        self._episode = EpisodeQueue.seeded(seed)
        self.engine.prompt_cache.clear()


@dataclass(frozen=True)
class LaraPolicyBuilder:
    """The `policy_builder` the commands hand to the simulator layer (`envs.evaluator.evaluate`,
    `envs.rollouts.RolloutPool`) for a checkpoint: picklable, so a worker can build its own copy;
    `batched`: the evaluation driver builds one copy and runs it on the batch (envs.driver)."""

    checkpoint: str  # a save_pretrained folder
    execute_steps: int | None = None  # None: the checkpoint's inference.n_action_steps
    batched = True

    def describe(self) -> dict:
        """run.json's `policy_inference`: the stage that trained the checkpoint and its inference path
        (checks the checkpoint: the evaluator calls this before any worker starts)."""
        from lara.inference_plan import checkpoint_inference

        return checkpoint_inference(self.checkpoint)

    def __call__(self, env=None) -> LaraPolicy:
        policy = LaraPolicy.from_pretrained(self.checkpoint).eval()
        policy.execute_steps = self.execute_steps
        return policy
