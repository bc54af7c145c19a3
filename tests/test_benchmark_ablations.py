"""benchmarks/ablations: each row's configuration differs from full LaRA the way it claims, the table
renders from per-episode records, and a re-run resumes (tiny preset on a 3-episode annotated dataset,
a few steps per stage, the simulator replaced by records written in the protocol's format). The
sim-based end-to-end run is `slow`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lara.utils.errors import LaraUserError

STEPS = ["--stage_steps", "1,5,1"]  # stage II: step 3 of 5 trains with SUBTASK and OBJECTS latent


@pytest.fixture(scope="module")
def demos(tmp_path_factory, write_annotated_dataset) -> Path:
    """3 episodes of 12 frames, annotated as run "sim-v1" with all four tags."""

    def frames_of(ep, t):
        return [
            ("SUBTASK", "grasp the bowl" if t < 6 else "place the bowl"),
            ("OBJECTS", "bowl [4, 4, 12, 12]"),
            ("MOVE", "move down"),
            ("GRIPPER", "open" if t < 6 else "close"),
        ]

    return write_annotated_dataset(tmp_path_factory.mktemp("ablation_data") / "data", "sim-v1", frames_of)


def _stage_configs(chain: str, data: Path, out: Path) -> dict:
    """The TrainConfig each stage of a chain trains with (the run's edit of the size's presets)."""
    from benchmarks.ablations.rows import single_stage_config, stage_edit
    from curriculum.presets import train_preset

    if chain in ("no_curriculum", "baseline"):
        return {"single": single_stage_config(out, chain, "tiny", data, 11)}
    edit = stage_edit(out, chain, data, "sim-v1", [2, 7, 2])
    return {k: edit(k, train_preset("tiny", k)) for k in (1, 2, 3)}


def test_each_row_differs_from_full_lara_as_it_claims(demos, tmp_path):
    from benchmarks.ablations.rows import ROWS, checkpoint_of, mid_stage2_step
    from lara.modeling_lara import LaraPolicy
    from lara.sequence import IMG_NEXT, LATENT

    lara, no_ema, no_fs = (_stage_configs(c, demos, tmp_path) for c in ("lara", "no_ema", "no_foresight"))
    for k in (1, 2, 3):  # the switches hold in every stage; nothing else differs
        assert lara[k].model.foresight.use_ema_target and not no_ema[k].model.foresight.use_ema_target
        assert no_fs[k].model.foresight.num_slots == 0 and no_fs[k].loss.visual_l1 == 0
        assert replace(no_ema[k].model, foresight=lara[k].model.foresight) == lara[k].model
        assert no_ema[k].loss == lara[k].loss and no_fs[k].loss != lara[k].loss
    # the no-EMA model's foresight target is the online tower; full LaRA's is the EMA copy
    with_ema, online = LaraPolicy(lara[1].model), LaraPolicy(no_ema[1].model)
    assert with_ema.foresight.ema_vision is not None and online.foresight.ema_vision is None
    # the no-foresight model's sequence has no <img_next> slot, full LaRA's has N_v of them
    no_slots = LaraPolicy(no_fs[1].model)
    for policy, n in ((with_ema, lara[1].model.foresight.num_slots), (no_slots, 0)):
        seq = policy.builder.build_prompt("put the bowl", latent=True, img_next=True, act_start=False)
        latent = policy.cfg.latent
        assert (np.asarray(seq.part) == IMG_NEXT).sum() == n
        assert (np.asarray(seq.part) == LATENT).sum() == len(latent.canonical_tags) * latent.slots_per_segment
    # no curriculum: one stage-III run from random init with the latent and <img_next> slots, reading
    # no CoT text (no CoT loss); the baseline has neither slot kind
    nc, base = (
        _stage_configs("no_curriculum", demos, tmp_path)["single"],
        _stage_configs("baseline", demos, tmp_path)["single"],
    )
    assert (nc.stage, nc.from_scratch, nc.init_from, nc.data.annotation) == (3, True, None, None)
    assert "cot_ce" not in nc.active_losses() and nc.loss.visual_l1 > 0
    assert nc.model.latent.tags == lara[3].model.latent.tags and nc.model.foresight == lara[3].model.foresight
    assert base.model.latent.tags == [] and base.model.foresight.num_slots == 0
    # mid stage II is a kept stage-II step of the lara chain, inside the ramp
    s = mid_stage2_step(lara[2])
    assert lara[2].keep_steps == [s] and 0 < s < lara[2].steps and no_ema[2].keep_steps == []
    chains = {r.name: r.chain for r in ROWS}
    assert chains["stage1"] == chains["mid_stage2"] == chains["lara"] == "lara"  # stage I trained once
    assert checkpoint_of(tmp_path, ROWS[1], [2, 7, 2], "tiny").name == f"step_{s:06d}"


def _fake_records(cfg, row: str, successes: list[bool]) -> None:
    """What `lara eval` writes, in its format (the simulator is the slow-marked test's business)."""
    out = cfg.out / "eval" / row
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        {"suite": "libero_object", "task": 0, "episode": i, "success": ok, "steps": 50,
         "chunk_latency_ms": 10.0 + i, "policy_latency_ms": 2.0, "error": None}
        for i, ok in enumerate(successes)
    ]  # fmt: skip
    (out / "episodes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (out / "results.json").write_text("{}")


def test_run_trains_measures_and_resumes(demos, tmp_path, monkeypatch):
    from benchmarks.ablations import run as ablation_run

    outcomes = {"stage1": [True, False, True, True], "mid_stage2": [True, False, False, True]}
    evaluated = []

    def fake_eval(cfg, row):
        if (cfg.out / "eval" / row / "results.json").is_file():
            return False
        evaluated.append(row)
        assert Path(ablation_run.eval_config(cfg, row).policy).is_dir()  # the row's checkpoint exists
        _fake_records(cfg, row, outcomes[row])
        return True

    monkeypatch.setattr(ablation_run, "evaluate_row", fake_eval)
    out = tmp_path / "abl"
    argv = ["--out", str(out), "--preset", "tiny", "--data", str(demos), *STEPS, "--health_stride", "4"]
    argv += ["--rows", "stage1,mid_stage2"]  # full LaRA's records: already there
    _fake_records(ablation_run.AblationConfig(out=out, preset="tiny"), "lara", [True, True, False, True])
    assert ablation_run.main(argv) == 0
    assert evaluated == ["stage1", "mid_stage2"]
    assert not (out / "train" / "lara" / "stage3").exists()  # no row asked for it
    mid = json.loads(
        next((out / "train" / "lara" / "stage2" / "checkpoints").glob("step_*/model/config.json")).read_text()
    )
    assert mid["inference"] == {**mid["inference"], "stage": 2, "latent_tags": ["SUBTASK", "OBJECTS"]}
    health = json.loads((out / "health" / "mid_stage2.json").read_text())
    assert health["latent"]["tags"] == ["SUBTASK", "OBJECTS"] and health["latent"]["mean_std"] > 0
    assert health["foresight"]["frames"] > 0 and 0 < health["latent"]["effective_rank"]
    table = json.loads((out / "table.json").read_text())["rows"]
    assert table["mid_stage2"]["vs_lara"] == {
        **table["mid_stage2"]["vs_lara"],
        "only_a": 1,
        "only_b": 0,
        "both": 2,
    }
    report = (out / "report.md").read_text()
    assert (
        "| full LaRA (stage III) | 3/4 | 75.0% |" in report
        and "| stage I (explicit CoT + FAST tokens) | 3/4 |" in report
    )
    assert "without the EMA target (online tower) | not evaluated" in report

    timings = json.loads((out / "timings.json").read_text())
    evaluated.clear()
    assert ablation_run.main(argv) == 0  # nothing left to do: no training, no evaluation
    assert evaluated == [] and json.loads((out / "timings.json").read_text()) == timings
    with pytest.raises(LaraUserError, match="stage_steps differ"):
        ablation_run.main(
            ["--out", str(out), "--preset", "tiny", "--data", str(demos), "--stage_steps", "1,6,1"]
        )


def test_report_renders_the_table_from_episode_records(tmp_path):
    from benchmarks.ablations.report import write_report
    from benchmarks.ablations.run import AblationConfig

    cfg = AblationConfig(out=tmp_path, preset="tiny")
    _fake_records(cfg, "lara", [True] * 6 + [False] * 4)
    _fake_records(cfg, "no_ema", [False] * 10)
    health = {"latent": {"relative_std": 0.001, "mean_std": 0.0005, "effective_rank": 1.2}, "foresight": None}
    (tmp_path / "health").mkdir()
    (tmp_path / "health" / "no_ema.json").write_text(json.dumps(health))
    report = write_report(tmp_path, cfg.settings(), "python benchmarks/ablations/run.py").read_text()
    assert "| full LaRA (stage III) | 6/10 | 60.0% | [31.3, 83.2] | 14.5 | reference |" in report
    assert "6 / 0 (p = 0.0312, n = 10) | 0.001 / 0.001 | 1.2 | no `<img_next>` |" in report
    assert "*Without the EMA target the latents collapse and success drops sharply*: 0/10, differs" in report
    assert "*Skipping the curriculum leaves the latents non-convergent*: not yet measured." in report
    assert (tmp_path / "success.png").is_file()


@pytest.mark.slow
@pytest.mark.sim
def test_tiny_preset_end_to_end(tmp_path):
    """Collection, annotation, every row's training, LIBERO evaluation (1 capped episode) and health."""
    from benchmarks.ablations.run import main

    out = tmp_path / "abl"
    assert (
        main(["--out", str(out), "--preset", "tiny", "--demos_per_task", "1", "--eval_max_steps", "8"]) == 0
    )
    rows = json.loads((out / "table.json").read_text())["rows"]
    assert all(r["episodes"] == 1 for r in rows.values())
    assert rows["stage1"]["chunk_latency_ms"] > 0 and rows["no_foresight"]["health"]["foresight"] is None
