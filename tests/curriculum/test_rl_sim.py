"""`lara rl` in LIBERO at smoke size: a random tiny checkpoint, layouts from one scripted demo,
1 iteration of 2 groups x 2 rollouts capped at 16 steps, before/after evaluation of 1 capped
episode, the report; then the run continued by one more iteration with --resume."""

from pathlib import Path

import pytest

from lara.utils.jsonl import read_jsonl

# slow: about 3 min of the default run's 17 (worker spawns for rollouts and two evaluations, twice);
# `lara rl`'s parts run in the default run without the simulator (test_rl_toy, test_rl_scorers,
# test_rl_rollouts), and `make test-slow` runs this one.
pytestmark = [pytest.mark.sim, pytest.mark.slow]
PRESET = Path(__file__).resolve().parents[2] / "configs" / "rl" / "tiny.yaml"


def test_lara_rl_smoke_run_report_and_resume(tmp_path, capsys, tiny_policy):
    from data_pipeline.collect import CollectConfig, collect
    from lara.scripts.cli import main

    data = tmp_path / "demos"
    assert (
        collect(
            CollectConfig(
                suite="libero_object",
                tasks="0",
                episodes_per_task=1,
                out=str(data),
                camera_size=64,
                max_attempts=2,
            )
        ).episodes
        == 1
    )
    ckpt = tmp_path / "tiny"
    tiny_policy().save_pretrained(ckpt)
    out = tmp_path / "rl"
    args = [
        "rl",
        "--config_path",
        str(PRESET),
        "--policy",
        str(ckpt),
        "--dataset",
        str(data),
        "--tasks",
        "0",
        "--iterations",
        "1",
        "--groups",
        "2",
        "--group_size",
        "2",
        "--max_steps",
        "16",
        "--camera_size",
        "64",
        "--workers",
        "1",
        "--eval_episodes",
        "1",
        "--eval_workers",
        "1",
        "--eval_max_steps",
        "16",
        "--out",
        str(out),
        "--progress",
        "false",
    ]
    assert main(args) == 0
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    records, dropped = read_jsonl(out / "iterations.jsonl")
    assert dropped == 0 and len(records) == 1
    r = records[0]
    assert r["rollouts"] == 4 and r["errors"] == 0 and r["mean_steps"] <= 16
    assert r["chunks"] == 4 * 2  # 16 steps / chunks of 8
    assert r["noise_scale"] == 0.1 and r["wall_s"] > 0
    assert (out / "final" / "model" / "config.json").is_file()
    report = (out / "report.md").read_text()
    assert "| 1 | " in report and "Wilson" in report and "capped at 16 steps" in report
    assert "before (starting policy)" in report and "after (final/)" in report

    assert (
        main([*args[:-4], "--iterations", "2", "--resume", "true", "--out", str(out), "--progress", "false"])
        == 0
    )
    records, _ = read_jsonl(out / "iterations.jsonl")
    assert [x["iteration"] for x in records] == [1, 2]
