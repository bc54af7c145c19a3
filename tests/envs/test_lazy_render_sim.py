"""Rendering only the frames someone looks at (`LiberoEnv.step(action, render=False)`, the wait steps)
changes no pixel of the frames that are rendered and no bit of the physics."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from envs.libero_env import LiberoEnv

pytestmark = pytest.mark.sim


def _rollout(env: LiberoEnv, actions: np.ndarray, render_every: int):
    first = env.reset(0)
    frames, states = {}, []
    for i, action in enumerate(actions):
        render = i % render_every == render_every - 1
        obs, _, _ = env.step(action, render=render)
        if render:
            frames[i] = obs.images
        else:
            assert obs.images == {}  # a skipped frame is absent, never a stale or blank image
        states.append(obs.sim_state)
    return first, frames, states


def test_skipped_frames_change_no_rendered_pixel_and_no_physics(monkeypatch):
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.5, 0.5, (17, 7))
    actions[:, 6] = np.where(np.arange(17) < 9, -1.0, 1.0)
    with LiberoEnv("libero_object", 0, camera_size=64) as env:
        lazy = _rollout(env, actions, render_every=8)
    with LiberoEnv("libero_object", 0, camera_size=64) as env:
        monkeypatch.setattr(LiberoEnv, "_cameras_off", lambda self: contextlib.nullcontext())
        full = _rollout(env, actions, render_every=1)  # every step and every wait step rendered
    for camera in ("agentview", "wrist"):
        np.testing.assert_array_equal(lazy[0].images[camera], full[0].images[camera])  # after the wait
        for i, images in lazy[1].items():
            np.testing.assert_array_equal(images[camera], full[1][i][camera])
    assert sorted(lazy[1]) == [7, 15]
    np.testing.assert_array_equal(np.stack(lazy[2]), np.stack(full[2]))


@pytest.mark.slow  # 33 s quiet (two envs, two resets each)
def test_fast_render_quality_drops_multisampling_only():
    """render_quality "fast": a context without multisampling (also after a reset builds a new
    simulator), the same physics, frames that differ from the standard ones only at some pixels."""
    rng = np.random.default_rng(1)
    actions = rng.uniform(-0.5, 0.5, (4, 7))
    runs = {}
    for quality in ("standard", "fast"):
        with LiberoEnv("libero_object", 0, camera_size=64, render_quality=quality) as env:
            env.reset(0)
            first = env.reset(1)  # a second reset: the setting survives a rebuilt simulator
            assert env.sim._render_context_offscreen.con.offSamples == (0 if quality == "fast" else 4)
            last = [env.step(a)[0] for a in actions][-1]
            runs[quality] = (first, last)
    standard, fast = runs["standard"], runs["fast"]
    np.testing.assert_array_equal(standard[1].sim_state, fast[1].sim_state)
    for camera in ("agentview", "wrist"):
        differs = np.mean(standard[0].images[camera] != fast[0].images[camera])
        assert 0.0 < differs < 0.5  # edges lose their anti-aliasing; the scene is the same
