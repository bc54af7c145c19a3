"""Evaluator pieces that need no simulator: task parsing, config checks, run identity, actions."""

import json

import numpy as np
import pytest

from envs.evaluator import EvalConfig, _check_run_identity
from envs.protocol import parse_task_ids
from envs.policies import ChunkedPolicy, PolicyOutputError, check_action, validate_policy_spec
from lara.config_cli import expand_bare_flags, parse_config
from lara.errors import LaraUserError


def test_parse_task_ids():
    assert parse_task_ids("all", 3) == [0, 1, 2]
    assert parse_task_ids("3,0,3", 10) == [0, 3]
    for bad in ("10", "x", "-1", ""):
        with pytest.raises(LaraUserError):
            parse_task_ids(bad, 10)


def test_config_validation_and_flags():
    cfg = parse_config(EvalConfig, ["--suite", "libero_goal", "--video", "--episodes", "3"])
    assert cfg.video is True and cfg.episodes == 3 and cfg.suite == "libero_goal"
    assert expand_bare_flags(EvalConfig, ["--video", "--episodes", "2"]) == ["--video", "true", "--episodes", "2"]
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
    (tmp_path / "run.json").write_text(json.dumps({"identity": EvalConfig(policy="scripted", out=tmp_path).identity()}))
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


class _CountingChunker:
    def __init__(self):
        self.calls = 0

    def predict_action_chunk(self, obs):
        self.calls += 1
        chunk = np.zeros((8, 7), dtype=np.float32)
        chunk[:, 0] = np.arange(8) + 100 * self.calls  # (H, A): step index tagged with the call
        return chunk


def test_chunked_policy_executes_first_k_then_replans():
    model = _CountingChunker()
    policy = ChunkedPolicy(model, execute_steps=3)
    first = [policy.select_action(None)[0] for _ in range(4)]
    assert first == [100, 101, 102, 200]  # 3 from chunk 1, then a re-plan
    assert model.calls == 2 and len(policy.chunk_latency_ms) == 2
    policy.reset()
    assert policy.select_action(None)[0] == 300  # reset drops the queue
    with pytest.raises(LaraUserError, match="execute_steps"):
        ChunkedPolicy(_CountingChunker(), execute_steps=9).select_action(None)
