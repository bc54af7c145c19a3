"""`lara rl`'s rollouts through the driver (envs.rollout_driver): one policy, batched over simulator
servers, samples the same rollouts as the per-worker path (envs.rollouts.RolloutPool), with one
server or two, and whatever the batch."""

import numpy as np
import pytest

pytestmark = [pytest.mark.sim, pytest.mark.slow]  # ~1.5 min quiet: three short rollout runs


@pytest.fixture(scope="module")
def layout():
    from envs import libero_setup
    from envs.libero_env import LiberoEnv

    libero_setup.configure()
    env = LiberoEnv("libero_object", 0, camera_size=64, render=False)
    env.reset(0)
    state = env.get_sim_state()  # (D,) the start every rollout shares
    env.close()
    return state


def test_driver_rollouts_equal_the_worker_rollouts(tmp_path, tiny_checkpoint, layout):
    from envs.rollout_driver import RolloutDriver
    from envs.rollouts import RolloutPool, RolloutSettings, RolloutSpec
    from lara.modeling_lara import LaraPolicy, LaraPolicyBuilder

    settings = RolloutSettings(str(tiny_checkpoint), "libero_object", max_steps=12, camera_size=64)
    specs = [RolloutSpec(0, layout, seed, 0, member) for member, seed in enumerate((11, 12, 13))]
    with RolloutPool(settings, 1, LaraPolicyBuilder(settings.policy_dir)) as pool:
        reference = pool.run(specs, None, 0)
    policy = LaraPolicy.from_pretrained(str(tiny_checkpoint)).eval()
    runs = {}
    for workers, slots in ((1, 3), (2, 1)):  # one batch of 3 on one server; batches of 2 and 1 on two
        finished = []
        with RolloutDriver(settings, workers, policy, slots_per_worker=slots) as driver:
            runs[workers] = driver.run(specs, None, 0, on_result=finished.append)
        assert len(finished) == len(specs)  # each rollout reported once, as it finished
    for results in runs.values():
        for ref, got in zip(reference, results, strict=True):
            assert got["error"] is None and (got["group"], got["member"]) == (ref["group"], ref["member"])
            assert (got["steps"], got["success"]) == (ref["steps"], ref["success"])
            assert len(got["chunks"]) == len(ref["chunks"]) == -(-12 // policy.cfg.inference.n_action_steps)
            for x, y in zip(got["chunks"], ref["chunks"], strict=True):
                np.testing.assert_allclose(x["path"], y["path"], atol=1e-5)
                assert x["log_prob"] == pytest.approx(y["log_prob"], abs=1e-3)
                assert x["images"].keys() == y["images"].keys()
                for camera in x["images"]:  # the chunk was planned from the same frame, up to the
                    # renderer: three envs in one process differed from one env in 5 of 12,288 values, by 1
                    diff = np.abs(x["images"][camera].astype(int) - y["images"][camera].astype(int))
                    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    paths = [np.asarray(r["chunks"][0]["path"]) for r in runs[1]]
    assert not np.allclose(paths[0], paths[1])  # three seeds, three samples
