"""The scripted expert solves pick-and-place tasks in LIBERO and refuses what it cannot do.

Runs without rendering (about 100 steps/s here), from fixed shipped init states.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.sim


def _rollout(suite: str, task_id: int, episode: int) -> tuple[bool, list[str]]:
    from envs.libero_env import LiberoEnv
    from envs.scripted_expert import PHASES, ScriptedExpert

    env = LiberoEnv(suite, task_id, render=False)
    try:
        expert = ScriptedExpert(env)
        obs = env.reset(episode)
        expert.reset()
        assert obs.images == {} and obs.state.shape == (8,) and obs.sim_state is not None
        phases: list[str] = []
        for _ in range(env.max_steps):
            action = expert.select_action(obs)
            assert action.shape == (7,) and np.all(np.abs(action) <= 1.0)
            assert expert.phase in PHASES
            if not phases or phases[-1] != expert.phase:
                phases.append(expert.phase)
            obs, done, _ = env.step(action)
            if done:
                assert env.check_success()
                return True, phases
        return False, phases
    finally:
        env.close()


def test_expert_solves_a_libero_object_task() -> None:
    success, phases = _rollout("libero_object", 0, 0)  # alphabet soup -> basket
    assert success, phases
    assert phases[:4] == ["approach", "descend", "grasp", "lift"]


def test_expert_solves_a_libero_spatial_task() -> None:
    success, phases = _rollout("libero_spatial", 0, 0)  # black bowl (rim grasp) -> plate
    assert success, phases
    assert "release" in phases or "lower" in phases


def test_expert_refuses_unsupported_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    import envs.scripted_expert as scripted
    from envs.bddl_goals import Open
    from envs.expert_skills.enclosure import enclosure_of
    from envs.libero_env import LiberoEnv
    from envs.scene_geometry import SceneGeometry
    from lara.utils.errors import LaraUserError

    env = LiberoEnv("libero_10", 9, render=False)  # the mug in the microwave, then close its door
    try:
        env.reset(0)
        box = enclosure_of(env, SceneGeometry(env), "microwave_1_heating_region")
        # read off the model: the opening faces the robot's left (-y), the cavity 14.4 cm tall
        assert box is not None and np.allclose(box.inward, [0.0, 1.0, 0.0], atol=1e-6)
        assert (
            abs(box.front - 0.2525) < 0.002
            and abs(box.floor - 0.944) < 1e-6
            and abs(box.ceiling - 1.088) < 1e-6
        )
        assert box.walls[0] < box.walls[1] and box.back > box.front + 0.15
        assert enclosure_of(env, SceneGeometry(env), "kitchen_table_microwave_init_region") is None  # no door
        # the expert closes hinged doors; opening one it refuses, by name, before the episode
        monkeypatch.setattr(scripted, "goal_from_env", lambda env: [Open("microwave_1")])
        with pytest.raises(
            scripted.UnsupportedTaskError, match="cannot open 'microwave_1'.*hinged doors"
        ) as info:
            scripted.ScriptedExpert(env)
        assert isinstance(info.value, LaraUserError)
    finally:
        env.close()


@pytest.mark.slow
def test_expert_puts_the_mug_in_the_microwave_and_shuts_the_door() -> None:
    # libero_10 task 9: the mug, held by its handle, goes in and is pushed past the door; the door pushed shut
    success, phases = _rollout("libero_10", 9, 0)
    assert success, phases
    assert phases[:5] == ["approach", "descend", "grasp", "lift", "carry"] and phases.count("push") == 2


@pytest.mark.slow
def test_expert_opens_a_drawer() -> None:
    success, phases = _rollout("libero_goal", 0, 0)  # open the middle drawer of the cabinet
    assert success, phases
    assert phases[:3] == ["approach", "grasp", "pull"]


@pytest.mark.slow
def test_expert_turns_a_knob() -> None:
    success, phases = _rollout("libero_goal", 7, 0)  # turn on the stove
    assert success, phases
    assert phases[:4] == ["approach", "descend", "grasp", "turn"]


@pytest.mark.slow
def test_expert_puts_both_moka_pots_on_the_stove() -> None:
    # libero_10 task 8: the pots grasped at their lid knobs, set side by side; the stove starts on
    success, phases = _rollout("libero_10", 8, 0)
    assert success, phases
    assert phases[0] == "approach" and "turn" not in phases and phases.count("lift") == 2


@pytest.mark.slow
def test_expert_closes_a_drawer_over_a_bowl() -> None:
    # libero_10 task 3: the bottom drawer starts open; the bowl goes in, then the drawer is pushed shut
    success, phases = _rollout("libero_10", 3, 0)
    assert success, phases
    assert "pull" not in phases and phases[-2:] == ["approach", "push"]


def test_env_rejects_bad_inputs() -> None:
    from envs.libero_env import LiberoEnv
    from lara.utils.errors import LaraUserError

    with pytest.raises(LaraUserError, match="libero_spatial"):
        LiberoEnv("libero_100", 0, render=False)
    with pytest.raises(LaraUserError, match="0..9"):
        LiberoEnv("libero_object", 10, render=False)
    env = LiberoEnv("libero_object", 1, render=False)
    try:
        with pytest.raises(LaraUserError, match=f"0..{env.num_init_states - 1}"):
            env.reset(env.num_init_states)
        env.reset(0)
        with pytest.raises(ValueError):
            env.step(np.zeros(6))
        with pytest.raises(ValueError):
            env.step(np.full(7, np.nan))
    finally:
        env.close()
