"""The rows of the paper's ablation table as configurations of the existing code.

A row is a checkpoint of a training chain. Chains are trained once and shared by their rows:
- `lara`: the curriculum's stages I, II, III on the size's presets (the generalization benchmark's
  LaRA arm). Rows: `stage1` (its stage-I final/: explicit CoT + FAST tokens), `mid_stage2` (a
  stage-II checkpoint kept, `TrainConfig.keep_steps`, at the last step where `MID_LEVEL` of the
  tags are latent: the rest is written as text), `lara` (its stage-III final/);
- `no_ema`: the same three stages with `model.foresight.use_ema_target: false` from stage I on (the
  online tower, detached, is the foresight target; a stage continues its init's model config, so
  the switch must be set where the model is built);
- `no_foresight`: the same three stages with `model.foresight.num_slots: 0` (no `<img_next>` slots,
  head or EMA tower) and `loss.visual_l1: 0` (nothing to compare);
- `no_curriculum`: `lara train --stage no_curriculum`: stage III from random init with the latent
  CoT slots and the `<img_next>` slots, never an explicit CoT, as many steps as the three stages;
- `baseline`: `lara train --stage baseline`: stage III from random init without latent or
  `<img_next>` slots (benchmarks/generalization's baseline arm), as many steps as the three stages.
Every chain reads the same demos (`<out>/data`, the generalization benchmark's collection) with the
size's seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from lara.utils.errors import LaraUserError

MID_LEVEL = 2  # mid stage II: SUBTASK and OBJECTS latent, MOVE and GRIPPER explicit (of the 4 tags)
CHAINS = ("lara", "no_ema", "no_foresight", "no_curriculum", "baseline")


@dataclass(frozen=True)
class Row:
    name: str
    label: str  # the table's words
    chain: str  # the training chain whose checkpoint it is
    stage: str  # "1", "mid2", "3" (chain stages) or "single" (a one-stage chain's final/)
    finding: str  # the paper's claim this row tests (vs full LaRA)


ROWS = (
    Row("stage1", "stage I (explicit CoT + FAST tokens)", "lara", "1", "about the same success, ~10x slower"),
    Row("mid_stage2", "mid stage II (SUBTASK, OBJECTS latent)", "lara", "mid2", "about the same success"),
    Row("lara", "full LaRA (stage III)", "lara", "3", "the reference row"),
    Row("no_ema", "without the EMA target (online tower)", "no_ema", "3", "latents collapse, success drops"),
    Row("no_foresight", "without `<img_next>` (no visual prediction)", "no_foresight", "3",
        "long tasks drop"),
    Row("no_curriculum", "without the curriculum (straight to latents)", "no_curriculum", "single",
        "latents do not converge"),
    Row("baseline", "baseline (stage III only, no reasoning)", "baseline", "single",
        "(CPU scale: 9 vs 44/100)"),
)  # fmt: skip
ROW_NAMES = tuple(r.name for r in ROWS)


def row(name: str) -> Row:
    for r in ROWS:
        if r.name == name:
            return r
    raise LaraUserError(f"no ablation row {name!r}; rows: {', '.join(ROW_NAMES)}")


def chain_dir(out: Path, chain: str) -> Path:
    return out / "train" / chain


def mid_stage2_step(stage2) -> int:  # stage2: curriculum.config.TrainConfig of stage II
    """The optimizer step after which the mid-stage-II checkpoint is saved: the last step whose
    update trained with `MID_LEVEL` tags latent (a checkpoint records the tags of its last step,
    curriculum.checkpointing.record_training)."""
    from curriculum.schedules import stage_latent_probability

    lat = stage2.latent
    if lat.kind != "tag_order":
        raise LaraUserError(f"mid stage II needs the tag_order schedule (latent.kind), got {lat.kind}")
    target = MID_LEVEL / lat.num_segments

    def p(step: int) -> float:
        return stage_latent_probability(
            2,
            step,
            total_steps=stage2.steps,
            kind=lat.kind,
            start_fraction=lat.start_fraction,
            end_fraction=lat.end_fraction,
            num_segments=lat.num_segments,
        )

    at_level = [s for s in range(stage2.steps) if abs(p(s) - target) < 1e-9]
    if not at_level or at_level[-1] + 1 >= stage2.steps:
        raise LaraUserError(
            f"stage II of {stage2.steps} steps has no step with {MID_LEVEL} of {lat.num_segments} tags "
            "latent before its last: give stage II more steps (--stage_steps)"
        )
    return at_level[-1] + 1  # state.step after that update


def model_switch(chain: str) -> Callable:
    """(TrainConfig -> TrainConfig): what a chain changes in every stage of the size's presets."""

    def same(cfg):
        return cfg

    def no_ema(cfg):
        m = cfg.model
        return replace(cfg, model=replace(m, foresight=replace(m.foresight, use_ema_target=False)))

    def no_foresight(cfg):
        m = cfg.model
        model = replace(m, foresight=replace(m.foresight, num_slots=0))
        return replace(cfg, model=model, loss=replace(cfg.loss, visual_l1=0.0, visual_l1_first_level=None))

    return {"no_ema": no_ema, "no_foresight": no_foresight}.get(chain, same)


def stage_edit(out: Path, chain: str, data_dir: Path, annotation: str, stage_steps) -> Callable:
    """`run_curriculum(edit=...)` of a three-stage chain: the preset's stage k on the run's demos and
    step budget (as lara.scripts.pipeline's training step does), the chain's switch, and in stage II of
    the `lara` chain the kept mid-stage-II step."""

    def edit(k: int, cfg):
        data = replace(cfg.data, root=str(data_dir), annotation=annotation)
        cfg = model_switch(chain)(replace(cfg, steps=stage_steps[k - 1], data=data))
        if chain == "lara" and k == 2:
            cfg = replace(cfg, keep_steps=[mid_stage2_step(cfg)])
        return cfg

    return edit


def single_stage_config(out: Path, chain: str, size: str, data_dir: Path, steps: int):  # -> TrainConfig
    """The `no_curriculum` / `baseline` chain's training config: the size's named stage preset on the
    run's demos, `steps` optimizer steps (the three stages' sum: equal samples seen)."""
    from curriculum.presets import train_preset

    base = train_preset(size, chain)
    return replace(
        base,
        output_dir=str(chain_dir(out, chain)),
        data=replace(base.data, root=str(data_dir)),
        steps=steps,
        resume=True,
    )


def checkpoint_of(out: Path, r: Row, stage_steps, size: str) -> Path:
    """The folder of a row's checkpoint (a training run's final/ or kept step)."""
    from curriculum.checkpointing import checkpoints_dir, final_dir, step_name
    from curriculum.presets import train_preset

    base = chain_dir(out, r.chain)
    if r.stage == "single":
        return final_dir(base)
    if r.stage == "mid2":
        stage2 = replace(train_preset(size, 2), steps=stage_steps[1])
        return checkpoints_dir(base / "stage2") / step_name(mid_stage2_step(stage2))
    return final_dir(base / f"stage{r.stage}")
