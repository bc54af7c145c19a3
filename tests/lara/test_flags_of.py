"""`flags_of`: a typed config shown as the flags a user would type; parsing them back on the same
preset gives the same config (how the pipeline and the benchmarks print the commands they ran)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from envs.evaluator import EvalConfig
from lara.utils.config_parsing import flags_of, parse_config

EVAL_PRESET = Path(__file__).resolve().parents[2] / "configs" / "eval" / "libero_object.yaml"
PRESET = ["--config_path", str(EVAL_PRESET)]


def test_flags_round_trip_through_the_parser():
    base = parse_config(EvalConfig, PRESET)
    config = replace(base, policy="runs/x/final", tasks="0,3", episodes=3, video=True, render=None)
    flags = flags_of(config, base)
    assert flags[:2] == ["--policy", "runs/x/final"] and "--suite" not in flags  # unchanged: not shown
    assert parse_config(EvalConfig, [*PRESET, *flags]) == config
    assert flags_of(base, base) == []


def test_nested_fields_and_null():
    from curriculum.presets import load_train_config, train_preset

    base = train_preset("tiny", 2)
    config = replace(base, steps=7, init_from=None, from_scratch=True, data=replace(base.data, root="d"))
    flags = flags_of(config, base)
    assert "--data.root" in flags and flags[flags.index("--init_from") + 1] == "null"
    assert load_train_config([], flags, preset="tiny", stage=2) == config
