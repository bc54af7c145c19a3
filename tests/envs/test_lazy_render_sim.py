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
