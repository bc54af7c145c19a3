"""FSDP2 on CPU (gloo, 2 processes, `accelerate launch` with configs/accelerate/fsdp_cpu.yaml) on the
real LaRA policy (tiny preset, synthetic samples): the same losses and weights as one process with
the same global batch, a consolidated `model/` that `LaraPolicy.from_pretrained` loads, a sharded
`state/` (one shard file per rank) that resumes bit-exactly, and the LoRA path.

Slow: every 2-process launch starts two interpreters that import torch + transformers and build the
model (about a minute on the 2-core CI machine), and the module runs three launches.
"""

import os
import shutil
import subprocess
import sys

import pytest
import torch
from curriculum_testing import REPO, assert_same_weights, weights

from curriculum import checkpointing as ckpt
from curriculum.presets import load_train_config
from curriculum.trainer import train

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _cfg(out, *extra):
    # Stage I draws nothing at random, so 2 ranks x batch 2 must equal 1 process x batch 4. AdamW
    # eps 1e-6: at 1e-8 its first steps turn float summation noise in tiny gradient entries into
    # lr-sized differences (see test_curriculum_lara.py).
    return load_train_config(
        [],
        preset="tiny",
        stage=1,
        overrides=[
            "--output_dir",
            str(out),
            "--data.type",
            "synthetic",
            "--data.root",
            "64",
            "--progress",
            "false",
            "--log_every",
            "1",
            "--optim.eps",
            "1e-6",
            "--optim.warmup_steps",
            "1",
            *extra,
        ],
    )


def _launch_fsdp(cfg, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    cfg_file = tmp_path / f"{cfg.output_dir.replace('/', '_')}.yaml"
    cfg_file.write_text(cfg.to_yaml())
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "fsdp_cpu.yaml"),
        "-m",
        "lara.scripts.cli",
        "train",
        "--config",
        str(cfg_file),
        *extra,
    ]
    run = subprocess.run(cmd, check=False, env=ENV, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "FSDP2 on CPU (gloo)" in run.stderr  # the sharded engine really ran, not DDP
    return run


def _tensorboard_losses(run_dir) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return [e.value for e in events.Scalars("loss/total")]


def _assert_sharded_state(state_dir) -> None:
    """accelerate's FSDP SHARDED_STATE_DICT: one distributed-checkpoint file per rank for the model
    and for the optimizer, no full copy."""
    for part in ("pytorch_model_fsdp_0", "optimizer_0"):
        assert sorted(p.name for p in (state_dir / part).glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert not (state_dir / "model.safetensors").exists()


def _loaded_equals_saved(run_dir) -> None:
    """`LaraPolicy.from_pretrained` of the consolidated export holds exactly the saved tensors."""
    from lara.modeling_lara import LaraPolicy

    saved = weights(run_dir)
    assert not any("lora_" in k or "base_layer" in k for k in saved)  # loads without peft
    policy = LaraPolicy.from_pretrained(str(run_dir / "final"))
    state = policy.state_dict()
    for key, value in saved.items():
        assert torch.equal(state[key], value), key


def test_fsdp_two_processes_match_one_and_resume_exactly(tmp_path):
    steps = ["--steps", "4", "--save_every", "2"]
    fsdp = _cfg(tmp_path / "fsdp", *steps, "--batch_size", "2")
    _launch_fsdp(fsdp, tmp_path)
    final = ckpt.final_dir(tmp_path / "fsdp")
    _assert_sharded_state(final / "state")
    assert ckpt.read_trainer_state(final).samples_seen == 4 * 4  # two ranks x batch 2 per step

    single = train(_cfg(tmp_path / "single", *steps, "--batch_size", "4"))
    one = [r["loss"] for r in single.history]
    two = _tensorboard_losses(tmp_path / "fsdp")
    print(f"losses: one process {one}, FSDP x 2 {two}")
    assert len(two) == 4 and all(abs(a - b) <= 1e-4 * max(1.0, abs(a)) for a, b in zip(one, two, strict=True))
    assert_same_weights(weights(tmp_path / "single"), weights(tmp_path / "fsdp"), atol=1e-5)
    _loaded_equals_saved(tmp_path / "fsdp")

    # resume from the sharded step-2 state: the same final weights, bit for bit
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "fsdp", resumed)
    shutil.rmtree(resumed / "final")
    assert ckpt.read_trainer_state(ckpt.latest_checkpoint(resumed)).step == 2
    cfg = _cfg(resumed, *steps, "--batch_size", "2")
    run = _launch_fsdp(cfg, tmp_path, "--resume", "true")
    assert "resumed" in run.stderr
    assert_same_weights(weights(tmp_path / "fsdp"), weights(resumed), atol=0.0)


def test_fsdp_lora_matches_one_process_and_exports_merged_weights(tmp_path):
    lora = ["--steps", "2", "--save_every", "100", "--lora.enabled", "true", "--lora.dropout", "0"]
    lora += ["--optim.backbone_lr", "1e-3"]  # adapters must move measurably in 2 steps
    _launch_fsdp(_cfg(tmp_path / "fsdp", *lora, "--batch_size", "2"), tmp_path)
    _assert_sharded_state(ckpt.final_dir(tmp_path / "fsdp") / "state")
    train(_cfg(tmp_path / "single", *lora, "--batch_size", "4"))
    merged = weights(tmp_path / "fsdp")
    assert_same_weights(weights(tmp_path / "single"), merged, atol=1e-5)
    _loaded_equals_saved(tmp_path / "fsdp")
    # the frozen base plus the merged adapters: q_proj moved away from its initial value, which a
    # run with a zero backbone lr keeps (same seed: same initial weights)
    train(_cfg(tmp_path / "init", "--steps", "1", "--optim.backbone_lr", "0"))
    initial = weights(tmp_path / "init")
    key = next(k for k in merged if k.endswith("layers.0.self_attn.q_proj.weight"))
    assert (merged[key] - initial[key]).abs().max() > 1e-5, "the LoRA update is missing from model/"
