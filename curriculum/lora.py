"""Optional LoRA on the backbone (peft), and LoRA-free exports of a LoRA-trained policy.

Training injects adapters into `policy.<lora.module>` and freezes that module's other weights
(except token embeddings / LM head with `train_embeddings`: LaRA's added tokens must learn).
Checkpoints keep two forms: `state/` holds the unmerged weights (base + adapters: what resume
needs), `model/` the merged weights under the plain layer names, so `from_pretrained` of the next
stage or of the evaluator loads it without peft. The merge is done in place around the save and
undone from a copy of the original base weights, so training continues bit-exactly.
"""

from __future__ import annotations

import contextlib

import torch

from lara.utils.errors import LaraUserError


def apply_lora(policy, settings) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    backbone = getattr(policy, settings.module, None)
    if not isinstance(backbone, torch.nn.Module):
        raise LaraUserError(f"lora.module={settings.module!r}: {type(policy).__name__} has no such submodule")
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
    )
    try:
        inject_adapter_in_model(config, backbone)
    except ValueError as err:
        raise LaraUserError(
            f"lora.target_modules {settings.target_modules} match no layer of {settings.module} ({err})"
        ) from err
    keep = ("lora_",) + (("embed_tokens", "lm_head") if settings.train_embeddings else ())
    for name, param in backbone.named_parameters():
        param.requires_grad_(any(k in name for k in keep))


def _lora_layers(module: torch.nn.Module):
    from peft.tuners.lora import LoraLayer

    for name, child in module.named_modules():
        if isinstance(child, LoraLayer):
            parent_name, _, attr = name.rpartition(".")
            yield module.get_submodule(parent_name) if parent_name else module, attr, child


@contextlib.contextmanager
def merged_lora(policy):
    """Inside: LoRA layers replaced by their base layers with the adapters merged in."""
    layers = list(_lora_layers(policy))
    if not layers:
        yield policy
        return
    saved = [
        (parent, attr, layer, layer.get_base_layer().weight.detach().clone())
        for parent, attr, layer in layers
    ]
    try:
        with torch.no_grad():
            for parent, attr, layer, _ in saved:
                layer.merge()
                setattr(parent, attr, layer.get_base_layer())
        yield policy
    finally:
        with torch.no_grad():
            for parent, attr, layer, weight in saved:
                setattr(parent, attr, layer)
                layer.get_base_layer().weight.copy_(weight)
                layer.merged_adapters.clear()
