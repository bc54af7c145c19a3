"""`--backend ray` on a local Ray instance: `lara eval` writes the same episode records as the local
worker processes (same seeds, same episodes, same outcomes and step counts), with the actors running
whole episodes or serving the driver's steps; `lara collect` writes the same demos and `lara rl`'s
rollout pool returns the same rollouts; every command's config checks the flags."""

from __future__ import annotations

import json

import numpy as np
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


@pytest.mark.slow  # ~2 min quiet: one scripted demo collected twice
def test_collect_on_ray_writes_the_same_demos(tmp_path):
    from data_pipeline.collect import CollectConfig, collect
    from data_pipeline.lerobot_io import read_lerobot_dataset

    common = dict(suite="libero_object", tasks="0", episodes_per_task=1, camera_size=64, max_attempts=2)
    local = collect(CollectConfig(**common, out=str(tmp_path / "local")))
    on_ray = collect(CollectConfig(**common, out=str(tmp_path / "ray"), backend="ray"))
    assert local.episodes == on_ray.episodes == 1
    (a,), (b,) = (list(read_lerobot_dataset(tmp_path / name)) for name in ("local", "ray"))
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.state, b.state)


@pytest.mark.slow  # ~1.5 min quiet: two rollouts of 8 steps, workers on each backend, the driver on Ray
def test_rl_rollouts_on_ray_equal_the_local_ones(tmp_path, tiny_checkpoint):
    from envs import libero_setup
    from envs.libero_env import LiberoEnv
    from envs.rollout_driver import RolloutDriver
    from envs.rollouts import RolloutPool, RolloutSettings, RolloutSpec
    from lara.modeling_lara import LaraPolicyBuilder

    libero_setup.configure()
    env = LiberoEnv("libero_object", 0, camera_size=64, render=False)
    env.reset(0)
    layout = env.get_sim_state()  # (D,) the start the rollouts share
    env.close()
    settings = RolloutSettings(str(tiny_checkpoint), "libero_object", max_steps=8, camera_size=64)
    specs = [RolloutSpec(0, layout, seed, 0, member) for member, seed in enumerate((11, 12))]
    results = {}
    for backend in ("local", "ray"):
        builder = LaraPolicyBuilder(settings.policy_dir, settings.execute_steps)
        with RolloutPool(settings, 1, builder, backend=backend) as pool:
            results[backend] = pool.run(specs, None, 0)
    # the default engine: the policy here, the simulators Ray actors (envs.rollout_driver)
    with RolloutDriver(settings, 1, builder(), backend="ray", slots_per_worker=2) as driver:
        results["ray driver"] = driver.run(specs, None, 0)
    for local, on_ray, driven in zip(results["local"], results["ray"], results["ray driver"], strict=True):
        assert local["error"] is None and local["steps"] == on_ray["steps"] == driven["steps"] == 8
        for x, y, z in zip(local["chunks"], on_ray["chunks"], driven["chunks"], strict=True):
            np.testing.assert_array_equal(np.asarray(x["path"]), np.asarray(y["path"]))
            np.testing.assert_allclose(np.asarray(x["path"]), np.asarray(z["path"]), atol=1e-5)


def test_backend_flags_are_checked():
    from curriculum.rl.config import RLConfig
    from data_pipeline.collect import CollectConfig
    from lara.utils.errors import LaraUserError

    required = {EvalConfig: {}, CollectConfig: {}, RLConfig: dict(policy="ckpt", dataset="data")}
    for config, fields in required.items():  # lara eval, lara collect, lara rl
        with pytest.raises(LaraUserError, match="choose one of local, ray"):
            config(**fields, backend="slurm")
        with pytest.raises(LaraUserError, match="add --backend ray"):
            config(**fields, ray_address="auto")

    for config in (EvalConfig, CollectConfig):
        with pytest.raises(LaraUserError, match="choose one of standard, fast"):
            config(render_quality="ultra")
    assert "render_quality" in EvalConfig().identity()  # it changes the pixels a policy sees
