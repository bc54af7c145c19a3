"""Simulator servers: a worker that holds environments and answers reset/step commands.

The evaluation driver (envs.driver) keeps B episodes in flight over W servers, each server holding
the envs of its `slots` (one episode each). A job is the list of commands for one server's slots,
its reply the list of `SimReply`, in order:
    Reset(slot, task, episode)      -> the episode's first observation (the env of `task` is built,
                                       or reused when the slot's last episode had the same task)
    Reset(slot, task, 0, state)     -> the same, started from a flattened MuJoCo state (RL layouts)
    Step(slot, action, render)      -> the next observation; its cameras rendered only if `render`
    Step(slot, None, render)        -> the same, the action chosen by the slot's own policy (a policy
                                       that lives next to its simulator: scripted, replay, noop)
A crash of the simulator (or of a slot's own policy) is the reply's `error`, and the slot's env is
rebuilt at its next reset; a `LaraUserError` (bad input, a malformed action) ends the run. Each
reply carries the seconds the command spent in physics, rendering and the slot's own policy, which
the driver adds to the episode's record.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field

import numpy as np

from envs.episode_clock import EpisodeClock
from envs.episode_worker import build_env, init_worker, reset_episode
from envs.episodes import EpisodeUnit, episode_seed
from envs.policies import build_policy, check_action, needs_observation, start_episode
from envs.protocol import Observation
from lara.utils.errors import LaraUserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reset:
    slot: int
    task: int
    episode: int
    state: np.ndarray | None = None  # (D,) start here instead of init state `episode` (envs.rollout_driver)


@dataclass(frozen=True)
class Step:
    slot: int
    action: np.ndarray | None  # (7,), or None: the slot's own policy acts
    render: bool


@dataclass
class SimReply:
    slot: int
    obs: Observation | None = None
    done: bool = False
    action: np.ndarray | None = None  # the action taken (the slot's own policy's)
    task_name: str = ""
    max_steps: int = 0
    sim_seconds: float = 0.0
    render_seconds: float = 0.0
    policy_seconds: float = 0.0
    setup_seconds: float = 0.0
    error: str | None = None
    extra: dict = field(default_factory=dict)


_SERVER: dict = {}  # cfg, policy_builder, slots: {slot: {"task", "env", "policy", "obs"}}


def init_server(
    cfg, torch_threads: int | None = None, in_subprocess: bool = False, policy_builder=None
) -> None:
    """`policy_builder`: `env -> policy` for policies that live next to their env; None for a
    built-in one, or when the policy lives in the driver (`cfg.policy` a checkpoint)."""
    init_worker(cfg, torch_threads, in_subprocess)
    _SERVER.clear()
    _SERVER.update(cfg=cfg, policy_builder=policy_builder, slots={})


def close_server() -> None:
    for slot in _SERVER.get("slots", {}).values():
        slot["env"].close()
    _SERVER.clear()


def serve(commands: list) -> list[SimReply]:
    """One job: every command of this server's slots, in order."""
    return [_reset(c) if isinstance(c, Reset) else _step(c) for c in commands]


def _own_policy(env):
    cfg, builder = _SERVER["cfg"], _SERVER["policy_builder"]
    if builder is not None:
        return builder(env)
    from envs.policies import BUILTIN_POLICIES

    return build_policy(cfg.policy, env) if cfg.policy in BUILTIN_POLICIES else None


def _reset(command: Reset) -> SimReply:
    cfg, slots = _SERVER["cfg"], _SERVER["slots"]
    reply = SimReply(command.slot)
    clock, render_start = EpisodeClock(), EpisodeClock.render_total
    slot = slots.get(command.slot)
    start = EpisodeClock.now()
    try:
        if slot is None or slot["task"] != command.task:
            if slot is not None:
                slots.pop(command.slot)["env"].close()
            env = build_env(cfg, command.task)
            slot = slots[command.slot] = {"task": command.task, "env": env, "policy": _own_policy(env)}
        reply.setup_seconds = EpisodeClock.now() - start
    except LaraUserError:
        raise
    except Exception as err:  # the env or its policy could not be built: no result (evaluator)
        reply.error = f"{type(err).__name__}: {err}"
        reply.extra["traceback"] = traceback.format_exc()
        slots.pop(command.slot, None)
        return reply
    env, policy = slot["env"], slot["policy"]
    reply.task_name, reply.max_steps = env.task_name, env.max_steps
    try:
        obs, replayed = reset_episode(env, policy, command.episode, clock, command.state)
        if replayed is not None:
            reply.extra["replayed_episode"] = replayed
        if policy is not None:
            start_episode(policy, episode_seed(cfg.seed, EpisodeUnit(command.task, command.episode)))
        slot["obs"] = reply.obs = obs
    except LaraUserError:
        raise
    except Exception as err:
        _crashed(reply, err, command)
    _timing(reply, clock, render_start)
    return reply


def _step(command: Step) -> SimReply:
    cfg, slot = _SERVER["cfg"], _SERVER["slots"][command.slot]
    env, policy = slot["env"], slot["policy"]
    reply = SimReply(command.slot)
    clock, render_start = EpisodeClock(), EpisodeClock.render_total
    try:
        action, render = command.action, command.render
        if action is None:  # the slot's own policy acts on the observation it kept
            action = check_action(clock.call("policy", policy.select_action, slot["obs"]))
            render = cfg.video or cfg.render or needs_observation(policy)
            reply.action = action
        obs, done, _ = clock.call("env", env.step, action, render)
        slot["obs"] = reply.obs = obs
        reply.done = done
    except LaraUserError:
        raise
    except Exception as err:
        _crashed(reply, err, command)
    _timing(reply, clock, render_start)
    return reply


def _crashed(reply: SimReply, err: Exception, command) -> None:
    """A crash in the simulator or the slot's policy: recorded; the env is rebuilt (its state is unknown)."""
    reply.error = f"{type(err).__name__}: {err}"
    logger.warning("%r raised:\n%s", command, traceback.format_exc())
    slot = _SERVER["slots"].pop(command.slot, None)
    if slot is not None:
        slot["env"].close()


def _timing(reply: SimReply, clock: EpisodeClock, render_start: float) -> None:
    reply.render_seconds = EpisodeClock.render_total - render_start
    reply.sim_seconds = clock.env - reply.render_seconds
    reply.policy_seconds = clock.policy
