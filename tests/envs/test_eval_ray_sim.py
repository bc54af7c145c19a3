"""`lara eval --backend ray` on a local Ray instance writes the same episode records as the local
worker processes (same seeds, same episodes, same outcomes and step counts), with the actors running
whole episodes or serving the driver's steps."""

from __future__ import annotations

import json

import pytest

from envs.evaluator import EvalConfig, evaluate

pytestmark = pytest.mark.sim
pytest.importorskip("ray")

COMPARED = ("suite", "task", "episode", "init_state_index", "success", "steps", "error")


def _records(cfg: EvalConfig) -> list[dict]:
    lines = (cfg.out / "episodes.jsonl").read_text().splitlines()
    return sorted(({k: json.loads(line)[k] for k in COMPARED} for line in lines), key=lambda r: r["episode"])


@pytest.mark.slow  # ~60 s quiet (a local Ray, three evaluations); the contract: test_ray_workers.py
def test_ray_backend_records_equal_the_local_ones(tmp_path):
    common = dict(policy="scripted", suite="libero_object", tasks="0", episodes=2, workers=2, max_steps=40)
    local = EvalConfig(**common, out=tmp_path / "local")
    on_ray = EvalConfig(**common, out=tmp_path / "ray", backend="ray")
    servers = EvalConfig(**common, out=tmp_path / "servers", backend="ray", policy_in="driver")
    evaluate(local)
    evaluate(on_ray)
    evaluate(servers)  # the actors as simulator servers stepped by the driver (envs.driver)
    assert _records(on_ray) == _records(local)
    assert _records(servers) == _records(local)
    assert len(_records(local)) == 2 and all(r["steps"] > 0 and r["error"] is None for r in _records(local))
    assert (
        json.loads((on_ray.out / "run.json").read_text())["identity"]
        == json.loads((local.out / "run.json").read_text())["identity"]
    )  # the backend is not part of what a result means


def test_backend_flags_are_checked():
    from lara.utils.errors import LaraUserError

    with pytest.raises(LaraUserError, match="choose one of local, ray"):
        EvalConfig(backend="slurm")
    with pytest.raises(LaraUserError, match="add --backend ray"):
        EvalConfig(ray_address="auto")
    from data_pipeline.collect import CollectConfig

    for config in (EvalConfig, CollectConfig):
        with pytest.raises(LaraUserError, match="choose one of standard, fast"):
            config(render_quality="ultra")
    assert "render_quality" in EvalConfig().identity()  # it changes the pixels a policy sees
