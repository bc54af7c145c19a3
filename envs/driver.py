"""The evaluation driver: B episodes in flight over W simulator servers, one policy acting on the batch.

    drive(cfg, units, pool, policy, on_record)

`pool` is a `WorkerPool` (or `RayWorkerPool`) running `envs.sim_server.serve`; each of its W
workers holds `slots_per_worker` envs, one episode in flight each. Every tick the driver sends each
server the commands of its slots (reset a new episode, or step with the chosen action), waits for
every reply, finishes the episodes that ended (success, the step limit, an error) and hands their
slots the next episodes, then asks `policy.select_actions` for the next action of every episode
still running: one call, one forward for the episodes whose action queue is empty (the others'
frames are neither read nor rendered). `policy=None`: each slot's own policy acts inside its server
(a policy that lives next to its simulator, e.g. the scripted expert).

An episode's actions depend on its seed alone (its own queue and noise generator,
`envs.episodes.episode_seed`), not on its batch, its worker or the number of workers. A server that
dies (SIGKILL, a lost Ray actor) is replaced and its episodes in flight start again from their
reset: each costs a re-run of itself only, and nothing of it was recorded. `on_record(dict)`
receives each finished episode once, in the order they finish. A batch's policy time is shared
equally by its episodes (their `policy_seconds`, `policy_latency_ms`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from envs.episodes import (
    ActionDigest,
    EpisodeRecord,
    EpisodeUnit,
    episode_seed,
    new_record,
    video_frame,
    write_video,
)
from envs.policies import check_action
from envs.sim_server import Reset, SimReply, Step

logger = logging.getLogger(__name__)


@dataclass
class _Episode:
    unit: EpisodeUnit
    record: EpisodeRecord
    queue: object  # the batched policy's state of this episode (None: the slot's own policy acts)
    start: float = field(default_factory=time.perf_counter)
    obs: object = None
    limit: int = 0
    latencies: list = field(default_factory=list)
    frames: list = field(default_factory=list)
    actions: ActionDigest = field(default_factory=ActionDigest)


def drive(
    cfg, units: list[EpisodeUnit], pool, policy, on_record: Callable[[dict], None], slots_per_worker: int = 1
) -> None:
    """Run `units` (see module doc); `cfg` is the run's `envs.evaluator.EvalConfig`."""
    todo = deque(units)
    n_slots = min(len(units), pool.workers * slots_per_worker)
    pool.start((n_slots + slots_per_worker - 1) // slots_per_worker)
    live: dict[int, _Episode] = {}  # slot -> its episode; slot s lives on worker s // slots_per_worker
    commands: dict[int, object] = {}
    try:
        while todo or live:
            for slot in range(n_slots):
                if slot not in live and todo:
                    unit = todo.popleft()
                    queue = None if policy is None else policy.new_episode(episode_seed(cfg.seed, unit))
                    live[slot] = _Episode(unit, new_record(cfg.suite, unit), queue)
                    commands[slot] = Reset(slot, unit.task, unit.episode)
            for reply in exchange(pool, commands, slots_per_worker, live, todo):
                episode = live[reply.slot]
                _apply(episode, reply, cfg)
                if episode.record.error or episode.record.success or episode.record.steps >= episode.limit:
                    del live[reply.slot]
                    on_record(_finish(episode, cfg))
                elif policy is None:
                    commands[reply.slot] = Step(reply.slot, None, False)
            acting = [slot for slot in live if slot not in commands]
            if acting:
                commands.update(_act(policy, [(slot, live[slot]) for slot in acting], cfg))
    except BaseException:
        pool.close(graceful=False)  # stop every server now: nothing keeps running for nobody
        raise


def exchange(pool, commands: dict, per_worker: int, live: dict, todo: deque) -> list[SimReply]:
    """Send each server its slots' commands, wait for every answer. A dead server's episodes go
    back to the front of `todo` (dropped from `live`)."""
    jobs: dict[int, list] = {}
    for slot, command in sorted(commands.items()):
        jobs.setdefault(slot // per_worker, []).append(command)
    commands.clear()
    for worker, job in jobs.items():
        pool.submit(worker, job)
    out: list[SimReply] = []
    while jobs:
        for reply in pool.replies():
            job = jobs.pop(reply.worker)
            if reply.died is None:
                out.extend(reply.value)
                continue
            for command in reversed(job):
                episode = live.pop(command.slot)
                pool.note_death(episode.unit, reply)
                todo.appendleft(episode.unit)
    return out


def _apply(episode: _Episode, reply: SimReply, cfg) -> None:
    """A server's reply into the episode's record."""
    record = episode.record
    for part in ("sim_seconds", "render_seconds", "policy_seconds", "setup_seconds"):
        setattr(record, part, (getattr(record, part) or 0.0) + getattr(reply, part))
    if reply.task_name:  # a reset
        record.task_name, episode.limit = reply.task_name, cfg.max_steps or reply.max_steps
        if "replayed_episode" in reply.extra:
            record.init_state_index = None
            record.extra["replayed_episode"] = reply.extra["replayed_episode"]
    else:
        record.steps += 1
        record.success = reply.done
    if reply.action is not None:  # the slot's own policy acted
        episode.actions.add(reply.action)
        episode.latencies.append(1e3 * reply.policy_seconds)
    if reply.error:
        record.error = reply.error
        record.extra.update(reply.extra)
        return
    episode.obs = reply.obs
    if cfg.video and reply.obs is not None:
        episode.frames.append(video_frame(reply.obs))


def _act(policy, acting: list[tuple[int, _Episode]], cfg) -> dict[int, Step]:
    """One `select_actions` call for every running episode -> their Step commands."""
    start = time.perf_counter()
    actions = policy.select_actions([e.obs for _, e in acting], [e.queue for _, e in acting])
    share = (time.perf_counter() - start) / len(acting)
    steps = {}
    for (slot, episode), action in zip(acting, actions):
        action = check_action(action)
        episode.actions.add(action)
        episode.latencies.append(1e3 * share)
        episode.record.policy_seconds = (episode.record.policy_seconds or 0.0) + share
        render = bool(cfg.video or cfg.render or policy.needs_observation(episode.queue))
        steps[slot] = Step(slot, action, render)
    return steps


def _finish(episode: _Episode, cfg) -> dict:
    record = episode.record
    record.seconds = time.perf_counter() - episode.start
    record.policy_latency_ms = float(np.mean(episode.latencies)) if episode.latencies else None
    chunk_ms = getattr(episode.queue, "chunk_latency_ms", None)
    if chunk_ms:
        record.chunk_latency_ms = float(np.mean(chunk_ms))
    record.extra["actions_sha1"] = episode.actions.hexdigest()
    if cfg.video and episode.frames:
        write_video(episode.frames, cfg.out, record)
    return asdict(record)
