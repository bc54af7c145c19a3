"""Actions run per chunk: the checkpoint's `inference.n_action_steps` unless `--execute_steps` says
otherwise, in `lara eval` (lara.scripts.eval_policies) and `lara rl` (its workers and its driver) alike
(issue 28: both used the whole chunk, so the checkpoint's setting never took effect)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def checkpoint_k3(tmp_path_factory, tiny_policy):
    """A tiny checkpoint (chunks of 8) saved with inference.n_action_steps 3."""
    path = tmp_path_factory.mktemp("k3") / "policy"
    policy = tiny_policy("--inference.n_action_steps=3")
    assert policy.cfg.chunk_size == 8
    policy.save_pretrained(path)
    return path


def plans_for(policy, actions: int) -> int:
    """How many chunks the policy plans to act `actions` times (a stub planner: no model run)."""
    calls = []

    def plan(obs):
        calls.append(obs)
        return np.zeros((policy.cfg.chunk_size, policy.cfg.action_dim), np.float32)

    policy.reset()
    for _ in range(actions):
        policy.select_action(None, plan)
    return len(calls)


@pytest.mark.parametrize("execute_steps,plans", [(None, 3), (2, 4), (8, 1)])
def test_eval_policy_runs_the_checkpoints_steps_unless_overridden(checkpoint_k3, execute_steps, plans):
    from envs.evaluator import EvalConfig
    from lara.scripts.eval_policies import policy_builder  # what `lara eval` passes evaluate()

    policy = policy_builder(EvalConfig(policy=str(checkpoint_k3), execute_steps=execute_steps))()
    assert plans_for(policy, 7) == plans  # 7 actions: k=3 -> 3 plans, k=2 -> 4, k=8 -> 1


@pytest.mark.parametrize("execute_steps,plans", [(None, 3), (2, 4)])
def test_rl_workers_run_the_checkpoints_steps_unless_overridden(
    checkpoint_k3, execute_steps, plans, monkeypatch
):
    from curriculum.rl.config import RLConfig
    from curriculum.rl.loop import rollout_pool
    from envs import libero_setup, rollouts

    monkeypatch.setattr(libero_setup, "configure", lambda: None)  # no simulator needed to load it
    settings = rollouts.RolloutSettings(
        policy_dir=str(checkpoint_k3), suite="libero_object", execute_steps=execute_steps
    )
    cfg = RLConfig(policy=str(checkpoint_k3), dataset="d", policy_in="workers")
    rollouts._init_worker(settings, policy_builder=rollout_pool(settings, cfg, None).policy_builder)
    try:
        assert plans_for(rollouts._W["policy"], 7) == plans
    finally:
        rollouts._W.clear()


@pytest.mark.parametrize("execute_steps,kept", [(None, 3), (2, 2)])
def test_rl_driver_runs_the_checkpoints_steps_unless_overridden(checkpoint_k3, execute_steps, kept):
    from curriculum.rl.config import RLConfig
    from curriculum.rl.loop import rollout_pool
    from envs.rollouts import RolloutSettings
    from lara.modeling_lara import LaraPolicy
    from lara.utils.errors import LaraUserError

    settings = RolloutSettings(
        policy_dir=str(checkpoint_k3), suite="libero_object", execute_steps=execute_steps
    )
    policy = LaraPolicy.from_pretrained(str(checkpoint_k3))
    cfg = RLConfig(policy=str(checkpoint_k3), dataset="d")  # --policy_in driver, the default
    driver = rollout_pool(settings, cfg, policy)
    assert driver.policy is policy and driver.execute_steps == kept  # the learner's own policy acts
    with pytest.raises(LaraUserError, match="execute_steps=9"):
        rollout_pool(RolloutSettings(str(checkpoint_k3), "libero_object", execute_steps=9), cfg, policy)
