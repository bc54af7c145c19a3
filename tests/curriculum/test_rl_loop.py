"""The `lara rl` loop without a simulator: a stand-in rollout pool samples real chunks from the
policy (stochastic flow sampler, seeded per rollout) and scores them with a made-up success rule.
Checks the log, checkpoints, and that a resumed run ends bit-identical to an uninterrupted one."""

import numpy as np
import pytest
import torch

from curriculum.rl.config import RLConfig
from curriculum.rl.layouts import Layout
from curriculum.rl.loop import train_rl
from lara.utils.errors import LaraUserError
from lara.utils.jsonl import read_jsonl


class FakePool:
    """Same contract as envs.rollouts.RolloutPool; 2 chunks per rollout, success = mean x-action > 0."""

    def __init__(self, settings, workers, make_obs):
        self.settings = settings
        self.make_obs = make_obs

    def __enter__(self):
        from lara.modeling_lara import LaraPolicy

        self.policy = LaraPolicy.from_pretrained(self.settings.policy_dir).eval()
        return self

    def __exit__(self, *exc):
        pass

    def run(self, specs, weights, version, on_result=None):
        from safetensors.torch import load_file

        from lara.flow_sampling import sample_flow_chunk

        self.policy.load_state_dict(load_file(weights), strict=False)
        out = []
        for spec in specs:
            g = torch.Generator().manual_seed(spec.seed)
            chunks, xs = [], []
            for k in range(2):
                o = self.make_obs(spec.task * 10 + k, size=64)
                obs = {
                    "images": {c: v[None] for c, v in o.images.items()},
                    "state": o.state[None],
                    "instruction": [o.instruction],
                }
                actions, sample = sample_flow_chunk(self.policy, obs, self.settings.noise_scale, None, g)
                xs.append(sample.actions[0, :, 0].mean())
                chunks.append(
                    {
                        "images": dict(o.images),
                        "state": o.state,
                        "instruction": o.instruction,
                        "path": sample.path[0].numpy(),
                        "log_prob": float(sample.log_prob[0]),
                    }
                )
            out.append(
                {
                    "group": spec.group,
                    "member": spec.member,
                    "task": spec.task,
                    "success": bool(sum(xs) > 0),
                    "steps": 16,
                    "seconds": 0.0,
                    "chunks": chunks,
                    "error": None,
                }
            )
        return out


LAYOUTS = [Layout(task=t, episode=t, state=np.zeros(3)) for t in range(3)]


@pytest.fixture()
def fake_pool(make_obs):
    """`train_rl`'s pool_factory: (settings, cfg, policy) -> a FakePool."""
    return lambda settings, cfg, policy: FakePool(settings, cfg.workers, make_obs)


def _cfg(tmp_path, ckpt, name, **kw):
    base = dict(
        policy=str(ckpt),
        dataset="unused",
        out=tmp_path / name,
        iterations=2,
        groups=2,
        group_size=3,
        lr=1e-3,
        noise_scale=0.3,
        kl_weight=0.05,
        minibatch_units=8,
        progress=False,
    )
    return RLConfig(**{**base, **kw})


def _expert_weights(run_dir):
    from safetensors.torch import load_file

    return load_file(str(run_dir / "final" / "state" / "trainable.safetensors"))


@pytest.mark.slow  # ~20 s of CPU: four iterations of real sampling, scoring and checkpoints
def test_rl_loop_logs_checkpoints_and_resumes_exactly(tmp_path, tiny_checkpoint, fake_pool):
    straight = train_rl(_cfg(tmp_path, tiny_checkpoint, "straight"), fake_pool, LAYOUTS)
    assert straight.iterations == 2 and (straight.final_dir / "model" / "config.json").is_file()
    records, dropped = read_jsonl(tmp_path / "straight" / "iterations.jsonl")
    assert dropped == 0 and [r["iteration"] for r in records] == [1, 2]
    r = records[0]
    assert r["rollouts"] == 6 and r["chunks"] == 12 and 0 <= r["successes"] <= 6
    assert 0.0 <= r["informative_fraction"] <= 1.0 and r["noise_scale"] == 0.3 and r["wall_s"] > 0
    if r["updated"]:
        assert r["rollout_logp_gap"] < 1e-3 and r["kl"] >= 0
    start = _expert_weights(tmp_path / "straight")
    first = {k: v for k, v in start.items()}
    assert any(r["updated"] for r in records), (
        "no iteration had an informative group; the test proves nothing"
    )

    # the same run stopped after iteration 1, then resumed: identical weights and log
    cut = _cfg(tmp_path, tiny_checkpoint, "cut", iterations=1)
    train_rl(cut, fake_pool, LAYOUTS)
    with pytest.raises(LaraUserError, match="resume"):
        train_rl(_cfg(tmp_path, tiny_checkpoint, "cut"), fake_pool, LAYOUTS)
    with pytest.raises(LaraUserError, match="different config"):
        train_rl(_cfg(tmp_path, tiny_checkpoint, "cut", resume=True, lr=2e-3), fake_pool, LAYOUTS)
    # a run is continued to more iterations with --resume (the LR is constant: same weights path)
    full = _cfg(tmp_path, tiny_checkpoint, "cut", resume=True)
    run = tmp_path / "cut"
    resumed = train_rl(full, fake_pool, LAYOUTS)
    assert resumed.iterations == 2
    after = _expert_weights(run)
    assert after.keys() == first.keys()
    assert all(torch.equal(after[k], first[k]) for k in first)
    again, _ = read_jsonl(run / "iterations.jsonl")
    keys = ("successes", "informative_fraction", "kl", "loss")
    assert [[x.get(k) for k in keys] for x in again] == [[x.get(k) for k in keys] for x in records]


@pytest.mark.slow
def test_time_budget_stops_after_the_iteration_that_spends_it(tmp_path, tiny_checkpoint, fake_pool):
    cfg = _cfg(tmp_path, tiny_checkpoint, "budget", iterations=5, max_minutes=1e-6)
    result = train_rl(cfg, fake_pool, LAYOUTS)
    assert result.iterations == 1 and (result.final_dir / "trainer_state.json").is_file()
    again = train_rl(
        _cfg(tmp_path, tiny_checkpoint, "budget", iterations=5, max_minutes=1e-6, resume=True),
        fake_pool,
        LAYOUTS,
    )
    assert again.iterations == 1  # the budget is counted over resumes: nothing left to run
