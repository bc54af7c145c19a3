"""The three user-journey examples (examples/annotate_dataset.py, run_curriculum.py,
evaluate_checkpoint.py) run through their `main(argv)` on tiny data the tests write themselves."""

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EPISODES = 3  # the `dataset` fixture's (tests/examples/conftest.py)
FRAMES = 66  # conftest.PICK_PLACE


def test_annotate_dataset_instruction_backend(dataset, tmp_path, capsys, load_example):
    from data_pipeline.annotation.sidecar import annotation_dir, load_annotations, read_meta

    main = load_example("annotate_dataset")
    args = [
        "--dataset",
        str(dataset),
        "--backend",
        "instruction",
        "--name",
        "instr-test",
        "--preview",
        "2",
        "--workers",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out

    meta = read_meta(annotation_dir(dataset, "instr-test"))
    assert meta["complete"] is True and meta["backend"] == "instruction"
    assert meta["counts"]["annotated"] == EPISODES and meta["counts"]["skipped"] == 0
    cot = load_annotations(dataset, "instr-test")
    assert len(cot) == EPISODES * FRAMES
    previews = sorted((tmp_path / "preview" / "instr-test").glob("episode_*.png"))
    assert [p.name for p in previews] == ["episode_000000.png", "episode_000001.png"]
    assert all(p.stat().st_size > 1000 for p in previews)
    assert f"sidecar: {annotation_dir(dataset, 'instr-test')} (complete: True)" in out

    # episode 0 at its first, middle and last frame, each with non-empty PLAN/SUBTASK/MOVE/GRIPPER lines
    frames = [int(f) for f in re.findall(r"^episode 0, frame (\d+):$", out, flags=re.MULTILINE)]
    assert frames == [0, (FRAMES - 1) // 2, FRAMES - 1]
    for tag in ("PLAN", "SUBTASK", "MOVE", "GRIPPER"):
        texts = re.findall(rf"^  {tag} +(\S.*)$", out, flags=re.MULTILINE)
        assert len(texts) == 3, (tag, out)
    subtasks = re.findall(r"^  SUBTASK +(\S.*)$", out, flags=re.MULTILINE)
    assert subtasks[0] == cot[(0, 0)][0][1] and subtasks[-1] == cot[(0, FRAMES - 1)][0][1]
    assert subtasks[0] != subtasks[-1]  # move to the bowl at the start, retract at the end

    # resumable: a second run annotates nothing new and leaves the files as they were
    before = {p.name: p.read_bytes() for p in (annotation_dir(dataset, "instr-test") / "episodes").iterdir()}
    assert main([*args[:-2], "--preview", "0", "--out", str(tmp_path)]) == 0
    assert "(0 this run)" in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in (annotation_dir(dataset, "instr-test") / "episodes").iterdir()}
    assert after == before


def test_run_curriculum_three_stages_and_a_chunk(dataset, tmp_path, capsys, load_example):
    from curriculum.presets import train_preset

    main = load_example("run_curriculum")
    out_dir = tmp_path / "train"
    args = [
        "--dataset",
        str(dataset),
        "--annotation",
        "fixture-v1",
        "--steps",
        "3,3,3",
        "--out",
        str(out_dir),
        "--overrides",
        "[--batch_size=2, --progress=false, --optim.warmup_steps=1]",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out

    for stage in (1, 2, 3):
        final = out_dir / f"stage{stage}" / "final"
        assert (final / "model" / "config.json").is_file(), final
        assert json.loads((final / "trainer_state.json").read_text())["step"] == 3
        line = rf"^stage {stage}: loss (\S+) at step 1 -> (\S+) at step 3; checkpoint (.+)$"
        losses = re.search(line, out, re.MULTILINE)
        assert losses, out
        assert float(losses[1]) > 0 and float(losses[2]) > 0
    assert f"final checkpoint: {out_dir / 'stage3' / 'final'}" in out
    chunk_size = train_preset("tiny", 3).model.chunk_size
    assert f"shape ({chunk_size}, 7)" in out

    # re-running skips the finished stages and still predicts from the stage-III checkpoint
    assert main(args) == 0
    again = capsys.readouterr().out
    assert [f"stage {k}: already trained, skipped" in again for k in (1, 2, 3)] == [True] * 3
    assert f"shape ({chunk_size}, 7)" in again


@pytest.mark.sim
def test_evaluate_checkpoint_closed_loop(tmp_path, capsys, load_example, tiny_policy):
    from envs import libero_setup

    checkpoint = tmp_path / "tiny_policy"
    tiny_policy().save_pretrained(checkpoint)
    main = load_example("evaluate_checkpoint")
    out_dir = tmp_path / "eval"
    assert (
        main(
            [
                "--policy",
                str(checkpoint),
                "--suite",
                "libero_object",
                "--tasks",
                "0",
                "--episodes",
                "1",
                "--workers",
                "1",
                "--max_steps",
                "20",
                "--out",
                str(out_dir),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out

    records = [json.loads(line) for line in (out_dir / "episodes.jsonl").read_text().splitlines()]
    assert len(records) == 1
    assert records[0]["task"] == 0 and records[0]["error"] is None, records[0]
    assert records[0]["steps"] <= 20  # --max_steps reached the evaluator
    assert (out_dir / "report.md").is_file() and (out_dir / "results.json").is_file()
    assert f"report: {out_dir / 'report.md'}" in out

    libero_setup.configure()
    from libero.libero import benchmark

    task_name = benchmark.get_benchmark_dict()["libero_object"]().get_task(0).name
    line = rf"^ +(\d)/1 +\[ *([\d.]+), *([\d.]+)\]%  libero_object +0: {task_name}$"
    row = re.search(line, out, re.MULTILINE)
    assert row, out
    successes = int(row[1])
    assert successes == int(records[0]["success"])
    assert float(row[3]) > float(row[2])  # one episode: a wide Wilson interval
