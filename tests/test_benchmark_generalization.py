"""benchmarks/generalization/run.py at smoke size: 1 demo from a sampled layout, 2 training steps per
stage, 1 capped standard-protocol episode; the report, the published files, resume."""

import json
import shlex
from pathlib import Path

import pytest

from lara.utils.errors import LaraUserError

REPO = Path(__file__).resolve().parents[1]

SMOKE = [
    "--curriculum",
    "tiny",
    "--tasks",
    "0",
    "--demos_per_task",
    "1",
    "--eval_episodes",
    "1",
    "--stage_steps",
    "2",
    "2",
    "2",
    "--workers",
    "1",
    "--eval_max_steps",
    "16",
]


def test_step_commands_name_the_sampled_init_and_the_standard_protocol(tmp_path):
    from benchmarks.generalization.report import step_commands
    from benchmarks.generalization.run import build_config, parse_args

    cfg = build_config(parse_args(["--out", str(tmp_path / "g")]))
    commands = step_commands(cfg)
    assert list(commands) == [
        "collect",
        "annotate",
        "train_stage1",
        "train_stage2",
        "train_stage3",
        "evaluate",
    ]
    assert "--init sampled" in commands["collect"] and "--episodes_per_task 20" in commands["collect"]
    assert (
        "--perturb_xy 0.0" in commands["collect"] and "--tasks all" not in commands["collect"]
    )  # default: not shown
    assert commands["evaluate"].startswith(
        "lara eval --config_path configs/eval/libero_object.yaml --policy "
    )
    # only what differs from the preset is shown (its workers: 2 already); the flags parse back to the config
    assert "--episodes 10 " in commands["evaluate"] and "--max_steps" not in commands["evaluate"]
    from envs.evaluator import EvalConfig
    from lara.scripts.pipeline import eval_config
    from lara.utils.config_parsing import parse_config

    shown = shlex.split(commands["evaluate"].replace("configs/", f"{REPO}/configs/"))[2:]
    assert parse_config(EvalConfig, shown) == eval_config(cfg)
    assert "--stages 3 " in commands["train_stage3"] and commands["train_stage3"].endswith("--steps 1600")
    assert commands["train_stage1"].startswith("lara train --curriculum small ")  # the published setting


def test_flags_take_both_spellings():
    from benchmarks.generalization.run import parse_args

    underscored = parse_args(
        ["--stage_steps", "1", "2", "3", "--eval_episodes", "4", "--stop_after", "annotate"]
    )
    dashed = parse_args(["--stage-steps", "1", "2", "3", "--eval-episodes", "4", "--stop-after", "annotate"])
    assert vars(underscored) == vars(dashed)
    assert (underscored.stage_steps, underscored.eval_episodes) == ([1, 2, 3], 4)


@pytest.mark.sim
def test_generalization_smoke_run_report_publish_and_resume(tmp_path, capsys):
    from benchmarks.generalization.run import main

    out, published = tmp_path / "gen", tmp_path / "results"
    assert main(["--out", str(out), *SMOKE, "--stop_after", "annotate"]) == 0  # the demos only
    assert "stopped after annotate" in capsys.readouterr().out and not (out / "train").exists()
    assert main(["--out", str(out), *SMOKE, "--publish", str(published)]) == 0  # continues from there
    printed = capsys.readouterr().out
    assert "standard protocol (init states 0..0)" in printed and f"report: {out / 'report.md'}" in printed

    layouts = json.loads((out / "data" / "lara" / "collection.json").read_text())
    assert layouts["init"] == "sampled" and not layouts["starts_from_evaluation_states"]
    assert layouts["min_distance_to_evaluation_states_m"] > layouts["min_layout_distance_m"] == 0.01
    run = json.loads((out / "eval" / "run.json").read_text())
    assert (
        run["camera_size"] == 256 and run["seed"] == 7
    )  # the preset's protocol settings, not the demo's 128 px

    report = (out / "report.md").read_text()
    for section in (
        "## 1. Dataset",
        "## 3. Training",
        "## 4. Standard-protocol evaluation",
        "## 5. Baseline",
        "## Commands",
    ):
        assert section in report
    assert (
        "layouts drawn by LIBERO's placement sampler" in report and "Fewer episodes than the full" in report
    )
    assert "Episodes capped at 16 steps" in report and "| libero_object |" in report
    assert (
        "lara collect --tasks 0 --episodes_per_task 1" in report and "--config_path configs/eval/" in report
    )
    timings = json.loads((out / "timings.json").read_text())
    assert list(timings) == [
        "collect",
        "annotate",
        "train_stage1",
        "train_stage2",
        "train_stage3",
        "evaluate",
    ]

    assert (published / "report.md").read_text() == report
    for name in ("eval/results.json", "eval/episodes.jsonl", "data/lara/collection.json", "loss_stage3.png"):
        assert (published / name).is_file(), name
    linked = [line for line in report.splitlines() if "(eval/videos/" in line]
    assert len(linked) == len(list((published / "eval" / "videos").glob("*.mp4"))) <= 3  # a failure, if any

    assert main(["--out", str(out), *SMOKE]) == 0  # resume: every step skipped, timings kept
    assert json.loads((out / "timings.json").read_text()) == timings
    at = SMOKE.index("--eval_episodes") + 1
    with pytest.raises(LaraUserError, match="eval_episodes"):  # the same run asked for another protocol
        main(["--out", str(out), *SMOKE[:at], "2", *SMOKE[at + 1 :]])

    # the baseline arm: stage III alone on the same demos, no <img_next> slots, the same capped evaluation
    from benchmarks.generalization.baseline import main as baseline_main
    from lara.checkpoint import resolve_checkpoint_dir

    capsys.readouterr()
    assert baseline_main(["--out", str(out), "--steps", "2", "--workers", "1"]) == 0
    assert "baseline (stage III only, no reasoning)" in capsys.readouterr().out
    model_cfg = json.loads(
        (resolve_checkpoint_dir(out / "baseline" / "train" / "final") / "config.json").read_text()
    )
    assert model_cfg["foresight"]["num_slots"] == 0
    base_run = json.loads((out / "baseline" / "eval" / "run.json").read_text())
    assert (base_run["camera_size"], base_run["seed"], base_run["max_steps"]) == (256, 7, 16)
    assert main(["--out", str(out), *SMOKE]) == 0  # the report now puts both arms side by side
    report = (out / "report.md").read_text()
    assert (
        "| task | LaRA (stages I-III) | baseline (stage III only) |" in report and "| **overall** |" in report
    )
    assert "# train_baseline\nlara train --preset tiny --stage baseline" in report

    # published separately: the report published before the baseline ran gets its section 5
    assert "not run yet" in (published / "report.md").read_text()
    assert baseline_main(["--out", str(out), "--steps", "2", "--publish", str(published)]) == 0
    text = (published / "report.md").read_text()
    assert "| task | LaRA (stages I-III) | baseline (stage III only) |" in text and "not run yet" not in text
    assert "# train_baseline\n" in text and (published / "baseline" / "eval" / "results.json").is_file()
    (out / "baseline" / "eval" / "results.json").unlink()  # as if its evaluation had been stopped early
    assert baseline_main(["--out", str(out), "--publish", str(published), "--publish_only", "true"]) == 0
    text = (published / "report.md").read_text()
    assert "**Partial: the baseline's evaluation stopped after 1 episodes (tasks 0-0" in text
    assert "| **overall** |" in text and not (published / "baseline" / "eval" / "results.json").exists()
    layouts = json.loads((published / "data" / "lara" / "collection.json").read_text())
    layouts["episodes"][0]["layout_seed"] += 1  # another collection: not the same data
    (published / "data" / "lara" / "collection.json").write_text(json.dumps(layouts))
    with pytest.raises(LaraUserError, match="different layouts"):
        baseline_main(["--out", str(out), "--steps", "2", "--publish", str(published)])
