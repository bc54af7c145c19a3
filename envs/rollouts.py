"""Stochastic LIBERO rollouts for RL (simulator layer: env + protocol only): what a rollout is, the
chunk sampler, and the per-worker engine (`lara rl --policy_in workers`).

A rollout starts from a given layout (a flattened MuJoCo state from the training data, never an
evaluation init state), runs a LaRA checkpoint whose chunks are *sampled* (stage III: noisy
Euler steps, `lara.flow_sampling`; stage II: FAST tokens at a temperature, `lara.token_logprobs`),
and records per chunk what the GRPO update needs: the observation the chunk was planned from
(camera images, state, instruction), the sample (Euler path or tokens) and its log-probability.
Its outcome is LIBERO's own success predicate within the step limit. `sample_chunks` plans the
chunks of B rollouts, each from its own generator; both engines use it.

The default engine is envs.rollout_driver (the learner's policy, batched over simulator servers).
Here, instead, each worker (a `WorkerPool` process or Ray actor, keeping the env of its last task)
loads its own copy of the policy from the starting checkpoint and runs whole rollouts at batch 1;
after each update the learner writes the trained parameters to a safetensors file and workers
reload it when its version changes. The policy comes from the `policy_builder` the training layer
passes (a picklable `() -> policy`, `lara.modeling_lara.LaraPolicyBuilder`): this layer does not
import the model. Every rollout draws its noise from its own seed, so an iteration is reproducible
from the weights and the seeds alone (what exact resume relies on).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import asdict, dataclass, field

import numpy as np

from envs.protocol import validate_action
from envs.worker_backends import make_pool
from lara.utils.errors import LaraUserError
from lara.utils.process_guard import exit_with_parent

log = logging.getLogger(__name__)
POLICY_KINDS = ("flow", "tokens")


@dataclass(frozen=True)
class RolloutSettings:
    policy_dir: str  # the starting checkpoint (save_pretrained layout)
    suite: str
    kind: str = "flow"  # flow (stage III expert) | tokens (stage II FAST tokens)
    noise_scale: float = 0.1  # flow: std of each Euler step's Gaussian (normalized action units)
    temperature: float = 1.0  # tokens: sampling temperature
    num_steps: int | None = None  # flow: Euler steps (None = the checkpoint's)
    execute_steps: int | None = None  # actions run open-loop per chunk (None: inference.n_action_steps)
    max_steps: int | None = None  # step limit (None = the suite's protocol limit)
    camera_size: int = 256
    env_seed: int = 7

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise LaraUserError(f"policy kind {self.kind!r}: choose one of {', '.join(POLICY_KINDS)}")
        if self.kind == "flow" and not self.noise_scale > 0:
            raise LaraUserError(f"noise_scale must be > 0 for flow RL (got {self.noise_scale})")
        if self.kind == "tokens" and not self.temperature > 0:
            raise LaraUserError(f"temperature must be > 0 for token RL (got {self.temperature})")


@dataclass(frozen=True)
class RolloutSpec:
    task: int
    layout: np.ndarray  # (D,) flattened MuJoCo state to start from
    seed: int  # the rollout's own noise seed
    group: int
    member: int


@dataclass
class RolloutResult:
    group: int
    member: int
    task: int
    success: bool
    steps: int
    seconds: float
    chunks: list[dict] = field(default_factory=list)  # images, state, instruction, path|tokens, log_prob
    error: str | None = None


# ----------------------------------------------------------------------------- worker side
_W: dict = {}


def _init_worker(
    settings: RolloutSettings, threads: int | None = None, in_subprocess: bool = False, policy_builder=None
) -> None:
    from envs import libero_setup

    if in_subprocess:
        exit_with_parent()
        if threads:
            os.environ.setdefault("LP_NUM_THREADS", str(threads))
    libero_setup.configure()
    import torch

    if threads:
        torch.set_num_threads(threads)
    _W.clear()
    _W["settings"] = settings
    _W["policy"] = policy_builder()  # the starting checkpoint, running `execute_steps` of each chunk
    _W["version"] = None


def _sync_weights(weights: str | None, version: int) -> None:
    if weights is None or _W["version"] == version:
        return
    from safetensors.torch import load_file

    unknown = _W["policy"].load_state_dict(load_file(weights), strict=False).unexpected_keys
    if unknown:
        raise RuntimeError(f"rollout weights hold parameters the policy lacks: {unknown[:3]}")
    _W["version"] = version


def _env(task: int):
    s: RolloutSettings = _W["settings"]
    if _W.get("task") != task:
        from envs.libero_env import LiberoEnv

        if "env" in _W:
            _W.pop("env").close()
        _W["env"] = LiberoEnv(s.suite, task, camera_size=s.camera_size, render=True, seed=s.env_seed)
        _W["task"] = task
    return _W["env"]


def sample_chunks(
    policy, observations: list, s: RolloutSettings, generators: list
) -> list[tuple[np.ndarray, dict]]:
    """For each of B observations: its un-normalized (H, A) actions and its chunk's record
    (observation + sample), the noise of row i from `generators[i]` alone (a chunk does not depend
    on its batch). Flow chunks are planned in one forward; token chunks one observation at a time."""
    records = [
        {"images": dict(o.images), "state": np.asarray(o.state, np.float32), "instruction": o.instruction}
        for o in observations
    ]
    if s.kind == "flow":
        from lara.flow_sampling import sample_flow_chunk
        from lara.processor import stack_observations

        batch = stack_observations(observations)
        actions, sample = sample_flow_chunk(policy, batch, s.noise_scale, s.num_steps, generators)
        paths = sample.path.cpu().numpy()  # (B, N + 1, H, A)
        for i, record in enumerate(records):
            record.update(path=paths[i], log_prob=float(sample.log_prob[i]))
        return list(zip(actions, records))
    from lara.token_logprobs import decode_actions, sample_tokens

    out = []
    for o, record, generator in zip(observations, records, generators):
        imgs = policy.processor.to_device(o).images  # (n_cam, 3, H, W)
        sample = sample_tokens(policy, imgs, o.instruction, s.temperature, generator)
        record.update(tokens=list(sample.tokens), log_prob=sample.log_prob)
        out.append((decode_actions(policy, sample.tokens), record))
    return out


def run_rollout(job: tuple[RolloutSpec, str | None, int]) -> dict:
    """One rollout in this worker. Simulator/policy crashes are recorded, not raised."""
    import torch

    spec, weights, version = job
    s: RolloutSettings = _W["settings"]
    start = time.perf_counter()
    result = RolloutResult(spec.group, spec.member, spec.task, False, 0, 0.0)
    try:
        _sync_weights(weights, version)
        policy, env = _W["policy"], _env(spec.task)
        generator = torch.Generator().manual_seed(spec.seed)
        env.reset(0)  # builds the episode; the layout below replaces the whole simulator state
        obs = env.set_sim_state(spec.layout)

        def plan(o) -> np.ndarray:  # a sampled chunk, recorded for the update
            ((actions, record),) = sample_chunks(policy, [o], s, [generator])
            result.chunks.append(record)
            return actions

        policy.reset()  # the policy's queue runs `execute_steps` actions of each planned chunk
        for _ in range(s.max_steps or env.max_steps):
            action = validate_action(policy.select_action(obs, plan))
            obs, done, _ = env.step(action, render=policy.needs_observation())  # frames read only
            result.steps += 1
            if done:
                result.success = True
                break
    except LaraUserError:
        raise
    except Exception as err:  # MuJoCo instability or a policy crash: the rollout counts as failed
        result.error = f"{type(err).__name__}: {err}"
        log.warning(
            "rollout task %d group %d member %d raised:\n%s",
            spec.task,
            spec.group,
            spec.member,
            traceback.format_exc(),
        )
        _W.pop("task", None)
    result.seconds = time.perf_counter() - start
    return asdict(result)


# ----------------------------------------------------------------------------- parent side
class RolloutPool:
    """Workers that live across iterations: `run(specs, weights, version)` -> results in spec order.
    A worker killed mid-rollout costs a re-run of that rollout only (envs.workers)."""

    def __init__(
        self,
        settings: RolloutSettings,
        workers: int,
        policy_builder,
        backend: str = "local",
        ray_address: str | None = None,
    ) -> None:
        if workers < 1:
            raise LaraUserError(f"workers must be >= 1, got {workers}")
        self.settings, self.workers, self._pool = settings, workers, None
        self.policy_builder = policy_builder  # () -> the policy at settings.policy_dir
        self.backend, self.ray_address = backend, ray_address  # envs.worker_backends.make_pool

    def __enter__(self) -> RolloutPool:
        spawned = self.workers > 1 or self.backend == "ray"
        threads = max(1, (os.cpu_count() or 1) // self.workers) if spawned else None
        pool = make_pool(
            run_rollout,
            self.workers,
            _init_worker,
            (self.settings, threads, spawned, self.policy_builder),
            finalizer=_close_env,
            backend=self.backend,
            ray_address=self.ray_address,
        )
        self._pool = pool.__enter__()  # a Ray pool joins (or starts) Ray here
        return self

    def run(self, specs: list[RolloutSpec], weights: str | None, version: int, on_result=None) -> list[dict]:
        jobs = [(spec, weights, version) for spec in specs]
        order = {id(job): i for i, job in enumerate(jobs)}
        out: list[dict | None] = [None] * len(jobs)
        for job, result in self._pool.imap_unordered(jobs):
            out[order[id(job)]] = result
            if on_result is not None:
                on_result(result)
        return out

    def __exit__(self, *exc) -> None:
        self._pool.__exit__(*exc)


def _close_env() -> None:
    """Close the worker's simulator now: freeing its GL context at interpreter exit raises EGL errors."""
    if "env" in _W:
        _W.pop("env").close()
    _W.clear()


def task_ids_by_name(suite: str) -> dict[str, int]:
    """{task name: task id} of a suite (to place a dataset's layouts in their tasks)."""
    from envs.libero_env import _benchmark

    bench = _benchmark(suite)
    return {bench.get_task(i).name: i for i in range(int(bench.n_tasks))}
