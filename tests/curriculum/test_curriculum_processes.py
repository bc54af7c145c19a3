"""Subprocess tests: a run killed with SIGKILL resumes exactly; a 2-process DDP run (gloo on
CPU, `accelerate launch`) equals the single-process run with the same global batch."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from curriculum_testing import REPO, assert_same_weights, toy_config, weights

from curriculum import checkpointing as ckpt
from curriculum.trainer import train

SCRIPT = Path(__file__).parent / "curriculum_toy_train.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_sigkill_then_resume_is_exact(tmp_path):
    args = [
        "--preset",
        "toy",
        "--stage",
        "1",
        "--policy_type",
        "toy-noisy",
        "--steps",
        "40",
        "--save_every",
        "5",
        "--data.root",
        "40",
    ]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args, "--output_dir", str(killed)],
        env={**ENV, "TOY_STEP_SLEEP": "0.05"},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step_000015").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not ckpt.final_dir(killed).exists()  # it really died mid-run
    done = ckpt.latest_checkpoint(killed)
    assert 15 <= ckpt.read_trainer_state(done).step < 40
    resumed = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--output_dir", str(killed), "--resume", "true"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    train(toy_config(tmp_path / "full", 1, *args[4:]))  # uninterrupted, in-process
    assert_same_weights(weights(tmp_path / "full"), weights(killed), atol=1e-6)


def test_two_process_ddp_matches_single_process(tmp_path):
    common = ["--preset", "toy", "--stage", "1", "--steps", "6", "--save_every", "3"]
    ddp = tmp_path / "ddp"
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "ddp_cpu.yaml"),
        str(SCRIPT),
    ]
    run = subprocess.run(
        [*launch, *common, "--batch_size", "4", "--output_dir", str(ddp)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("stage 1 done") == 1  # logs come from rank 0 only
    state = ckpt.final_dir(ddp) / "state"
    # two processes really ran: one RNG state per rank
    assert (state / "random_states_0.pkl").is_file() and (state / "random_states_1.pkl").is_file()
    assert ckpt.read_trainer_state(ckpt.final_dir(ddp)).samples_seen == 6 * 8
    train(toy_config(tmp_path / "single", 1, "--steps", "6", "--save_every", "3", "--batch_size", "8"))
    assert_same_weights(weights(tmp_path / "single"), weights(ddp), atol=1e-5)
