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
    policy.select_action(obs) -> (A,) ; policy.reset()     # the queue: execute_steps actions of each chunk
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
from collections.abc import Callable

import numpy as np
import torch

from lara.generation import GenerationEngine
from lara.model import LaraModel
from lara.normalization import NormalizationStats
from lara.processor import LaraProcessor
from lara.utils.errors import LaraUserError


class LaraPolicy(LaraModel):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.processor = LaraProcessor(self)
        self.engine = GenerationEngine(self)
        self.execute_steps: int | None = None  # actions run per chunk; None = inference.n_action_steps
        self.chunk_latency_ms: list[float] = []  # per planned chunk since reset(): the model's real latency
        self._queue: deque[np.ndarray] = deque()

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
    ) -> np.ndarray:
        """Un-normalized action chunk (H, A) for one Observation, (B, H, A) for a batched dict.
        `stage` picks the inference path (default `inference.stage`), `num_steps` the expert's Euler
        steps; `fixed_lengths=(cot_tokens, action_tokens)` forces the generated lengths of stages 1-2
        (latency benchmarks with random weights)."""
        stage = stage or self.cfg.inference.stage
        if stage == 3 and self.cfg.inference.cache:
            with torch.inference_mode():
                return self._predict_latent(obs, num_steps)
        if stage == 3:
            return self._predict_latent(obs, num_steps)
        x = self.processor.to_device(obs)
        actions = self.processor.unnormalize(self.engine.predict_tokens(x, stage, fixed_lengths))  # (B, H, A)
        return actions if x.batched else actions[0]

    def _predict_latent(self, obs, num_steps: int | None) -> np.ndarray:
        x = self.processor.to_device(obs)
        norm = self.engine.predict_latent(x, self.processor.expert_state(x.state), num_steps)  # (B, H, A)
        actions = self.processor.unnormalize(norm)
        return actions if x.batched else actions[0]

    def select_action(self, obs, plan: Callable[[object], np.ndarray] | None = None) -> np.ndarray:
        """Next action (A,) from the queue. An empty queue is refilled with the first `execute_steps`
        actions of a new chunk (H, A) from `plan(obs)` (default `predict_action_chunk`; RL rollouts
        pass their sampler), whose time is appended to `chunk_latency_ms`."""
        if not self._queue:
            start = time.perf_counter()
            chunk = np.asarray((plan or self.predict_action_chunk)(obs), dtype=np.float32)
            self.chunk_latency_ms.append(1e3 * (time.perf_counter() - start))
            if chunk.ndim != 2:
                raise LaraUserError(
                    f"select_action takes one Observation, not a batch (chunk shape {chunk.shape})"
                )
            k = self.execute_steps or self.cfg.inference.n_action_steps
            if not 1 <= k <= chunk.shape[0]:
                raise LaraUserError(f"execute_steps={k} but the policy predicts chunks of {chunk.shape[0]}")
            self._queue.extend(chunk[:k])
        return self._queue.popleft()

    def needs_observation(self) -> bool:
        """Whether the next `select_action` reads its observation: only when the queue is empty and a
        chunk is planned. The simulator skips rendering the frames no one reads (envs.libero_env)."""
        return not self._queue

    def reset(self) -> None:
        """A new episode: the queue and the latencies emptied, the prompt cache dropped (a new
        episode may bring a new instruction)."""
        self._queue.clear()
        self.chunk_latency_ms.clear()
        self.engine.prompt_cache.clear()
