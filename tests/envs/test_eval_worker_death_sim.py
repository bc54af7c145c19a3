"""`lara eval` with a simulator worker SIGKILLed mid-episode, on the per-worker path (whole episodes
in the workers) and the driver's (simulator servers stepped by envs.driver): that episode runs
again on a fresh worker, every episode is recorded exactly once, and the run ends normally."""

from __future__ import annotations

import json

import pytest
from workers_testing import KilledOnceNoop

from envs.evaluator import EvalConfig, evaluate

pytestmark = pytest.mark.sim


@pytest.mark.slow  # ~30 s each; the mechanism is tested in seconds by tests/envs/test_workers.py
@pytest.mark.parametrize("policy_in", ["workers", "driver"])
def test_a_worker_killed_mid_episode_costs_one_rerun(policy_in, tmp_path):
    cfg = EvalConfig(
        policy="noop",
        suite="libero_object",
        tasks="0",
        episodes=3,
        workers=2,
        max_steps=3,
        camera_size=64,
        policy_in=policy_in,
        out=tmp_path / "e",
    )
    results = evaluate(cfg, policy_builder=KilledOnceNoop(str(tmp_path)))
    assert (tmp_path / "killed").exists()  # a worker really died mid-episode
    records = [json.loads(line) for line in (cfg.out / "episodes.jsonl").read_text().splitlines()]
    assert sorted((r["task"], r["episode"]) for r in records) == [(0, 0), (0, 1), (0, 2)]
    assert all(r["error"] is None and r["steps"] == 3 for r in records)
    assert results["suites"][0]["episodes"] == 3
