"""The batched driver (envs.driver) records the same episodes as the per-worker path: same success,
same steps, the same actions (their SHA-1), with 1 or 2 simulator workers, for the scripted expert
(acting inside its simulator server) and a tiny checkpoint (one copy in the driver, batches of
episodes of different tasks).
A server SIGKILLed mid-episode: tests/envs/test_eval_worker_death_sim.py."""

from __future__ import annotations

import json

import pytest

from envs.evaluator import EvalConfig, evaluate
from lara.scripts.eval_policies import policy_builder

pytestmark = pytest.mark.sim

COMPARED = ("task", "episode", "success", "steps", "error")
RUNS = {  # name -> how the episodes run
    "per_worker": dict(workers=1, policy_in="workers"),
    "driver_1": dict(workers=1, policy_in="driver"),
    "driver_2": dict(workers=2, policy_in="driver"),
}


def _records(out) -> list[dict]:
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    out = [{**{k: r[k] for k in COMPARED}, "actions": r["extra"]["actions_sha1"]} for r in rows]
    return sorted(out, key=lambda r: (r["task"], r["episode"]))


@pytest.mark.slow  # ~1-2 min: three evaluations of two short episodes each, per policy
@pytest.mark.parametrize("kind", ["scripted", "checkpoint"])
def test_episodes_do_not_depend_on_the_batch_nor_the_number_of_workers(kind, tiny_checkpoint, tmp_path):
    spec = str(tiny_checkpoint) if kind == "checkpoint" else "scripted"
    common = dict(policy=spec, suite="libero_object", tasks="0,1", episodes=1, max_steps=12, camera_size=64)
    records = {}
    for name, how in RUNS.items():
        cfg = EvalConfig(**common, **how, out=tmp_path / name)
        evaluate(cfg, policy_builder=policy_builder(cfg))
        records[name] = _records(cfg.out)
        timed = [json.loads(line) for line in (cfg.out / "episodes.jsonl").read_text().splitlines()]
        assert all(r["sim_seconds"] > 0 and r["policy_seconds"] > 0 for r in timed), name
    assert records["driver_1"] == records["per_worker"]
    assert records["driver_2"] == records["per_worker"]
    first = records["per_worker"]
    assert [r["steps"] for r in first] == [12, 12] and all(r["error"] is None for r in first)
    assert first[0]["actions"] != first[1]["actions"]  # the digest sees the actions
