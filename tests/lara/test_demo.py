"""`lara demo` end to end at smoke size: 1 scripted demo, 2 training steps per stage, 1 capped
evaluation episode; the report, its figures and files, resume and the changed-settings refusal."""

import json

import pytest

from lara.utils.errors import LaraUserError

SMOKE = [
    "--tasks",
    "0",
    "--episodes_per_task",
    "1",
    "--eval_episodes",
    "1",
    "--stage_steps",
    "2,2,2",
    "--workers",
    "1",
    "--eval_max_steps",
    "16",
]


# slow: the generalization benchmark's smoke test runs the same pipeline (collect, annotate, three
# stages, evaluate, report) end to end in the default run; `make test-slow` runs this one.
@pytest.mark.sim
@pytest.mark.slow
def test_demo_smoke_run_report_and_resume(tmp_path, capsys):
    from lara.scripts.demo import main

    out = tmp_path / "demo"
    assert main(["--out", str(out), *SMOKE]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.md'}" in printed

    report = (out / "report.md").read_text()
    for section in (
        "## 1. Dataset",
        "## 2. Annotation",
        "## 3. Training",
        "## 4. Closed-loop",
        "## 5. Latency",
    ):
        assert section in report
    assert "pick up the alphabet soup and place it in the basket | 1 |" in report  # dataset table: 1 demo
    assert "<SUBTASK>" in report and "<GRIPPER>" in report  # CoT read back from the sidecar
    assert "| 0/1 |" in report or "| 1/1 |" in report  # success table from results.json
    assert "Episodes capped at 16 steps" in report
    for name in (
        "loss_stage1.png",
        "loss_stage2.png",
        "loss_stage3.png",
        "preview/episode_000000.png",
        "eval/success.png",
    ):
        assert (out / name).stat().st_size > 1000, name
        assert name.split("/")[-1] in report
    videos = list((out / "eval" / "videos").glob("*.mp4"))
    assert len(videos) == 1 and f"(eval/videos/{videos[0].name})" in report

    latency = json.loads((out / "latency.json").read_text())
    assert latency["latent_tokens_generated"] == 0  # stage III generates no tokens
    assert latency["tokens_generated_per_chunk"] >= 1
    assert latency["ratio"] == pytest.approx(latency["latent_ms"] / latency["explicit_ms"], rel=1e-2)
    assert f"**{latency['ratio']:.3f}**" in report

    timings = json.loads((out / "timings.json").read_text())
    steps = ["collect", "annotate", "train_stage1", "train_stage2", "train_stage3", "evaluate", "latency"]
    assert list(timings) == steps and all(v > 0 for v in timings.values())

    # resume: every step is skipped and keeps the time the first run measured
    assert main(["--out", str(out), *SMOKE]) == 0
    assert json.loads((out / "timings.json").read_text()) == timings

    # another setting on the same folder is refused, not silently mixed
    with pytest.raises(LaraUserError, match="eval_episodes"):
        main(["--out", str(out), *SMOKE[:4], "--eval_episodes", "2", *SMOKE[6:]])
