"""Precision of training: fp32 master weights with bf16 compute by default, bf16 storage by choice.

Why fp32 master weights: AdamW's first steps move every weight by about the learning rate, and a
weight stored in bfloat16 only changes when the update exceeds half its bf16 step (2^-8 of its
magnitude). At the Qwen3-VL presets' backbone lr 1e-5 that rounds away the update of every weight
larger than ~0.003: one step of plain AdamW over a bf16 backbone changed 15.5% of its entries
(issue 26). So trainable weights are stored in float32 (`model.backbone.dtype: float32` in every
training preset) and the forward computes in bf16 on CUDA through accelerate's autocast (or the
sharding engine's mixed-precision policy: FSDP2 keeps fp32 shards and gathers bf16 copies;
DeepSpeed ZeRO-2 keeps fp32 partitions of the master weights and optimizer state).

The memory-saving switch: `--model.backbone.dtype bfloat16` stores the weights in bf16 (12 instead
of 16 bytes per trainable parameter with Adam's fp32 moments). The optimizer then computes each
update in fp32 and writes the weight back with stochastic rounding: it rounds up with probability
equal to the remainder's share of a bf16 step, so the expected weight follows the fp32 trajectory
and small updates move weights on average instead of vanishing (`StochasticRoundingAdamW`;
measured in tests/curriculum/test_master_weights.py). float16 storage cannot be trained this way
(its bit pattern is not a truncated float32) and is refused.
"""

from __future__ import annotations

import logging
import math

import torch

from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)

LOW_PRECISION = (torch.bfloat16, torch.float16)


def resolved_mixed_precision(cfg) -> str:
    """The compute precision accelerate autocasts to: `auto` is bf16 on CUDA, none on CPU."""
    if cfg.mixed_precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return cfg.mixed_precision


def trainable_storage(groups: list[dict]) -> dict[torch.dtype, int]:
    """Trainable entries per storage dtype over optimizer param groups."""
    counts: dict[torch.dtype, int] = {}
    for group in groups:
        for p in group["params"]:
            counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    return counts


def describe(counts: dict[torch.dtype, int], mixed_precision: str) -> str:
    """One log line: how many trainable entries are stored in what, and what the forward computes in."""
    stored = ", ".join(f"{n / 1e6:.1f}M {str(dt).removeprefix('torch.')}" for dt, n in counts.items())
    compute = {"no": "the storage dtype", "bf16": "bf16 (autocast)", "fp16": "fp16 (autocast)"}
    return f"trainable weights: {stored}; compute in {compute.get(mixed_precision, mixed_precision)}"


def check_storage(counts: dict[torch.dtype, int], sharded: bool) -> bool:
    """True when some trainable weights are stored in bf16 (stochastic rounding needed); raises for
    the storage choices that cannot train."""
    if counts.get(torch.float16):
        raise LaraUserError(
            f"{counts[torch.float16] / 1e6:.1f}M trainable weights are stored in float16, which loses "
            "small AdamW updates and has no stochastic-rounding path here: train with "
            "--model.backbone.dtype float32 (fp32 master weights, bf16 compute on GPU) or bfloat16"
        )
    low = counts.get(torch.bfloat16, 0)
    if low and sharded:
        raise LaraUserError(
            "bf16 weight storage (--model.backbone.dtype bfloat16) is for one process or DDP; under "
            "FSDP/DeepSpeed keep float32 weights: the engine shards the fp32 master copy and the "
            "optimizer state across GPUs and computes in bf16 (configs/accelerate/)"
        )
    return bool(low)


def stochastic_round_to_bf16(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """float32 -> bfloat16, rounding up with probability (remainder / bf16 step): E[result] = x.

    bf16 is the high 16 bits of a float32, so adding a uniform random integer in [0, 2^16) to the
    bit pattern and clearing the low 16 bits rounds the magnitude up exactly that often (sign and
    magnitude are separate bits, so negative values round symmetrically).
    """
    bits = x.contiguous().view(torch.int32)
    noise = torch.randint(0, 1 << 16, bits.shape, dtype=torch.int32, device=x.device, generator=generator)
    rounded = (bits + noise) & -65536  # -65536 == 0xFFFF0000 as int32: keep the top 16 bits
    return rounded.view(torch.float32).to(torch.bfloat16)  # exact: the low bits are zero


class StochasticRoundingAdamW(torch.optim.Optimizer):
    """AdamW (decoupled weight decay, as torch.optim.AdamW) for weights stored in bf16.

    Moments are float32; each update is computed in float32 on an fp32 view of the weight and
    written back with stochastic rounding. float32 parameters in the same groups are updated in
    place with the same arithmetic (no rounding). The random bits come from torch's global RNG,
    which checkpoints save per rank, so a resumed run stays exact.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2) -> None:
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid AdamW hyper-parameters lr={lr} betas={betas} eps={eps}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                t = int(state["step"].item())
                grad = p.grad.float()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
                w = p.float() if p.dtype != torch.float32 else p  # p itself: updated in place
                w.mul_(1 - lr * wd)
                w.addcdiv_(m, denom, value=-lr / (1 - beta1**t))
                if p.dtype == torch.bfloat16:
                    p.copy_(stochastic_round_to_bf16(w))
        return loss


def adamw(groups: list[dict], o, stochastic_rounding: bool) -> torch.optim.Optimizer:
    """torch's AdamW for fp32 master weights; the stochastic-rounding AdamW for bf16 storage."""
    kwargs = {"betas": (o.beta1, o.beta2), "eps": o.eps, "weight_decay": o.weight_decay}
    if stochastic_rounding:
        return StochasticRoundingAdamW(groups, **kwargs)
    return torch.optim.AdamW(groups, **kwargs)
