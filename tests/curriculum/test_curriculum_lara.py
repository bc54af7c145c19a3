"""The real stack: LaraPolicy (tiny preset) on a tiny synthetic LeRobot dataset with a CoT
annotation, through all three stages; each stage's losses fall on a fixed batch."""

import os
import tempfile

os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="lara-test-hf-datasets-"))

import pytest
import torch
from curriculum_testing import REPO

from curriculum.builders import normalize_metrics
from curriculum.presets import load_train_config
from curriculum.trainer import train
from lara.utils.errors import LaraUserError


def _cot_frames(subtask):
    """`frames_of` for write_annotated_dataset: `subtask(episode, t)` is the SUBTASK text."""
    return lambda ep, t: [
        ("SUBTASK", subtask(ep.episode_index, t)),
        ("MOVE", "move down"),
        ("GRIPPER", "open" if t < 6 else "close"),
    ]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory, write_annotated_dataset):
    """3 episodes of 12 frames, annotated as run "v1"."""
    subtask = _cot_frames(lambda e, t: "grasp the bowl" if t < 6 else "place the bowl")
    return write_annotated_dataset(tmp_path_factory.mktemp("data") / "tiny", "v1", subtask)


WORDS = [
    "grasp",
    "the",
    "black",
    "bowl",
    "between",
    "the",
    "plate",
    "and",
    "the",
    "wooden",
    "cabinet",
    "on",
    "the",
    "left",
]


@pytest.fixture(scope="module")
def varied_cot_dataset(tmp_path_factory, write_annotated_dataset):
    """CoT of 1 to 14 words: every micro-batch holds a different number of CoT tokens."""
    subtask = _cot_frames(lambda e, t: " ".join(WORDS[: 1 + (5 * e + 3 * t) % len(WORDS)]))
    return write_annotated_dataset(tmp_path_factory.mktemp("data") / "varied", "v1", subtask)


def _cfg(stage, out, dataset, *extra):
    return load_train_config(
        [],
        preset="tiny",
        stage=stage,
        overrides=[
            "--output_dir",
            str(out),
            "--data.root",
            str(dataset),
            "--batch_size",
            "4",
            "--progress",
            "false",
            "--save_every",
            "100",
            "--optim.warmup_steps",
            "2",
            "--optim.head_lr",
            "3e-3",
            "--optim.backbone_lr",
            "1e-3",
            *extra,
        ],
    )


def _fixed_batch(policy_or_dir, dataset, stage: int) -> dict:
    from data_pipeline.samples import collate_samples
    from lara.modeling_lara import LaraPolicy

    policy = (
        policy_or_dir
        if isinstance(policy_or_dir, torch.nn.Module)
        else LaraPolicy.from_pretrained(policy_or_dir)
    )
    policy.eval().set_latent_probability(1.0)
    batch = collate_samples([dataset[i] for i in range(0, 36, 3)])  # 12 fixed frames of all episodes
    torch.manual_seed(0)
    with torch.no_grad():
        metrics = normalize_metrics(policy(batch, stage)[1])
    return {k.removeprefix("loss/"): v for k, v in metrics.items()}


@pytest.mark.slow
def test_three_stages_on_the_real_policy_losses_fall(tiny_dataset, tmp_path):
    from accelerate.utils import set_seed

    from curriculum.lara_adapter import build_lara_policy, build_lerobot_dataset

    c1 = _cfg(1, tmp_path / "s1", tiny_dataset, "--steps", "25")
    dataset, _ = build_lerobot_dataset(c1)
    set_seed(c1.seed)  # the trainer's initial model
    before = _fixed_batch(build_lara_policy(c1, dataset, None), dataset, 1)
    r1 = train(c1)
    after1 = _fixed_batch(tmp_path / "s1" / "final" / "model", dataset, 1)
    # eval mode, fixed batch, fixed seed: deterministic, so any drop is real; margins against drift
    for term, margin in (("cot_ce", 0.9), ("action_ce", 0.97), ("visual_l1", 0.9)):
        assert after1[term] < margin * before[term], (term, before, after1)

    r2 = train(_cfg(2, tmp_path / "s2", tiny_dataset, "--steps", "20", "--init_from", str(tmp_path / "s1")))
    p = [r["latent_probability"] for r in r2.history]
    assert p[0] == 0.25 and p[-1] == 1.0 and p == sorted(p)  # tag_order: SUBTASK latent from the first step
    assert r2.history[-1]["latent/fraction"] == 1.0  # the final stretch: every segment latent
    before2 = _fixed_batch(tmp_path / "s1" / "final" / "model", dataset, 2)  # all latent (p = 1)
    after2 = _fixed_batch(tmp_path / "s2" / "final" / "model", dataset, 2)
    assert after2["action_ce"] < 0.97 * before2["action_ce"], (before2, after2)
    assert after2["visual_l1"] < 0.9 * before2["visual_l1"], (before2, after2)

    r3 = train(_cfg(3, tmp_path / "s3", tiny_dataset, "--steps", "25", "--init_from", str(tmp_path / "s2")))
    before3 = _fixed_batch(tmp_path / "s2" / "final" / "model", dataset, 3)
    after3 = _fixed_batch(tmp_path / "s3" / "final" / "model", dataset, 3)
    assert after3["flow"] < 0.8 * before3["flow"], (before3, after3)
    assert "action_ce" not in r3.history[0] and "loss/action_ce" not in r3.history[0]
    assert r3.history[0]["loss/visual_l1"] > 0 and r1.history[0]["loss/visual_l1"] > 0


def test_stage1_real_policy_two_steps_and_bad_inputs(tiny_dataset, tmp_path):
    result = train(_cfg(1, tmp_path / "s1", tiny_dataset, "--steps", "2"))
    first = result.history[0]
    assert {"loss/cot_ce", "loss/action_ce", "loss/visual_l1"} <= first.keys()
    assert (tmp_path / "s1" / "final" / "model" / "fast_tokenizer.json").is_file()  # fit before stage I
    with pytest.raises(LaraUserError, match="no annotation run 'v9'.*lara annotate"):
        train(_cfg(1, tmp_path / "x", tiny_dataset, "--data.annotation", "v9"))
    with pytest.raises(LaraUserError, match="needs the stage 2 checkpoint"):
        train(_cfg(3, tmp_path / "y", tiny_dataset, "--init_from", str(tmp_path / "nothing")))
    with pytest.raises(LaraUserError, match="no dataset: set --data.root"):
        train(load_train_config(preset="tiny", stage=1, overrides=["--output_dir", str(tmp_path / "z")]))


def test_latest_annotation_needs_a_complete_run(tmp_path):
    from curriculum.lara_adapter import resolve_annotation

    cfg = load_train_config(preset="tiny", stage=1, overrides=["--data.root", str(tmp_path)])
    with pytest.raises(LaraUserError, match="no complete CoT annotation run.*lara annotate"):
        resolve_annotation(cfg)
    stage3 = load_train_config(preset="tiny", stage=3, overrides=["--data.root", str(tmp_path)])
    assert resolve_annotation(stage3) is None  # stage III reads no CoT
    no_cot = load_train_config(
        preset="tiny", stage=1, overrides=["--data.root", str(tmp_path), "--data.annotation", "null"]
    )
    with pytest.raises(LaraUserError, match="data.annotation is null"):
        resolve_annotation(no_cot)


@pytest.mark.slow
def test_real_policy_sigkill_resume_is_exact(tiny_dataset, tmp_path):
    """Stage II of the real tiny policy (random latent draws consume the RNG) killed with SIGKILL
    after its step-4 checkpoint, resumed, ends bit-identical to an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    from curriculum_testing import assert_same_weights, weights

    train(_cfg(1, tmp_path / "s1", tiny_dataset, "--steps", "2"))
    args = [
        "train",
        "--preset",
        "tiny",
        "--stage",
        "2",
        "--data.root",
        str(tiny_dataset),
        "--init_from",
        str(tmp_path / "s1"),
        "--steps",
        "10",
        "--save_every",
        "4",
        "--batch_size",
        "4",
        "--progress",
        "false",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lara.scripts.cli", *args, "--output_dir", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (tmp_path / "killed" / "checkpoints" / "step_000004").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "final").exists()
    subprocess.run([*cmd, "--resume", "true"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run(
        [sys.executable, "-m", "lara.scripts.cli", *args, "--output_dir", str(tmp_path / "full")],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "killed"), atol=1e-6)


def _max_weight_difference(run_a, run_b) -> float:
    from curriculum_testing import weights

    a, b = weights(run_a), weights(run_b)
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_accumulation_equals_large_batch_on_the_real_policy(varied_cot_dataset, tmp_path, monkeypatch):
    """Stage I (no random draws): batch 4 x accumulation 2 must give the weights of batch 8 although
    the micro-batches hold different numbers of CoT and action tokens (a mean of micro-batch means
    is not the batch's token mean). AdamW eps 1e-6: its first steps divide by |g| + eps, which turns
    float summation noise of gradient entries near 1e-8 into ~lr-sized differences at eps 1e-8."""
    args = ("--steps", "3", "--optim.eps", "1e-6")
    train(_cfg(1, tmp_path / "b8", varied_cot_dataset, *args, "--batch_size", "8"))
    import curriculum.batches

    counts, step_loss_norm = [], curriculum.batches.step_loss_norm
    monkeypatch.setattr(
        curriculum.batches,
        "step_loss_norm",
        lambda items, acc: counts.append(items) or step_loss_norm(items, acc),
    )
    acc = ("--batch_size", "4", "--grad_accum_steps", "2")
    train(_cfg(1, tmp_path / "b4x2", varied_cot_dataset, *args, *acc))
    assert len(counts) == 3 and all(c[0]["cot_ce"] != c[1]["cot_ce"] for c in counts), counts  # really differ
    difference = _max_weight_difference(tmp_path / "b8", tmp_path / "b4x2")
    print(f"max weight difference, batch 8 vs 4 x 2: {difference:.3g}")
    assert difference <= 1e-6
    # the control: micro-batch means (no step-wide normalization) give a different update
    monkeypatch.setattr(curriculum.batches, "step_loss_norm", lambda items, accelerator: {})
    train(_cfg(1, tmp_path / "means", varied_cot_dataset, *args, *acc))
    control = _max_weight_difference(tmp_path / "b8", tmp_path / "means")
    print(f"max weight difference, batch 8 vs 4 x 2 with micro-batch means: {control:.3g}")
    assert control > 100 * max(difference, 1e-7)


def test_accumulation_and_two_ddp_ranks_equal_large_batch(varied_cot_dataset, tmp_path):
    """2 processes (gloo) x batch 2 x accumulation 2 give the weights of one process with batch 8:
    the token counts are summed over micro-batches and ranks (see curriculum.batches.step_loss_norm)."""
    import subprocess
    import sys

    args = ["--steps", "2", "--optim.eps", "1e-6", "--log_every", "1"]
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "ddp_cpu.yaml"),
        "-m",
        "lara.scripts.cli",
        "train",
    ]
    cfg = _cfg(1, tmp_path / "ddp", varied_cot_dataset, *args, "--batch_size", "2", "--grad_accum_steps", "2")
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(cfg.to_yaml())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [*launch, "--config", str(cfg_file)]
    run = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "ddp" / "final" / "state" / "random_states_1.pkl").is_file()  # two ranks really ran
    train(_cfg(1, tmp_path / "b8", varied_cot_dataset, *args, "--batch_size", "8"))
    difference = _max_weight_difference(tmp_path / "b8", tmp_path / "ddp")
    print(f"max weight difference, batch 8 vs 2 ranks x 2 x 2: {difference:.3g}")
    assert difference <= 1e-6


def test_output_vocab_seeded_from_the_whole_annotation(tiny_dataset, tmp_path, caplog):
    """Every CoT label id of the annotation is in the observed output vocabulary before training
    (all ranks build it alike), and the trained checkpoint holds exactly that set."""
    import json
    import logging

    from curriculum.lara_adapter import build_lara_policy, build_lerobot_dataset, served_cots

    cfg = _cfg(1, tmp_path / "s1", tiny_dataset, "--steps", "2")
    dataset, _ = build_lerobot_dataset(cfg)
    policy = build_lara_policy(cfg, dataset, None)
    vocab, tok = policy.output_vocab, policy.tokenizer
    assert not vocab.full and vocab.seeded
    cots = served_cots(dataset)
    assert len(cots) == len(dataset) == 36 and all(cots)
    cot_ids = {i for cot in cots for tag, text in cot for i in tok.encode(f"{tag}: {text.strip()}\n")}
    assert cot_ids and cot_ids <= set(vocab.ids)
    seeded = list(vocab.ids)
    with caplog.at_level(logging.WARNING, logger="lara.output_vocab"):
        train(cfg)
    assert "output vocabulary" not in caplog.text  # forward's growth found nothing to add
    saved = json.loads((tmp_path / "s1" / "final" / "model" / "output_vocab.json").read_text())
    assert saved["ids"] == seeded


@pytest.mark.slow
def test_stage2_accumulation_keeps_the_latent_draws_of_one_large_batch(varied_cot_dataset, tmp_path):
    """Stage II draws latent segments while the trainer prepares a step's micro-batches, in the
    order of one big batch: batch 4 x accumulation 2 still gives the weights of batch 8."""
    train(_cfg(1, tmp_path / "s1", varied_cot_dataset, "--steps", "2"))
    args = ("--steps", "4", "--optim.eps", "1e-6", "--init_from", str(tmp_path / "s1"))
    big = train(_cfg(2, tmp_path / "b8", varied_cot_dataset, *args, "--batch_size", "8"))
    acc_args = ("--batch_size", "4", "--grad_accum_steps", "2")
    acc = train(_cfg(2, tmp_path / "b4x2", varied_cot_dataset, *args, *acc_args))
    fractions = [r["latent/fraction"] for r in big.history]
    assert 0 < fractions[2] < 1  # some segments latent, some not
    assert fractions == pytest.approx([r["latent/fraction"] for r in acc.history])
    assert _max_weight_difference(tmp_path / "b8", tmp_path / "b4x2") <= 1e-6
