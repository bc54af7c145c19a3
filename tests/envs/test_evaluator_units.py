"""Evaluator pieces that need no simulator: task parsing, config checks, run identity, actions."""

import json

import numpy as np
import pytest

from envs.evaluator import EvalConfig, _check_run_identity
from envs.policies import PolicyOutputError, check_action, validate_policy_spec
from envs.protocol import parse_task_ids
from lara.utils.config_parsing import parse_config
from lara.utils.errors import LaraUserError


def test_parse_task_ids():
    assert parse_task_ids("all", 3) == [0, 1, 2]
    assert parse_task_ids("3,0,3", 10) == [0, 3]
    for bad in ("10", "x", "-1", ""):
        with pytest.raises(LaraUserError):
            parse_task_ids(bad, 10)


def test_config_validation_and_flags():
    cfg = parse_config(EvalConfig, ["--suite", "libero_goal", "--video", "--episodes", "3"])
    assert cfg.video is True and cfg.episodes == 3 and cfg.suite == "libero_goal"
    with pytest.raises(LaraUserError, match="unknown LIBERO suite"):
        parse_config(EvalConfig, ["--suite", "libero_nope"])
    with pytest.raises(LaraUserError, match="unrecognized"):
        parse_config(EvalConfig, ["--bogus", "1"])
    with pytest.raises(LaraUserError, match="episodes"):
        parse_config(EvalConfig, ["--episodes", "0"])


def test_policy_spec_validation(tmp_path):
    validate_policy_spec("noop")
    with pytest.raises(LaraUserError, match="neither"):
        validate_policy_spec(str(tmp_path / "missing"))
    with pytest.raises(LaraUserError, match="not a LaRA checkpoint"):
        validate_policy_spec(str(tmp_path))


def test_resume_refuses_a_different_run(tmp_path):
    cfg = EvalConfig(policy="noop", out=tmp_path)
    (tmp_path / "run.json").write_text(
        json.dumps({"identity": EvalConfig(policy="scripted", out=tmp_path).identity()})
    )
    with pytest.raises(LaraUserError, match="different run"):
        _check_run_identity(cfg)
    (tmp_path / "run.json").write_text(json.dumps({"identity": cfg.identity()}))
    _check_run_identity(cfg)


def test_check_action_rejects_bad_shapes_and_nan():
    assert check_action([0, 0, 0, 0, 0, 0, -1]).shape == (7,)
    with pytest.raises(PolicyOutputError, match="shape"):
        check_action(np.zeros(6))
    with pytest.raises(PolicyOutputError, match="non-finite"):
        check_action([0, 0, np.nan, 0, 0, 0, 1])


def test_episode_time_is_split_into_simulator_rendering_and_policy(monkeypatch, tmp_path):
    """A fake env whose step renders once and a fake clock that ticks 1 s per reading: the split
    counts every env call, every render and every select_action exactly."""
    from envs import episode_worker
    from envs.episode_clock import EpisodeClock
    from envs.protocol import Observation
    from envs.report import time_split, write_report

    ticks = iter(range(10_000))
    monkeypatch.setattr(EpisodeClock, "now", staticmethod(lambda: float(next(ticks))))
    monkeypatch.setattr(EpisodeClock, "render_total", 0.0)

    class Sim:
        def render(self, *args, **kwargs):
            return None

    class Env:
        task_name, max_steps = "fake task", 3

        def __init__(self):
            self.sim = Sim()

        def _obs(self):
            return Observation({}, np.zeros(8, np.float32), "do it", None)

        def reset(self, episode):
            return self._obs()

        def step(self, action, render=True):
            self.sim.render()
            return self._obs(), False, {}

    class Policy:
        def reset(self):
            pass

        def select_action(self, obs):
            return np.zeros(7, np.float32)

    cfg = EvalConfig(out=tmp_path)
    monkeypatch.setattr(episode_worker, "_WORKER", {"cfg": cfg, "task": 0, "env": Env(), "policy": Policy()})
    rec = episode_worker.run_episode(episode_worker.EpisodeUnit(task=0, episode=0))
    assert rec["steps"] == 3 and rec["error"] is None
    # each timed span reads the clock twice (1 s); a step span holds its render span (1 s) and the
    # two extra ticks the render readings take: 3 s per step, 1 s of which is rendering
    assert rec["policy_seconds"] == 3.0
    assert rec["render_seconds"] == 3.0
    assert rec["sim_seconds"] == 1.0 + 3 * 3.0 - 3.0  # reset (1 s) + steps (3 x 3 s) - rendering
    assert rec["setup_seconds"] == 1.0  # the worker's env was ready: start and this reading
    assert (
        rec["sim_seconds"] + rec["render_seconds"] + rec["policy_seconds"] + rec["setup_seconds"]
        <= rec["seconds"]
    )
    split = time_split([rec, {**rec, "policy_seconds": None}])  # an old record without a split is left out
    assert split["episodes"] == 1 and split["policy"] == 3.0 and split["rendering"] == 3.0
    assert split["other"] == rec["seconds"] - 14.0
    info = {"policy": "fake", "suite": "libero_object", "seed": 7, "camera_size": 256}
    results = write_report(tmp_path, info, [rec])
    assert results["time_split"]["simulator"] == 7.0
    assert "bound by **simulator**" in (tmp_path / "report.md").read_text()
