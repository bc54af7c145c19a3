"""Layouts: decoding from MuJoCo states, the 1 cm check against the evaluation init states, seeded
sampling with LIBERO's placement sampler (the `sim` tests share one env without rendering)."""

from __future__ import annotations

import numpy as np
import pytest

from envs.layouts import LayoutSpec, check_layout, layout_seed
from lara.utils.errors import LaraUserError


def test_check_layout_refuses_near_duplicates_and_accepts_far_layouts():
    refs = np.array([[[0.0, 0.0], [0.1, 0.1]], [[0.05, 0.0], [0.2, 0.1]]])  # (N=2, O=2, 2)
    near = refs[1] + 0.004  # every object 5.7 mm from its place in reference 1
    check = check_layout(near, refs, 0.01)
    assert check.too_close and check.nearest_index == 1 and check.distance == pytest.approx(0.004 * 2**0.5)
    one_moved = refs[1].copy()
    one_moved[0, 1] += 0.03  # one object 3 cm away is enough: not *all* objects are within 1 cm
    assert not check_layout(one_moved, refs, 0.01).too_close
    with pytest.raises(LaraUserError, match="reference layouts"):
        check_layout(near, refs[:, :1], 0.01)


def test_layout_spec_reads_free_joint_xy_from_a_flat_state():
    spec = LayoutSpec(names=("cup", "bowl"), qpos_addr=(2, 9), nq=16)
    state = np.zeros(1 + 16 + 15)  # [time, qpos (16), qvel (15)]
    state[1 + 2 : 1 + 5] = [0.1, -0.2, 0.9]
    state[1 + 9 : 1 + 12] = [0.3, 0.4, 0.9]
    np.testing.assert_allclose(spec.positions(state), [[0.1, -0.2], [0.3, 0.4]])
    with pytest.raises(LaraUserError, match="flattened MuJoCo state"):
        spec.positions(state[:10])


def test_layout_seed_is_stable_and_in_numpy_range():
    assert layout_seed(7, "libero_object", 0, 3, 0, 0) == layout_seed(7, "libero_object", 0, 3, 0, 0)
    seeds = {layout_seed(7, "libero_object", 0, k, 0, 0) for k in range(50)}
    assert len(seeds) == 50 and all(0 <= s < 2**32 for s in seeds)


@pytest.fixture(scope="module")
def env():
    from envs import libero_setup

    libero_setup.configure()
    from envs.libero_env import LiberoEnv

    env = LiberoEnv("libero_object", 0, render=False)
    yield env
    env.close()


def _xy(env) -> np.ndarray:
    return LayoutSpec.from_env(env).positions(env.get_sim_state())  # (O, 2)


@pytest.mark.sim
def test_shipped_states_decode_and_near_or_far_edits(env):
    from envs.layouts import check_env_layout, reference_layouts

    refs = reference_layouts(env)
    assert refs.shape == (env.num_init_states, len(env.raw_env.objects_dict), 2)
    env.reset(3)  # shipped state 3 after the wait steps: objects drop in z, barely move in x/y
    check = check_env_layout(env)
    assert check.nearest_index == 3 and check.distance < 0.002 and check.too_close

    spec = LayoutSpec.from_env(env)
    near = env.init_states[3].copy()
    for addr in spec.qpos_addr:  # every object 4 mm further in x and y: a hand-made near-duplicate
        near[1 + addr : 1 + addr + 2] += 0.004
    env.set_sim_state(near)
    check = check_env_layout(env)
    assert check.too_close and check.nearest_index == 3

    far = env.init_states[3].copy()
    far[1 + spec.qpos_addr[0] + 1] += 0.05  # the first object 5 cm away in y
    env.set_sim_state(far)
    check = check_env_layout(env)
    assert not check.too_close and check.distance > 0.04


@pytest.mark.sim
def test_sampled_layouts_are_reproducible_and_far_from_evaluation_states(env):
    from envs.layouts import check_env_layout

    env.reset_sampled(11, "center")
    first = _xy(env)
    env.reset_sampled(12, "center")
    other = _xy(env)
    env.reset_sampled(11, "center")  # same seed after another draw: the same layout
    np.testing.assert_allclose(_xy(env), first, atol=1e-9)
    assert np.abs(other - first).max() > 0.005
    assert not check_env_layout(env).too_close  # center fit: measured 0/100 draws within 1 cm

    env.reset_sampled(11, "footprint")  # LIBERO's default fit: libero_object's objects have <= 1.5 cm of play
    assert check_env_layout(env).too_close
    with pytest.raises(LaraUserError, match="region_fit"):
        env.reset_sampled(11, "anywhere")


@pytest.mark.sim
def test_collect_start_accepts_redraws_and_gives_up(env):
    from data_pipeline.collect_worker import Job, LayoutDrawError, _start

    job = Job(
        "libero_object", 0, 4, 64, 0.0, 2, 1, None, 7, "/nonexistent", init="sampled", max_layout_draws=2
    )
    _, layout = _start(job, 0, env)
    assert layout["resampled"] == 0 and layout["distance_m"] > 0.01 and not layout["too_close"]
    assert layout["layout_seed"] == layout_seed(7, "libero_object", 0, 4, 0, 0)
    # a threshold just above draw 0's distance (1.7 cm, rounded to 0.01 mm) refuses it: a later draw is taken
    redraw = Job(
        "libero_object",
        0,
        4,
        64,
        0.0,
        2,
        1,
        None,
        7,
        "/nonexistent",
        init="sampled",
        min_layout_distance=layout["distance_m"] + 1e-5,
        max_layout_draws=4,
    )
    _, again = _start(redraw, 0, env)
    assert again["resampled"] >= 1 and again["distance_m"] > layout["distance_m"]
    assert again["layout_seed"] == layout_seed(7, "libero_object", 0, 4, 0, again["resampled"])
    strict = Job(
        "libero_object",
        0,
        4,
        64,
        0.0,
        2,
        1,
        None,
        7,
        "/nonexistent",
        init="sampled",
        min_layout_distance=0.1,
        max_layout_draws=2,
    )
    with pytest.raises(LayoutDrawError, match="2 sampled layouts"):
        _start(strict, 0, env)
