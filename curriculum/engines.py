"""The sharding engines under the trainer (accelerate FSDP2, DeepSpeed ZeRO-2): what accelerate
does not do for us.

1. FSDP on CPU (tests). accelerate 1.15 has no CPU FSDP: with no CUDA it makes processes started
   by `accelerate launch` a MULTI_CPU (gloo) group and ignores the FSDP plugin. torch's FSDP2
   (`fully_shard`) itself runs on CPU with gloo, so when the launch asked for FSDP
   (ACCELERATE_USE_FSDP=true, set by configs/accelerate/fsdp_cpu.yaml) and there is no CUDA,
   `promote_to_fsdp_on_cpu` switches accelerate's process state to its FSDP type, with the plugin
   read from the same environment. Everything after that (prepare, sharded save_state/load_state,
   get_state_dict) is accelerate's own FSDP2 code: the CPU test covers the path the GPUs take.
   On CUDA nothing is changed: accelerate picks FSDP itself.
2. The consolidated export. `model/` must load with `LaraPolicy.from_pretrained` whatever engine
   wrote it: under FSDP the module holds shards, so the full state dict is gathered (a collective
   on every rank; rank 0 receives it), and LoRA adapters are merged into it arithmetically (peft's
   in-place merge does not apply to sharded DTensors).
"""

from __future__ import annotations

import logging
import os

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType

log = logging.getLogger(__name__)


def fsdp_requested() -> bool:
    """`accelerate launch` with an FSDP config exports ACCELERATE_USE_FSDP=true to every process."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def promote_to_fsdp_on_cpu(accelerator: Accelerator, mixed_precision: str) -> None:
    """Make a CPU (gloo) process group run accelerate's FSDP2 path; see the module docstring."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    if accelerator.distributed_type != DistributedType.MULTI_CPU:
        raise RuntimeError(f"FSDP on CPU needs a gloo process group; have {accelerator.distributed_type}")
    plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables `accelerate launch` set
    if plugin.fsdp_version != 2:
        raise RuntimeError("FSDP on CPU is set up for fsdp_version 2 (fully_shard) only")
    if mixed_precision != "no":
        plugin.set_mixed_precision(mixed_precision)
    # accelerate keeps the process state in two shared dicts; AcceleratorState() re-reads the
    # partial one, so both must say FSDP (accelerate itself does the same on GPUs)
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    state = AcceleratorState()
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    log.info("FSDP2 on CPU (gloo): accelerate's FSDP path on %d processes", accelerator.num_processes)


def is_fsdp(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.FSDP


def gathered_state_dict(accelerator: Accelerator, model) -> dict[str, torch.Tensor] | None:
    """The full (unsharded) state dict of an FSDP model on the main process, None elsewhere and
    when the model is not sharded. A collective: every rank must call it."""
    if not is_fsdp(accelerator):
        return None
    full = accelerator.get_state_dict(model)  # FSDP2: full_state_dict, offloaded to CPU on rank 0
    if not accelerator.is_main_process:
        return None
    # Gathered tensors can be views into one larger buffer, which safetensors refuses to save;
    # give each its own storage, once per distinct tensor so tied weights stay tied (one copy saved).
    own: dict[tuple, torch.Tensor] = {}
    for key, value in full.items():
        alias = (value.data_ptr(), tuple(value.shape), value.stride(), value.dtype)
        if alias not in own:
            own[alias] = value.detach().clone()
        full[key] = own[alias]
    # tied parameters (token embedding = LM head) arrive as two copies: make them one tensor again,
    # so safetensors keeps one name, as it does for an unsharded model
    first: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if name in full:
            full[name] = full[first.setdefault(id(param), name)]
    return full


def merge_lora_state_dict(
    full: dict[str, torch.Tensor], scaling: dict[str, float]
) -> dict[str, torch.Tensor]:
    """A LoRA-free state dict: every `<layer>.base_layer.weight` replaced by `<layer>.weight` =
    W + scaling * B @ A, adapters dropped; what peft's merge does, on plain tensors.

    `scaling`: layer prefix (`...q_proj`) -> alpha / r of that layer's adapter.
    """
    merged: dict[str, torch.Tensor] = {}
    for key, value in full.items():
        if ".lora_" in key:
            continue
        if ".base_layer." not in key:
            merged[key] = value
            continue
        prefix, _, tail = key.partition(".base_layer.")
        if tail == "weight" and prefix in scaling:
            a = full[f"{prefix}.lora_A.default.weight"].float()  # (r, in)
            b = full[f"{prefix}.lora_B.default.weight"].float()  # (out, r)
            value = (value.float() + scaling[prefix] * (b @ a)).to(value.dtype)  # (out, in)
        merged[f"{prefix}.{tail}"] = value
    return merged


def lora_scaling(policy) -> dict[str, float]:
    """Layer prefix (in the policy's state-dict names) -> the adapter's scaling, for every LoRA layer."""
    from peft.tuners.lora import LoraLayer

    return {
        name: float(module.scaling["default"])
        for name, module in policy.named_modules()
        if isinstance(module, LoraLayer) and "default" in module.scaling
    }


def complete_optimizer_state(optimizer) -> None:
    """Give every parameter of a torch AdamW its state before a sharded save.

    A parameter that has not had a gradient yet (stage I's latent table) has no AdamW state, and
    torch's distributed checkpoint then saves no entry for it; on load it creates state for every
    parameter of the fresh optimizer and refuses the missing entries. The state AdamW creates
    lazily on the first step is step 0 with zero moments, so writing exactly that ahead of time
    changes no update: the resumed run stays bit-exact.
    """
    opt = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it
    if type(opt) is not torch.optim.AdamW or any(g.get("amsgrad") for g in opt.param_groups):
        return
    for group in opt.param_groups:
        for p in group["params"]:
            if not opt.state.get(p):
                opt.state[p] = {
                    "step": torch.tensor(0.0, dtype=torch.float32),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
