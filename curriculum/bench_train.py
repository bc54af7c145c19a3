"""Training throughput (samples/s) and peak memory, per curriculum stage.

One run per stage, chained like the curriculum (stage k starts from stage k-1's final model),
on synthetic samples at the model's image sizes (no dataset needed;
`--overrides '[--data.type=lerobot, --data.root=DIR]'` measures a real one). The first `--warmup`
steps are excluded from the throughput; the median wall and CPU seconds per step are over the
measured steps (CPU seconds of this process: the step's cost, robust to other jobs sharing the
machine). CPU: the tiny preset by default (`--preset small` for the CPU-learning size). GPU: e.g.
the Qwen3-VL-2B architecture (random weights) in bf16 at batch 16 with gradient checkpointing:
    lara bench train --preset qwen3vl-2b --batch_size 16 --gradient_checkpointing true
Peak memory: CUDA max allocated (weights, optimizer, activations) on GPU; on CPU the process's
peak resident set (and its growth during the stage's loop). torch and the trainer are imported
only when the benchmark runs (`--help` stays instant).
"""

from __future__ import annotations

import logging
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)
RESULTS_FILE = "train.json"


@dataclass
class TrainBenchConfig:
    preset: str = "tiny"  # training preset size (curriculum/presets.py: tiny, small, qwen3vl-2b, ...)
    stages: list[int] = field(default_factory=lambda: [1, 2, 3])
    batch_size: int = 8
    steps: int = 8  # measured optimizer steps per stage
    warmup: int = 2  # steps per stage excluded from the throughput
    gradient_checkpointing: bool = False
    out: Path | None = None  # folder for train.json (the results)
    workdir: Path | None = None  # where the chained stage checkpoints go (default: a temp folder)
    overrides: list[str] = field(default_factory=list)  # TrainConfig flags, e.g. [--optim.head_lr=2e-4]

    def __post_init__(self) -> None:
        if self.warmup < 1 or self.steps < 1 or self.batch_size < 1:
            raise LaraUserError("--warmup, --steps and --batch_size must be >= 1")
        if not self.stages or any(k not in (1, 2, 3) for k in self.stages):
            raise LaraUserError(f"--stages {self.stages}: a list of 1, 2, 3")


def bench(
    preset: str,
    stages: list[int],
    batch_size: int,
    steps: int,
    warmup: int,
    gradient_checkpointing: bool,
    workdir: Path,
    extra: list[str],
) -> list[dict]:
    from curriculum.presets import load_train_config
    from curriculum.trainer import resolved_mixed_precision, train

    rows = []
    for k in stages:
        overrides = [
            "--output_dir",
            str(workdir / f"stage{k}"),
            "--steps",
            str(warmup + steps),
            "--batch_size",
            str(batch_size),
            "--grad_accum_steps",
            "1",
            "--save_every",
            str(10**9),
            "--save_state",
            "false",
            "--log_every",
            str(10**9),
            "--progress",
            "false",
            "--model.backbone.gradient_checkpointing",
            str(gradient_checkpointing).lower(),
            "--data.type",
            "synthetic",
            "--data.root",
            str(max(256, batch_size * 4)),
            "--optim.warmup_steps",
            "1",
        ]
        if k > 1:
            overrides += ["--init_from", str(workdir / f"stage{k - 1}")]
        cfg = load_train_config([], [*overrides, *extra], preset=preset, stage=k)
        result = train(cfg)
        times = [r["time"] for r in result.history]
        measured = len(times) - warmup
        sps = (
            measured * batch_size * _world() / (times[-1] - times[warmup - 1])
            if measured > 0 and warmup > 0
            else result.samples_per_s
        )
        step_s = _measured_steps(times, warmup)
        step_cpu_s = _measured_steps([r["cpu_time"] for r in result.history], warmup)
        row = {
            "stage": k,
            "preset": preset,
            "batch_size": batch_size,
            "processes": _world(),
            "measured_steps": measured,
            "samples_per_s": round(sps, 3),
            "s_per_step": round(batch_size * _world() / sps, 4),
            "median_s_per_step": round(statistics.median(step_s), 4) if step_s else None,
            "median_cpu_s_per_step": round(statistics.median(step_cpu_s), 4) if step_cpu_s else None,
            "peak_memory_gib": round(result.peak_total_memory_bytes / 2**30, 3),
            "peak_memory_growth_gib": round(result.peak_memory_bytes / 2**30, 3),
            "gradient_checkpointing": gradient_checkpointing,
            "mixed_precision": resolved_mixed_precision(cfg),
            "final_loss": round(result.history[-1]["loss"], 4),
        }
        rows.append(row)
        log.info("stage %d: %.2f samples/s, peak memory %.2f GiB", k, sps, row["peak_memory_gib"])
    return rows


def _measured_steps(clock: list[float], warmup: int) -> list[float]:
    """Per-step durations of the steps after the warm-up, from a clock read at the end of every step."""
    return [b - a for a, b in zip(clock[warmup - 1 :], clock[warmup:])] if warmup > 0 else []


def _world() -> int:
    import torch

    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    return (
        f"CPU {platform.processor() or platform.machine()} x {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}"
    )
