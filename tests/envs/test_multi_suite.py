"""`lara eval --suite A,B`: one command, one record file, the paper's table (envs.multi_suite)."""

import json

import pytest

from envs.evaluator import EvalConfig
from envs.multi_suite import average_row, suites_of, write_suites_report
from envs.report import summarize, wilson_interval
from lara.utils.errors import LaraUserError


def _records(suite: str, outcomes: list[bool], task: int = 0) -> list[dict]:
    return [
        {"suite": suite, "task": task, "task_name": "t", "episode": i, "success": s, "steps": 10}
        | {"policy_latency_ms": 1.0, "error": None}
        for i, s in enumerate(outcomes)
    ]


def test_config_takes_several_suites_and_checks_each():
    cfg = EvalConfig(suite="libero_spatial,libero_object")
    assert suites_of(cfg) == ["libero_spatial", "libero_object"]
    with pytest.raises(LaraUserError, match="unknown LIBERO suite 'libero_nope'"):
        EvalConfig(suite="libero_spatial,libero_nope")
    with pytest.raises(LaraUserError, match="named twice"):
        suites_of(EvalConfig(suite="libero_goal,libero_goal"))


def test_four_suite_preset_parses():
    from lara.utils.config_parsing import parse_config

    cfg = parse_config(EvalConfig, ["--config_path", "configs/eval/libero_four.yaml"], prog="lara eval")
    assert suites_of(cfg) == ["libero_spatial", "libero_object", "libero_goal", "libero_10"]
    assert (cfg.episodes, cfg.seed, cfg.camera_size) == (50, 7, 256)


def test_report_has_each_suite_the_average_and_wilson_intervals(tmp_path):
    by_suite = {
        "libero_spatial": _records("libero_spatial", [True, False, False, False]),
        "libero_object": _records("libero_object", [True, True, True, False]),
    }
    run = {"policy": "ckpt", "episodes_per_task": 4, "records": "episodes.jsonl"}
    results = write_suites_report(tmp_path, run, by_suite)
    assert [row["name"] for row in results["suites"]] == ["libero_spatial", "libero_object"]  # as named
    avg = results["average"]
    assert avg["success_rate"] == pytest.approx((0.25 + 0.75) / 2)
    assert (avg["successes"], avg["episodes"]) == (4, 8)
    assert (avg["ci95_low"], avg["ci95_high"]) == pytest.approx(wilson_interval(4, 8))
    low, high = wilson_interval(1, 4)
    assert results["suites"][0]["ci95_low"] == pytest.approx(low)
    report = (tmp_path / "report.md").read_text()
    assert "| policy | Spatial | Object | avg |" in report
    assert "| ckpt | 25.0 | 75.0 | 50.0 |" in report
    assert f"| 1/4 | 25.0% | [{100 * low:.1f}, {100 * high:.1f}]" in report
    assert "| **average** | 4/8 | 50.0% |" in report and "approximate" not in report
    assert json.loads((tmp_path / "results.json").read_text())["average"] == avg
    # unequal episode counts: the pooled interval is said to be approximate
    _, rows = summarize(_records("libero_goal", [True]) + _records("libero_10", [False, False]))
    assert not average_row(rows)["equal_episodes"]


@pytest.mark.sim
@pytest.mark.slow
def test_one_command_scores_two_suites_and_resumes(tmp_path, capsys):
    """The scripted expert on task 0 of two suites (no rendering: a few seconds per episode), one
    record file; the same command again runs nothing; another policy is refused."""
    from lara.scripts.eval_cli import main

    out = tmp_path / "eval"
    argv = ["--policy", "scripted", "--suite", "libero_spatial,libero_object", "--tasks", "0"]
    argv += ["--episodes", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted((r["suite"], r["task"], r["episode"]) for r in records) == [
        ("libero_object", 0, 0),
        ("libero_spatial", 0, 0),
    ]
    assert all(r["error"] is None and r["steps"] > 0 for r in records)
    results = json.loads((out / "results.json").read_text())
    rates = {row["name"]: row["success_rate"] for row in results["suites"]}
    assert rates == {r["suite"]: float(r["success"]) for r in records}
    assert results["average"]["success_rate"] == pytest.approx(sum(rates.values()) / 2)
    for suite in ("libero_spatial", "libero_object"):
        assert f"{suite}: " in printed and (out / suite / "report.md").is_file()
        assert not (out / suite / "episodes.jsonl").exists()  # one record file, at the top
    assert "average over 2 suites" in printed
    report = (out / "report.md").read_text()
    assert "| policy | Spatial | Object | avg |" in report and "**average**" in report

    lines = (out / "episodes.jsonl").read_text()
    assert main(argv) == 0  # resumed: every (suite, task, episode) is there already
    assert (out / "episodes.jsonl").read_text() == lines
    with pytest.raises(LaraUserError, match="different run"):
        main([*argv[:1], "noop", *argv[2:]])
