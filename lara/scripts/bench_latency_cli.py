"""`lara bench latency` settings and entry point; the measurement is lara/scripts/bench_latency.py
(torch, the model), imported only when the benchmark runs so that `--help` stays instant.

    lara bench latency --reps 10 --warmup 2 --threads 1 --steps 4 --breakdown --out DIR
    lara bench latency --preset qwen3vl-2b --device cuda --stage3_only \
        --overrides '[--inference.compile=true, --inference.cuda_graph=true]'
    lara bench latency --explicit_checkpoint RUN/stage1 --latent_checkpoint RUN/stage3   # trained checkpoints
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lara.utils.config_parsing import parse_config
from lara.utils.errors import LaraUserError

DTYPES = ("float32", "bfloat16", "float16")
ATTENTION = ("sdpa", "eager", "flash_attention_2")


@dataclass
class LatencyBenchConfig:
    preset: str = "tiny"  # configs/model preset name or YAML path
    device: str = "cpu"
    dtype: str | None = None  # float32 | bfloat16 | float16 (None: float32 on CPU, bfloat16 on CUDA)
    attn: str = "sdpa"  # sdpa | eager | flash_attention_2
    steps: int = 8  # expert Euler steps per chunk
    cot_tokens: int = 80  # generated CoT length for the explicit path
    reps: int = 5
    warmup: int = 1
    threads: int = 0  # torch CPU threads (0: torch's default)
    stage3_only: bool = False  # time only the latent path (large presets)
    breakdown: bool = False  # also time the latent path's parts (pre-processing, prefill, Euler steps, post)
    out: Path | None = None  # folder for latency.json
    # trained checkpoints instead of a random model: stage-I run (explicit CoT) and stage-III run (latent)
    explicit_checkpoint: Path | None = None
    latent_checkpoint: Path | None = None
    overrides: list[str] = field(default_factory=list)  # LaraConfig flags, e.g. [--expert.num_layers=16]

    def __post_init__(self) -> None:
        if self.dtype is not None and self.dtype not in DTYPES:
            raise LaraUserError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.attn not in ATTENTION:
            raise LaraUserError(f"--attn {self.attn!r}: choose one of {', '.join(ATTENTION)}")
        if self.reps < 1 or self.warmup < 0 or self.steps < 1 or self.cot_tokens < 1:
            raise LaraUserError("--reps, --steps and --cot_tokens must be >= 1, --warmup >= 0")
        if (self.explicit_checkpoint is None) != (self.latent_checkpoint is None):
            raise LaraUserError(
                "pass both --explicit_checkpoint (stage I) and --latent_checkpoint (stage III), or neither"
            )

    @property
    def torch_dtype(self) -> str:
        """`dtype`, or the device's default when unset."""
        return self.dtype or ("bfloat16" if self.device.startswith("cuda") else "float32")


def main(argv: list[str]) -> int:
    cfg = parse_config(LatencyBenchConfig, argv, prog="lara bench latency")
    from lara.scripts import bench_latency

    if cfg.explicit_checkpoint is not None:
        result = bench_latency.checkpoint_latency(
            cfg.explicit_checkpoint, cfg.latent_checkpoint, None, cfg.reps, cfg.warmup, cfg.threads
        )
        print(bench_latency.checkpoint_table(result))
    else:
        result = bench_latency.run(cfg)
        print(bench_latency.table(result))
        if "breakdown" in result:
            print(bench_latency.breakdown_table(result, cfg.steps))
    if cfg.out is not None:
        cfg.out.mkdir(parents=True, exist_ok=True)
        path = cfg.out / "latency.json"
        path.write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")
    return 0
