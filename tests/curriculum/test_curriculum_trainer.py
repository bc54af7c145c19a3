"""Trainer mechanics on the toy policy: accumulation, resume, atomic checkpoints, loss checks."""

import json
import shutil

import pytest
import torch
from curriculum_testing import assert_same_weights, toy_config, weights

from curriculum import checkpointing as ckpt
from curriculum.trainer import train
from lara.utils.errors import LaraUserError


def test_accumulation_equals_large_batch(tmp_path):
    """batch 4 x accumulation 2 must give the update of batch 8 (same samples per step)."""
    train(toy_config(tmp_path / "b8", 1, "--steps", "6", "--batch_size", "8"))
    train(toy_config(tmp_path / "b4x2", 1, "--steps", "6", "--batch_size", "4", "--grad_accum_steps", "2"))
    train(toy_config(tmp_path / "b4", 1, "--steps", "6", "--batch_size", "4"))
    assert_same_weights(weights(tmp_path / "b8"), weights(tmp_path / "b4x2"), atol=1e-6)
    # the control: without accumulation the run really is different
    with pytest.raises(AssertionError, match="weights differ"):
        assert_same_weights(weights(tmp_path / "b8"), weights(tmp_path / "b4"), atol=1e-4)


def test_resume_from_checkpoint_is_exact(tmp_path):
    """Resuming from step 10 (noisy forward: dropout + random draws, 2 epochs of data) ends
    with the uninterrupted run's weights."""
    args = ("--policy_type", "toy-noisy", "--steps", "20", "--data.root", "40")
    train(toy_config(tmp_path / "full", 2 - 1, *args))
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(
        tmp_path / "full" / "checkpoints" / "step_000010", resumed / "checkpoints" / "step_000010"
    )
    result = train(toy_config(resumed, 1, *args, "--resume", "true"))
    assert [r["step"] for r in result.history] == list(range(11, 21))  # only the missing steps ran
    assert_same_weights(weights(tmp_path / "full"), weights(resumed), atol=1e-6)
    state = ckpt.read_trainer_state(resumed / "final")
    assert (state.step, state.stage, state.samples_seen) == (20, 1, 160)


def test_resume_without_rng_restore_would_differ(tmp_path, monkeypatch):
    """The control of the test above: dropping the restored RNG/optimizer state breaks exactness."""
    args = ("--policy_type", "toy-noisy", "--steps", "20", "--data.root", "40")
    train(toy_config(tmp_path / "full", 1, *args))
    resumed = tmp_path / "resumed"
    shutil.copytree(
        tmp_path / "full" / "checkpoints" / "step_000010", resumed / "checkpoints" / "step_000010"
    )
    from accelerate import Accelerator

    monkeypatch.setattr(Accelerator, "load_state", lambda self, path: None)
    train(toy_config(resumed, 1, *args, "--resume", "true"))
    with pytest.raises(AssertionError, match="weights differ"):
        assert_same_weights(weights(tmp_path / "full"), weights(resumed), atol=1e-6)


def test_checkpoint_contents_and_pruning(tmp_path):
    out = tmp_path / "run"
    cfg = toy_config(out, 1, "--steps", "30", "--keep_last", "1", "--keep_steps", "[7]")
    assert cfg.fingerprint() == toy_config(out, 1, "--steps", "30").fingerprint()  # the same weights
    train(cfg)
    # 10 pruned, 30 is final/; step 7 (keep_steps: the ablation's mid-stage-II policy) is never pruned
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["step_000007", "step_000020"]
    final = ckpt.final_dir(out)
    assert {p.name for p in (final / "state").iterdir()} >= {
        "model.safetensors",
        "optimizer.bin",
        "scheduler.bin",
        "random_states_0.pkl",
    }
    assert (final / "model" / "model.safetensors").is_file()
    assert "ema_vision.weight" in weights(out)  # the EMA encoder is part of the model state
    state = json.loads((final / "trainer_state.json").read_text())
    assert state["step"] == 30 and state["stage"] == 1 and state["epoch"] == 3  # 64 samples = 8 steps/epoch
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_crash_during_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    """A save that dies half-way publishes nothing; resume uses the previous checkpoint."""
    from curriculum_toy import ToyPolicy

    out = tmp_path / "run"
    original, calls = ToyPolicy.save_pretrained, []

    def dying(self, path):
        calls.append(path)
        if len(calls) == 2:  # the step-20 checkpoint
            original(self, path)
            raise KeyboardInterrupt("killed while saving")
        original(self, path)

    monkeypatch.setattr(ToyPolicy, "save_pretrained", dying)
    with pytest.raises(KeyboardInterrupt):
        train(toy_config(out, 1, "--steps", "30"))
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["step_000010"]
    assert (out / "checkpoints" / ".tmp-step_000020").is_dir()  # the torn write is not a checkpoint
    monkeypatch.setattr(ToyPolicy, "save_pretrained", original)
    result = train(toy_config(out, 1, "--steps", "30", "--resume", "true"))
    assert result.history[0]["step"] == 11
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_resume_dir_from_different_config_is_refused(tmp_path):
    out = tmp_path / "run"
    train(toy_config(out, 1, "--steps", "10"))
    with pytest.raises(
        LaraUserError, match=r"different config.*optim.head_lr: 0.01 there vs 0.02 now.*new --output_dir"
    ):
        train(toy_config(out, 1, "--steps", "10", "--optim.head_lr", "0.02", "--resume", "true"))
    with pytest.raises(LaraUserError, match="already holds a run.*--resume true"):
        train(toy_config(out, 1, "--steps", "10"))
    # operational fields may change on resume
    result = train(toy_config(out, 1, "--steps", "10", "--log_every", "3", "--resume", "true"))
    assert result.history == [] and result.step == 10


def test_stage2_without_stage1_checkpoint(tmp_path):
    with pytest.raises(LaraUserError, match="needs the stage 1 checkpoint.*train stage 1 first"):
        train(toy_config(tmp_path / "s2", 2, "--init_from", str(tmp_path / "nothing")))


def test_dataset_without_annotation(tmp_path):
    with pytest.raises(LaraUserError, match="no CoT annotation 'v7'"):
        train(toy_config(tmp_path / "s1", 1, "--data.annotation", "v7"))


def test_a_configured_loss_that_is_not_computed_fails(tmp_path, monkeypatch):
    from curriculum_toy import ToyPolicy

    forward = ToyPolicy.forward

    def without_visual(self, batch, stage):
        loss, metrics = forward(self, batch, stage)
        metrics.pop("loss/visual_l1")
        return loss, metrics

    monkeypatch.setattr(ToyPolicy, "forward", without_visual)
    with pytest.raises(RuntimeError, match="'visual_l1' is configured on"):
        train(toy_config(tmp_path / "run", 1, "--steps", "2"))


def _fixed_batch_metrics(model_dir, stage: int) -> dict:
    """The policy's loss terms on one fixed batch with fixed noise (the first 32 samples)."""
    from curriculum_toy import ToyDataset, ToyPolicy, collate

    policy = ToyPolicy.from_pretrained(model_dir).eval()
    policy.set_loss_weights({"cot_ce": 1, "action_ce": 1, "visual_l1": 1, "flow": 1})
    policy.set_latent_probability(1.0 if stage == 3 else 0.0)
    batch = collate([ToyDataset(64)[i] for i in range(32)])
    torch.manual_seed(0)
    with torch.no_grad():
        return policy(batch, stage)[1]


def test_stages_chain_and_losses_fall_on_a_fixed_batch(tmp_path):
    """Stage I -> II -> III on the toy: each starts from the previous final checkpoint, the
    latent probability follows the schedule, and each stage's losses fall on a fixed batch."""
    from curriculum_toy import ToyPolicy

    torch.manual_seed(7)
    ToyPolicy(horizon=4).save_pretrained(tmp_path / "init")
    s1 = train(toy_config(tmp_path / "s1", 1, "--steps", "30"))
    s2 = train(toy_config(tmp_path / "s2", 2, "--steps", "30", "--init_from", str(tmp_path / "s1")))
    s3 = train(toy_config(tmp_path / "s3", 3, "--steps", "30", "--init_from", str(tmp_path / "s2" / "final")))
    p = [r["latent_probability"] for r in s2.history]
    assert (
        p[0] == 0.25 and p[-1] == 1.0 and all(a <= b for a, b in zip(p, p[1:]))
    )  # tag_order: SUBTASK from step 0
    assert {r["latent_probability"] for r in s1.history} == {0.0}
    assert {r["latent_probability"] for r in s3.history} == {1.0}
    assert "loss/flow" not in s2.history[0] and "loss/action_ce" not in s3.history[0]
    before = {
        1: tmp_path / "init",
        2: tmp_path / "s1" / "final" / "model",
        3: tmp_path / "s2" / "final" / "model",
    }
    terms = {1: ["action_ce", "visual_l1", "cot_ce"], 2: ["action_ce", "cot_ce"], 3: ["flow"]}
    for stage, run in ((1, "s1"), (2, "s2"), (3, "s3")):
        a = _fixed_batch_metrics(before[stage], stage)
        b = _fixed_batch_metrics(tmp_path / run / "final" / "model", stage)
        for term in terms[stage]:
            assert b[f"loss/{term}"] < 0.8 * a[f"loss/{term}"], (stage, term, a, b)


def test_stage3_from_scratch_needs_no_init_from(tmp_path):
    result = train(
        toy_config(tmp_path / "s3", 3, "--steps", "3", "--init_from", "null", "--from_scratch", "true")
    )
    assert result.step == 3 and "loss/flow" in result.history[0]
    assert ckpt.read_trainer_state(result.final_dir).stage == 3


def test_tensorboard_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(toy_config(tmp_path / "s1", 1, "--steps", "10"))
    events = EventAccumulator(str(tmp_path / "s1" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "loss/total",
        "loss/action_ce",
        "loss/visual_l1",
        "loss/cot_ce",
        "train/latent_probability",
        "train/samples_per_s",
        "lr/group_0",
        "lr/group_1",
        "loss_weight/visual_l1",
    } <= tags
    lrs = [e.value for e in events.Scalars("lr/group_1")]
    assert lrs[0] > lrs[-1] > 0  # cosine decay after warmup is visible


def test_lora_trains_adapters_exports_merged_and_resumes_exactly(tmp_path):
    from curriculum_toy import ToyPolicy
    from safetensors.torch import load_file

    lora = (
        "--lora.enabled",
        "true",
        "--lora.r",
        "2",
        "--lora.target_modules",
        "[q_proj]",
        "--lora.module",
        "backbone",
        "--steps",
        "20",
        "--policy_type",
        "toy-noisy",
    )
    train(toy_config(tmp_path / "full", 1, *lora))
    state = load_file(
        str(tmp_path / "full" / "final" / "state" / "model.safetensors")
    )  # unmerged: resume form
    torch.manual_seed(7)  # the trainer's seed: the same initial base weights
    fresh = ToyPolicy(horizon=4)
    assert torch.equal(state["backbone.q_proj.base_layer.weight"], fresh.backbone.q_proj.weight)  # frozen
    assert not torch.equal(state["action_head.weight"], fresh.action_head.weight)  # heads train
    a, b = state["backbone.q_proj.lora_A.default.weight"], state["backbone.q_proj.lora_B.default.weight"]
    exported = weights(tmp_path / "full")  # merged, plain names: loadable without peft
    assert not any("lora_" in k or "base_layer" in k for k in exported)
    torch.testing.assert_close(
        exported["backbone.q_proj.weight"], fresh.backbone.q_proj.weight + (32 / 2) * b @ a
    )
    ToyPolicy.from_pretrained(tmp_path / "full" / "final" / "model")  # strict load
    resumed = tmp_path / "resumed"
    shutil.copytree(
        tmp_path / "full" / "checkpoints" / "step_000010", resumed / "checkpoints" / "step_000010"
    )
    train(toy_config(resumed, 1, *lora, "--resume", "true"))
    assert_same_weights(weights(tmp_path / "full"), weights(resumed), atol=1e-6)
