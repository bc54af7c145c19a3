"""benchmarks/rl/rl_vs_sft.py --before_eval: a finished evaluation of the starting policy is reused
only when it is the same checkpoint and protocol settings."""

import json
from types import SimpleNamespace

import pytest

from benchmarks.rl.rl_vs_sft import reuse_evaluation
from lara.utils.errors import LaraUserError


def _evaluation(folder, policy, tasks=(0, 1), episodes=10):
    folder.mkdir(parents=True)
    run = {
        "policy": str(policy),
        "suite": "libero_object",
        "tasks": list(tasks),
        "episodes_per_task": episodes,
    }
    (folder / "run.json").write_text(json.dumps({**run, "max_steps": None}))
    (folder / "results.json").write_text(json.dumps({"suites": [{"successes": 4, "episodes": 20}]}))
    (folder / "episodes.jsonl").write_text("{}\n")
    return folder


def _args(policy, tasks="0,1", episodes=10):
    return SimpleNamespace(
        policy=str(policy), suite="libero_object", tasks=tasks, eval_episodes=episodes, eval_max_steps=None
    )


def test_the_same_policy_and_protocol_is_copied(tmp_path):
    policy = tmp_path / "stage3" / "final"
    source = _evaluation(tmp_path / "eval", policy)
    reuse_evaluation(source, tmp_path / "out" / "eval_before", _args(policy))
    copied = json.loads((tmp_path / "out" / "eval_before" / "results.json").read_text())
    assert copied["suites"][0]["successes"] == 4
    assert (tmp_path / "out" / "eval_before" / "episodes.jsonl").is_file()


@pytest.mark.parametrize(
    ("args_change", "named"),
    [
        ({"tasks": "all"}, "tasks"),
        ({"episodes": 50}, "episodes_per_task"),
        ({"other_policy": True}, "policy"),
    ],
)
def test_another_setting_is_refused(tmp_path, args_change, named):
    policy = tmp_path / "stage3" / "final"
    source = _evaluation(tmp_path / "eval", policy)
    asked = tmp_path / "elsewhere" if args_change.pop("other_policy", False) else policy
    with pytest.raises(LaraUserError, match=named):
        reuse_evaluation(source, tmp_path / "out" / "eval_before", _args(asked, **args_change))
    assert not (tmp_path / "out" / "eval_before").exists()


def test_an_unfinished_evaluation_is_refused(tmp_path):
    policy = tmp_path / "p"
    source = _evaluation(tmp_path / "eval", policy)
    (source / "results.json").unlink()
    with pytest.raises(LaraUserError, match="not a finished evaluation"):
        reuse_evaluation(source, tmp_path / "before", _args(policy))


def test_flags_take_both_spellings_and_the_rest_goes_to_lara_rl():
    from benchmarks.rl.rl_vs_sft import parse_args

    common = ["--policy", "p", "--dataset", "d"]
    underscored = parse_args([*common, "--train_preset", "small", "--eval_episodes", "3", "--lr", "3e-5"])
    dashed = parse_args([*common, "--train-preset", "small", "--eval-episodes", "3", "--lr", "3e-5"])
    assert vars(underscored) == vars(dashed)
    assert (underscored.train_preset, underscored.eval_episodes) == ("small", 3)
    assert underscored.rl_flags == ["--lr", "3e-5"]
    # no abbreviation: a lara rl flag that begins like one of ours is passed on, not swallowed
    assert parse_args([*common, "--eval_workers", "2"]).rl_flags == ["--eval_workers", "2"]
