"""RL rollouts stepped by the driver: one policy samples the chunks of every rollout in flight over
W simulator servers (`lara rl --policy_in driver`, the default).

    with RolloutDriver(settings, workers, policy) as pool:
        results = pool.run(specs, weights, version)      # the contract of envs.rollouts.RolloutPool

The servers are the evaluation's (envs.sim_server): each holds `slots_per_worker` envs and answers
Reset (here from the rollout's layout, a flattened MuJoCo state) and Step commands, rendering only
the frames a chunk is planned from. The policy is the caller's own object, in this process: the RL
loop passes the learner's policy, so no copy is loaded per worker and no weights file is read
(`run` ignores `weights`; the loop updates this very policy between iterations). Each tick, the
rollouts whose action queue is empty are planned together (`envs.rollouts.sample_chunks`: one flow
forward for all of them), each from its own generator seeded with `spec.seed`, so a rollout's
chunks, actions and outcome are those of the per-worker path whatever its batch or the number of
workers (tests/envs/test_rl_driver_sim.py). A server that dies costs a re-run of its rollouts in
flight, from their layouts with fresh generators (envs.driver.exchange); a crash of the policy
itself is raised, as in evaluation.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from envs.driver import exchange
from envs.protocol import validate_action
from envs.rollouts import RolloutResult, RolloutSettings, RolloutSpec, sample_chunks
from envs.sim_server import Reset, SimReply, Step, close_server, init_server, serve
from envs.worker_backends import make_pool
from lara.utils.errors import LaraUserError


@dataclass(frozen=True)
class ServerSettings:
    """What a simulator server reads of its run's config (an `EvalConfig` in evaluation)."""

    suite: str
    camera_size: int
    seed: int
    policy: str  # the checkpoint: not a built-in policy, so the servers' envs render
    render: bool | None = None  # None: render the frames the policy reads
    video: bool = False
    render_quality: str = "standard"


@dataclass
class _Rollout:
    unit: tuple[int, int]  # (version, spec index): what a dead server's re-runs are counted by
    spec: RolloutSpec
    result: RolloutResult
    generator: object  # torch.Generator seeded with spec.seed
    queue: deque = field(default_factory=deque)  # actions left of the last planned chunk
    start: float = field(default_factory=time.perf_counter)
    obs: object = None
    limit: int = 0


class RolloutDriver:
    """Simulator servers that live across iterations, and one policy acting on their batch."""

    def __init__(
        self,
        settings: RolloutSettings,
        workers: int,
        policy,
        backend: str = "local",
        ray_address: str | None = None,
        slots_per_worker: int = 1,
    ) -> None:
        if workers < 1 or slots_per_worker < 1:
            raise LaraUserError(
                f"workers and slots_per_worker must be >= 1, got {workers}, {slots_per_worker}"
            )
        self.settings, self.workers, self.policy = settings, workers, policy
        self.backend, self.ray_address, self.slots_per_worker = backend, ray_address, slots_per_worker
        self.execute_steps = policy.actions_per_chunk(settings.execute_steps)
        self._pool = None

    def __enter__(self) -> RolloutDriver:
        s = self.settings
        spawned = self.workers > 1 or self.backend == "ray"
        threads = max(1, (os.cpu_count() or 1) // self.workers) if spawned else None
        server = ServerSettings(s.suite, s.camera_size, s.env_seed, s.policy_dir)
        pool = make_pool(
            serve,
            self.workers,
            init_server,
            (server, threads, spawned, None),
            close_server,
            self.backend,
            self.ray_address,
        )
        self._pool = pool.__enter__()  # a Ray pool joins (or starts) Ray here
        return self

    def __exit__(self, *exc) -> None:
        self._pool.__exit__(*exc)

    def run(self, specs: list[RolloutSpec], weights=None, version: int = 0, on_result=None) -> list[dict]:
        """Every rollout of `specs` -> their results (RolloutResult dicts) in spec order."""
        import torch

        todo = deque((version, i) for i in range(len(specs)))
        n_slots = min(len(specs), self.workers * self.slots_per_worker)
        self._pool.start(-(-n_slots // self.slots_per_worker))
        live: dict[int, _Rollout] = {}  # slot -> its rollout; slot s lives on worker s // slots_per_worker
        commands: dict[int, object] = {}
        out: list[dict | None] = [None] * len(specs)
        try:
            while todo or live:
                for slot in range(n_slots):
                    if slot not in live and todo:
                        unit = todo.popleft()
                        spec = specs[unit[1]]
                        result = RolloutResult(spec.group, spec.member, spec.task, False, 0, 0.0)
                        generator = torch.Generator().manual_seed(spec.seed)
                        live[slot] = _Rollout(unit, spec, result, generator)
                        commands[slot] = Reset(slot, spec.task, 0, spec.layout)
                for reply in exchange(self._pool, commands, self.slots_per_worker, live, todo):
                    rollout = live[reply.slot]
                    self._apply(rollout, reply)
                    result = rollout.result
                    if result.error or result.success or result.steps >= rollout.limit:
                        del live[reply.slot]
                        result.seconds = time.perf_counter() - rollout.start
                        out[rollout.unit[1]] = asdict(result)
                        if on_result is not None:
                            on_result(out[rollout.unit[1]])
                acting = [slot for slot in live if slot not in commands]
                if acting:
                    commands.update(self._act([(slot, live[slot]) for slot in acting]))
        except BaseException:
            self._pool.close(graceful=False)  # stop every server now: nothing keeps running for nobody
            raise
        return out

    def _apply(self, rollout: _Rollout, reply: SimReply) -> None:
        """A server's reply into the rollout: its start (a reset) or one more step."""
        if reply.error:
            rollout.result.error = reply.error
            return
        if reply.task_name:  # the reset
            rollout.limit = self.settings.max_steps or reply.max_steps
        else:
            rollout.result.steps += 1
            rollout.result.success = reply.done
        rollout.obs = reply.obs

    def _act(self, acting: list[tuple[int, _Rollout]]) -> dict[int, Step]:
        """Plan a chunk for every rollout whose queue is empty (one `sample_chunks` call), then the
        next action of each -> their Step commands (rendering only where a chunk is planned next)."""
        planning = [rollout for _, rollout in acting if not rollout.queue]
        if planning:
            chunks = sample_chunks(
                self.policy, [r.obs for r in planning], self.settings, [r.generator for r in planning]
            )
            for rollout, (actions, record) in zip(planning, chunks):
                rollout.result.chunks.append(record)
                rollout.queue.extend(np.asarray(actions, dtype=np.float32)[: self.execute_steps])
        steps = {}
        for slot, rollout in acting:
            action = validate_action(rollout.queue.popleft())
            steps[slot] = Step(slot, action, render=not rollout.queue)
        return steps
