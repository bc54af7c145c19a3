"""Whole episodes inside a worker, with the worker's own policy: `lara eval --policy_in workers`.

Each worker builds its own copy of the policy and runs its episodes at batch 1, as every
evaluation did before the batched driver (envs.driver). Kept for the policies that only exist next
to their simulator (the scripted expert reads privileged state, a replay sets the recorded initial
state) and to measure the driver against (benchmarks/eval_batched.py). An episode draws its noise
from its own seed (`envs.episodes.episode_seed`), as in the driver, so both record the same
episodes. The worker keeps the env of the last task it ran, so consecutive episodes reuse it.
"""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import asdict

from envs.episode_clock import EpisodeClock
from envs.episodes import ActionDigest, EpisodeUnit, episode_seed, new_record, video_frame, write_video
from envs.policies import BUILTIN_POLICIES, build_policy, check_action, needs_observation, start_episode
from lara.utils.errors import LaraUserError
from lara.utils.process_guard import exit_with_parent

logger = logging.getLogger(__name__)

_WORKER: dict = {}


def init_worker(
    cfg, torch_threads: int | None = None, in_subprocess: bool = False, policy_builder=None
) -> None:
    """`cfg`: the run's `envs.evaluator.EvalConfig`; `policy_builder`: `env -> policy` (None: a
    built-in policy, `envs.policies.build_policy`)."""
    from envs import libero_setup

    if in_subprocess:
        exit_with_parent()
        if torch_threads:  # Mesa's llvmpipe renderer starts one thread per core in every worker otherwise
            os.environ.setdefault("LP_NUM_THREADS", str(torch_threads))
    libero_setup.configure()
    if torch_threads and cfg.policy not in BUILTIN_POLICIES:
        import torch

        # W workers share the cores: oversubscribed OpenMP threads spin and slow everything down.
        torch.set_num_threads(torch_threads)
    _WORKER.clear()
    _WORKER["cfg"] = cfg
    _WORKER["policy_builder"] = policy_builder


def needs_images(cfg) -> bool:
    """Whether the run's envs get a renderer: --render, else when the policy or --video reads frames."""
    return cfg.render if cfg.render is not None else (cfg.video or cfg.policy not in BUILTIN_POLICIES)


def build_env(cfg, task: int):
    from envs.libero_env import LiberoEnv

    return LiberoEnv(
        cfg.suite,
        task,
        camera_size=cfg.camera_size,
        render=needs_images(cfg),
        seed=cfg.seed,
        render_quality=cfg.render_quality,
    )


def _worker_env(task: int):
    """The worker's env + policy for `task`, rebuilt only when the task changes (a batched policy,
    which does not depend on its env, is built once)."""
    cfg = _WORKER["cfg"]
    if _WORKER.get("task") != task:
        if "env" in _WORKER:
            _WORKER.pop("env").close()
        env = build_env(cfg, task)
        builder = _WORKER.get("policy_builder")
        policy = _WORKER.get("policy") if getattr(builder, "batched", False) else None
        if policy is None:
            policy = builder(env) if builder is not None else build_policy(cfg.policy, env)
        _WORKER.update(task=task, env=env, policy=policy)
    return _WORKER["env"], _WORKER["policy"]


def reset_episode(env, policy, episode: int, clock: EpisodeClock, state=None):
    """Reset `env` to the suite's init state `episode` -> (observation, replayed demo index or None):
    a replay policy starts from its recorded episode's own initial state instead, and a given
    `state` (a flattened MuJoCo state: an RL rollout's layout) replaces the whole simulator state."""
    EpisodeClock.watch(env)
    obs = clock.call("env", env.reset, episode)
    EpisodeClock.watch(env)  # a reset may have built a new simulator
    if state is not None:
        return clock.call("env", env.set_sim_state, state), None
    if not hasattr(policy, "start"):
        return obs, None
    demo = policy.episode_for(episode)
    policy.start(demo)
    if getattr(demo, "sim_states", None) is None:
        return obs, None
    return clock.call("env", env.set_sim_state, demo.sim_states[0]), int(demo.episode_index)


def close_worker_env() -> None:
    """Close the worker's simulator now: freeing its GL context at interpreter exit raises EGL errors."""
    if "env" in _WORKER:
        _WORKER.pop("env").close()
    _WORKER.clear()


def run_episode(unit: EpisodeUnit) -> dict:
    """Run one episode in this worker; never raises for simulator/policy crashes (recorded instead)."""
    import numpy as np

    cfg = _WORKER["cfg"]
    start = EpisodeClock.now()
    record = new_record(cfg.suite, unit)
    latencies: list[float] = []
    frames: list[np.ndarray] = []
    actions = ActionDigest()
    clock = EpisodeClock()
    try:
        env, policy = _worker_env(unit.task)
        record.setup_seconds = EpisodeClock.now() - start
    except LaraUserError:
        raise
    except Exception as err:  # the env or the policy could not be built: not a result (evaluator)
        record.error = f"{type(err).__name__}: {err}"
        record.extra["traceback"] = traceback.format_exc()  # logged by the parent with --verbose
        _WORKER.pop("task", None)
        return asdict(record)
    try:
        record.task_name = env.task_name
        obs, replayed = reset_episode(env, policy, unit.episode, clock)
        if replayed is not None:
            record.init_state_index = None
            record.extra["replayed_episode"] = replayed
        start_episode(
            policy, episode_seed(cfg.seed, unit)
        )  # a chunked policy's chunk_latency_ms restarts too
        limit = cfg.max_steps or env.max_steps
        for _ in range(limit):
            if cfg.video:
                frames.append(video_frame(obs))
            spent = clock.policy
            action = check_action(clock.call("policy", policy.select_action, obs))
            latencies.append(1e3 * (clock.policy - spent))
            actions.add(action)
            render = cfg.video or cfg.render or needs_observation(policy)  # frames no one reads: not rendered
            obs, done, _ = clock.call("env", env.step, action, render)
            record.steps += 1
            if done:
                record.success = True
                break
        if cfg.video:
            frames.append(video_frame(obs))
    except LaraUserError:  # bad input or a malformed action (PolicyOutputError): stop the run
        raise
    except Exception as err:  # a crash in the simulator or the policy: keep the run going
        record.error = f"{type(err).__name__}: {err}"
        logger.warning("task %d episode %d raised:\n%s", unit.task, unit.episode, traceback.format_exc())
        _WORKER.pop("task", None)  # rebuild the env: its state is unknown after a crash
    record.seconds = EpisodeClock.now() - start
    record.policy_latency_ms = float(np.mean(latencies)) if latencies else None
    clock.fill(record)
    record.extra["actions_sha1"] = actions.hexdigest()
    chunk_ms = getattr(_WORKER.get("policy"), "chunk_latency_ms", None)  # chunked policies (envs.policies)
    if chunk_ms:
        record.chunk_latency_ms = float(np.mean(chunk_ms))
    if cfg.video and frames:
        write_video(frames, cfg.out, record)
    return asdict(record)
