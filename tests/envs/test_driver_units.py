"""`envs.driver.drive` without LIBERO (a fake env behind the real simulator server, in process):
an episode's records and actions do not depend on how many episodes share a batch, each
`select_actions` call plans once for the batch, and a server that dies costs a re-run of its
episodes only."""

from __future__ import annotations

import numpy as np
import pytest

from envs import libero_setup, sim_server
from envs.driver import drive
from envs.episodes import EpisodeUnit
from envs.evaluator import EvalConfig
from envs.protocol import Observation
from envs.workers import Reply, WorkerPool


class FakeEnv:
    """A point that moves by the actions; success when its x passes 1."""

    task_name, max_steps = "fake", 6

    def __init__(self, cfg, task):
        self.task = task

    def reset(self, episode):
        self.x = np.full(8, 0.1 * episode + self.task, np.float32)
        return self._obs(True)

    def step(self, action, render=True):
        self.x[:7] += action
        return self._obs(render), bool(self.x[0] > 1.0), {}

    def _obs(self, render):
        images = {"agentview": np.zeros((4, 4, 3), np.uint8), "wrist": np.zeros((4, 4, 3), np.uint8)}
        return Observation(images if render else {}, self.x.copy(), f"task {self.task}", None)

    def close(self):
        pass


class Episode:
    def __init__(self, seed):
        self.rng, self.queue = np.random.default_rng(seed), []


class FakeBatchedPolicy:
    """Plans 2 actions per chunk from the episode's own generator and the observed state."""

    def __init__(self):
        self.batches = []

    def new_episode(self, seed):
        return Episode(seed)

    def needs_observation(self, episode):
        return not episode.queue

    def select_actions(self, observations, episodes):
        planned = [i for i, e in enumerate(episodes) if not e.queue]
        self.batches.append(len(planned))
        for i in planned:
            assert observations[i].images, "a planning step got an unrendered frame"
            base = 0.05 * observations[i].state[:7]
            episodes[i].queue = [base + 0.1 * episodes[i].rng.random(7) for _ in range(2)]
        return [e.queue.pop(0).astype(np.float32) for e in episodes]


@pytest.fixture
def fake_sim(monkeypatch):
    monkeypatch.setattr(libero_setup, "configure", lambda: None)
    monkeypatch.setattr(sim_server, "build_env", FakeEnv)


def _drive(cfg, slots, pool_wrapper=None):
    policy, records = FakeBatchedPolicy(), []
    units = [EpisodeUnit(t, e) for t in range(2) for e in range(3)]
    with WorkerPool(sim_server.serve, 1, sim_server.init_server, (cfg,), sim_server.close_server) as pool:
        drive(cfg, units, pool_wrapper(pool) if pool_wrapper else pool, policy, records.append, slots)
    keep = ("task", "episode", "success", "steps", "error", "task_name")
    rows = sorted(({k: r[k] for k in keep} | {"sha": r["extra"]["actions_sha1"]} for r in records), key=str)
    return rows, policy, records


def test_records_do_not_depend_on_the_batch(fake_sim, tmp_path):
    cfg = EvalConfig(policy="noop", out=tmp_path)
    alone, policy_1, _ = _drive(cfg, slots=1)
    batched, policy_4, records = _drive(cfg, slots=4)
    assert alone == batched and len(alone) == 6
    assert max(policy_1.batches) == 1 and max(policy_4.batches) == 4  # one plan call per batch
    assert {r["steps"] for r in alone} != {6}  # some episodes succeed before the limit
    assert len({r["sha"] for r in alone}) == 6
    assert all(r["policy_seconds"] >= 0 and r["sim_seconds"] >= 0 for r in records)


class DiesOnce:
    """The pool, except that the first job sent to worker 0 comes back as its worker's death."""

    def __init__(self, pool):
        self.pool, self.workers, self.killed = pool, pool.workers, False

    def __getattr__(self, name):
        return getattr(self.pool, name)

    def submit(self, worker, job):
        if not self.killed:
            self.killed = True
            self.pool._inline_replies.append(Reply(worker, died="SIGKILL (test)"))
            sim_server._SERVER["slots"].clear()  # a fresh server holds no env
            return
        self.pool.submit(worker, job)


def test_a_dead_server_costs_a_rerun_of_its_episodes_only(fake_sim, tmp_path):
    cfg = EvalConfig(policy="noop", out=tmp_path)
    expected, _, _ = _drive(cfg, slots=2)
    rows, _, records = _drive(cfg, slots=2, pool_wrapper=DiesOnce)
    assert rows == expected  # every episode once, the same as without the death
    assert sorted((r["task"], r["episode"]) for r in records) == [(t, e) for t in range(2) for e in range(3)]
