"""`envs.rollout_driver.RolloutDriver` without LIBERO (a fake env behind the real simulator server,
in process, and the tiny policy's real sampler): rollouts start from their layout, their results
do not depend on the batch, and a server that dies costs a re-run of its rollouts only."""

from __future__ import annotations

import numpy as np
import pytest
from test_driver_units import DiesOnce, FakeEnv

from envs import libero_setup, sim_server
from envs.rollout_driver import RolloutDriver
from envs.rollouts import RolloutSettings, RolloutSpec


class LayoutEnv(FakeEnv):
    """FakeEnv whose state can be set (an RL layout) and whose images are big enough to look at."""

    def set_sim_state(self, state):
        self.x = np.asarray(state, np.float32).copy()
        return self._obs(True)

    def _obs(self, render):
        obs = super()._obs(render)
        if render:  # the frame shows the state, so chunks planned from different states differ
            value = np.uint8(np.clip(128 + 100 * self.x[0], 0, 255))
            obs.images.update({cam: np.full((16, 16, 3), value, np.uint8) for cam in obs.images})
        return obs


@pytest.fixture
def fake_sim(monkeypatch):
    monkeypatch.setattr(libero_setup, "configure", lambda: None)
    monkeypatch.setattr(sim_server, "build_env", LayoutEnv)


def _run(checkpoint, slots, wrap=None):
    from lara.modeling_lara import LaraPolicy

    policy = LaraPolicy.from_pretrained(str(checkpoint)).eval()
    settings = RolloutSettings(str(checkpoint), "libero_object", noise_scale=0.3, camera_size=16)
    specs = [
        RolloutSpec(t, np.full(8, -0.2 * m, np.float32), 100 + 10 * t + m, t, m)
        for t in (0, 1)
        for m in (0, 1)
    ]
    with RolloutDriver(settings, 1, policy, slots_per_worker=slots) as driver:
        if wrap is not None:
            driver._pool = wrap(driver._pool)
        return driver.run(specs, None, 0)


@pytest.mark.slow  # ~40 s under load; tests/envs/test_rl_driver_sim.py checks the same in LIBERO
def test_rollouts_start_from_their_layout_whatever_the_batch(fake_sim, tiny_checkpoint):
    alone, batched = _run(tiny_checkpoint, 1), _run(tiny_checkpoint, 4)
    assert [(r["group"], r["member"]) for r in alone] == [(0, 0), (0, 1), (1, 0), (1, 1)]  # spec order
    for a, b in zip(alone, batched, strict=True):
        assert a["error"] is None and (a["steps"], a["success"]) == (b["steps"], b["success"])
        assert len(a["chunks"]) == len(b["chunks"]) >= 1
        for x, y in zip(a["chunks"], b["chunks"], strict=True):
            np.testing.assert_allclose(x["path"], y["path"], atol=1e-5)
    first_states = [r["chunks"][0]["state"][0] for r in alone]
    np.testing.assert_allclose(first_states, [0.0, -0.2, 0.0, -0.2], atol=1e-6)  # each from its layout
    assert not np.allclose(alone[0]["chunks"][0]["path"], alone[1]["chunks"][0]["path"])  # own seeds


def test_a_dead_server_costs_a_rerun_of_its_rollouts_only(fake_sim, tiny_checkpoint):
    expected = _run(tiny_checkpoint, 2)
    got = _run(tiny_checkpoint, 2, wrap=DiesOnce)
    for a, b in zip(expected, got, strict=True):
        assert (a["group"], a["member"], a["steps"], a["success"]) == (
            b["group"],
            b["member"],
            b["steps"],
            b["success"],
        )
        assert len(a["chunks"]) == len(b["chunks"])  # the re-run starts afresh: no chunk recorded twice
        np.testing.assert_allclose(a["chunks"][0]["path"], b["chunks"][0]["path"], atol=1e-5)
