"""The reference's recipe as the Qwen3-VL presets' default (issue 26, part 5): warmup as a fraction,
cosine to 1/60 of each lr, the EMA target every 2 optimizer steps, visual L1 0.1 on stage II's first
latent level, no visual target where the next frame does not change, the 112 px target through the
256 px tower, and the reference budget beside ours."""

from __future__ import annotations

import math

import pytest
import torch
from curriculum_testing import toy_config

from curriculum import trainer
from curriculum.config import OptimConfig
from curriculum.presets import load_train_config, train_preset
from curriculum.schedules import ema_update_due, lr_multiplier, stage_visual_l1
from lara.utils.errors import LaraUserError


def reference_scheduler_factor(step: int, *, total: int, warmup: int, min_lr: float, base_lr: float) -> float:
    """transformers' cosine_with_min_lr multiplier (the reference's scheduler), written out:
    min_lr is divided by the optimizer's default lr, then the cosine is lifted to that floor."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    rate = min_lr / base_lr
    return 0.5 * (1 + math.cos(math.pi * progress)) * (1 - rate) + rate


@pytest.mark.parametrize("size", ["qwen3vl-2b", "qwen3vl-4b-reference"])
def test_qwen_schedule_follows_the_reference_scheduler(size):
    cfg = train_preset(size, 1)
    o = cfg.optim
    warmup = o.warmup_for(cfg.steps)
    assert warmup == cfg.steps // 10  # 10% of the stage
    ours = [
        lr_multiplier(s, total_steps=cfg.steps, warmup_steps=warmup, min_lr_ratio=o.min_lr_ratio)
        for s in range(cfg.steps)
    ]
    # ours is the multiplier of the update at step s (0-based): the reference's at s + 1
    theirs = [
        reference_scheduler_factor(s + 1, total=cfg.steps, warmup=warmup, min_lr=5e-7, base_lr=3e-5)
        for s in range(cfg.steps)
    ]
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 2 / cfg.steps * math.pi
    assert o.backbone_lr * ours[-1] == pytest.approx(1e-5 / 60)  # each group ends at 1/60 of its lr
    assert (o.weight_decay, o.beta1, o.beta2, o.grad_clip_norm) == (1e-8, 0.9, 0.95, 1.0)


def test_explicit_warmup_steps_win_over_the_fraction():
    assert OptimConfig(warmup_steps=None, warmup_fraction=0.1).warmup_for(1234) == 123
    assert OptimConfig(warmup_steps=7, warmup_fraction=0.1).warmup_for(1234) == 7
    cfg = load_train_config([], ["--optim.warmup_steps", "3"], preset="qwen3vl-2b", stage=1)
    assert cfg.optim.warmup_for(cfg.steps) == 3
    tiny = ["--optim.warmup_steps", "null", "--optim.warmup_fraction", "0.2"]  # a CPU preset, by fraction
    cfg = load_train_config([], tiny, preset="tiny", stage=1)
    assert cfg.optim.warmup_for(cfg.steps) == cfg.steps // 5
    with pytest.raises(LaraUserError, match="warmup_fraction"):
        OptimConfig(warmup_fraction=1.5)


def test_the_budgets():
    ours = [train_preset("qwen3vl-2b", k) for k in (1, 2, 3)]
    ref = [train_preset("qwen3vl-2b-reference", k) for k in (1, 2, 3)]
    assert [c.steps for c in ours] == [20000, 20000, 30000]
    assert [c.batch_size * c.grad_accum_steps for c in ours] == [32, 32, 32]
    assert [c.steps for c in ref] == [5000, 6000, 60000]
    assert [c.batch_size for c in ref] == [12, 12, 8]
    assert ref[1].init_from == "outputs/train/qwen3vl-2b-reference/stage1/final"
    assert train_preset("qwen3vl-4b-reference", "baseline").steps == 60000


def test_ema_every_second_step_in_the_qwen_presets_and_in_the_trainer(tmp_path, monkeypatch):
    assert [ema_update_due(s, 2) for s in range(1, 6)] == [False, True, False, True, False]
    assert all(ema_update_due(s, 1) for s in range(1, 6))
    assert train_preset("qwen3vl-2b", 3).ema_every == 2
    assert train_preset("small", 3).ema_every == 1  # the CPU presets' published runs
    calls = []
    real = trainer.build_policy

    def counting_policy(*args, **kwargs):
        policy = real(*args, **kwargs)
        update = policy.ema_update
        policy.ema_update = lambda: (calls.append(1), update())[1]
        return policy

    monkeypatch.setattr(trainer, "build_policy", counting_policy)
    cfg = toy_config(tmp_path / "run", 1, "--steps", "5", "--ema_every", "2", "--progress", "false")
    trainer.train(cfg)
    assert len(calls) == 2  # after optimizer steps 2 and 4


def test_visual_l1_first_level_in_stage_two():
    assert stage_visual_l1(2, 0.25, weight=0.2, first_level_weight=0.1, num_levels=4) == 0.1
    assert stage_visual_l1(2, 0.0, weight=0.2, first_level_weight=0.1, num_levels=4) == 0.1
    assert stage_visual_l1(2, 0.5, weight=0.2, first_level_weight=0.1, num_levels=4) == 0.2
    assert stage_visual_l1(3, 0.0, weight=0.2, first_level_weight=0.1, num_levels=4) == 0.2
    assert stage_visual_l1(2, 0.25, weight=0.2, first_level_weight=None, num_levels=4) == 0.2
    cfg = train_preset("qwen3vl-2b", 2)
    # four levels of a quarter each (ramp to 75%): SUBTASK alone latent for the first quarter
    weights = [trainer.loss_weights_at(cfg, s)["visual_l1"] for s in (0, 4999, 5000, 19999)]
    assert weights == [0.1, 0.1, 0.2, 0.2]
    levels = [trainer.latent_probability_at(cfg, s) for s in (0, 4999, 5000, 10000, 15000)]
    assert levels == [0.25, 0.25, 0.5, 0.75, 1.0]
    assert [train_preset("qwen3vl-2b", k).loss.visual_l1 for k in (1, 3)] == [0.1, 0.1]
    small = train_preset("small", 2)  # unchanged CPU preset: 0.2 throughout
    assert trainer.loss_weights_at(small, 0)["visual_l1"] == 0.2


def test_foresight_target_is_the_112px_frame_through_the_256px_tower(monkeypatch):
    from lara import foresight as foresight_module
    from lara.configuration_lara import ForesightConfig
    from lara.presets import model_preset

    cfg = train_preset("qwen3vl-2b", 1)
    assert cfg.data.foresight_image_size == 112 and cfg.model.foresight.image_size == 256
    assert cfg.data.mask_unchanged_future
    # the tower sees 256 px frames (16 x 16 patches, 8 x 8 merged tokens), pooled to 4 x 4 slots
    model_cfg = model_preset("tiny")
    model_cfg.foresight = ForesightConfig(num_slots=16, image_size=256)
    seen = {}

    def fake_tower(encoder, pixel_values, grid):
        seen["grid"] = grid.tolist()
        merged = int(grid[0, 1] * grid[0, 2]) // 4
        tokens = torch.arange(grid.shape[0] * merged, dtype=torch.float32)[:, None]  # (B*64, 1)
        return tokens.expand(-1, 8), None

    monkeypatch.setattr(foresight_module, "encode_images", fake_tower)
    head = foresight_module.Foresight(model_cfg, torch.nn.Linear(1, 1))
    target = head.targets(torch.rand(2, 3, 112, 112), None)
    assert seen["grid"] == [[1, 16, 16], [1, 16, 16]]
    assert target.shape == (2, 16, 8)
    # slot 0 averages merged tokens (0, 0), (0, 1), (1, 0), (1, 1) of the 8 x 8 grid
    assert target[0, 0, 0].item() == pytest.approx((0 + 1 + 8 + 9) / 4)


def test_mixed_precision_no_on_the_command_line():
    """YAML reads a bare `no` as false: `--mixed_precision no` still means no autocast."""
    cfg = load_train_config([], ["--mixed_precision", "no"], preset="tiny", stage=1)
    assert cfg.mixed_precision == "no"
    with pytest.raises(LaraUserError, match="mixed_precision: choose one of"):
        load_train_config([], ["--mixed_precision", "fp8"], preset="tiny", stage=1)
