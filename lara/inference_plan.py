"""Which inference path a checkpoint's config takes, and how it is named in reports.

A checkpoint records the stage that trained it as `inference.stage` (the trainer writes it into
the saved config, `curriculum.checkpointing.record_training`): what that stage trained is what the
policy can act with.
- stage 1: the model writes its explicit CoT, then (after the `<img_next>` slots) FAST action tokens;
  its flow-matching action expert never trained.
- stage 2: the CoT tags latent when the checkpoint was saved (`inference.latent_tags`; None = every
  tag, a finished stage II) are fed as latent slots, the model writes the remaining tags as text,
  then FAST tokens. Mid stage II is partly latent.
- stage 3: one prefill over the latent and `<img_next>` slots, then the expert's Euler steps.
Token inference places the latent segments before the text it generates, so in stage 2 the latent
tags must lead the CoT (`latent.canonical_tags`), as the tag_order schedule makes them with the
default order; a checkpoint whose latent tags fall between explicit ones is refused with one line.
Only lara.configuration_lara is imported: the evaluator's parent process names the path before any
model is built.
"""

from __future__ import annotations

from lara.configuration_lara import LaraConfig
from lara.utils.errors import LaraUserError


def token_latent_tags(cfg: LaraConfig, stage: int | None = None) -> list[str]:
    """The CoT tags token inference (stages 1-2) feeds as latent slots, in CoT order: none in stage 1,
    `inference.latent_tags` (None: all of `latent.canonical_tags`) in stage 2. Raises a user error
    when they do not lead the CoT (they could not be placed where training placed them)."""
    stage = stage or cfg.inference.stage
    canonical = cfg.latent.canonical_tags
    if stage != 2:
        return [] if stage == 1 else list(canonical)
    chosen = cfg.inference.latent_tags
    if chosen is None:
        return list(canonical)
    latent = [t for t in canonical if t in set(chosen)]
    if latent != canonical[: len(latent)]:
        raise LaraUserError(
            f"this stage-II checkpoint was saved with CoT tags {latent} latent and "
            f"{[t for t in canonical if t not in latent]} explicit, in CoT order {canonical}: token "
            "inference places latent segments before the text it writes, so the latent tags must lead "
            "the CoT; evaluate a checkpoint from later in stage II (all tags latent) or from stage III"
        )
    return latent


def describe(cfg: LaraConfig, stage: int | None = None) -> str:
    """The inference path in words, e.g. "stage 1: explicit CoT + FAST action tokens"."""
    stage = stage or cfg.inference.stage
    if stage == 3:
        return (
            "stage 3: latent CoT + flow-matching action expert "
            f"({cfg.expert.num_inference_steps} Euler steps, no token generation)"
        )
    latent = token_latent_tags(cfg, stage)
    explicit = [t for t in cfg.latent.canonical_tags if t not in latent]
    if not latent:
        cot = "explicit CoT"
    elif not explicit:
        cot = f"latent CoT ({', '.join(latent)})"
    else:
        cot = f"partly latent CoT (latent {', '.join(latent)}; explicit {', '.join(explicit)})"
    return f"stage {stage}: {cot} + FAST action tokens"


def checkpoint_inference(directory) -> dict:
    """{"stage": the stage that trained the checkpoint at `directory`, "inference": its path in
    words} (run.json, the report), after checking the checkpoint; a user error when that path cannot
    run. The checkpoint module is imported here only (torch: not for the evaluator's start-up)."""
    from lara.checkpoint import check_checkpoint, checkpoint_config

    directory = check_checkpoint(directory)
    cfg = checkpoint_config(directory)
    if cfg.inference.stage < 3 and not (directory / "fast_tokenizer.json").is_file():
        raise LaraUserError(
            f"{directory} was trained by stage {cfg.inference.stage} but holds no FAST tokenizer "
            "(fast_tokenizer.json), which its action tokens need: it cannot act; use another checkpoint"
        )
    return {"stage": cfg.inference.stage, "inference": describe(cfg)}


def check_rl_kind(cfg: LaraConfig, kind: str, where: str) -> None:
    """`lara rl --kind flow` improves the flow expert (trained in stage III only); `--kind tokens`
    samples FAST tokens after the all-latent stage-II prompt. One line when the checkpoint's stage
    did not train what the kind acts with."""
    stage = cfg.inference.stage
    if kind == "flow" and stage < 3:
        raise LaraUserError(
            f"{where} was trained by stage {stage} ({describe(cfg)}): its flow-matching action expert "
            "never trained, so GRPO on it (--kind flow) has nothing to start from; train stage III "
            f"from it first (`lara train --preset SIZE --stage 3 --init_from {where}`)"
            + (", or use --kind tokens" if stage == 2 and _all_latent(cfg) else "")
        )
    if kind == "tokens" and stage < 3 and not (stage == 2 and _all_latent(cfg)):
        raise LaraUserError(
            f"{where} was trained by stage {stage} ({describe(cfg)}); --kind tokens samples FAST tokens "
            "after the all-latent prompt of a finished stage II, which this checkpoint never trained "
            "with: use a checkpoint from the end of stage II"
        )


def _all_latent(cfg: LaraConfig) -> bool:
    return cfg.inference.latent_tags is None or set(cfg.latent.canonical_tags) <= set(
        cfg.inference.latent_tags
    )
