"""`lara bench memory`'s formula against bytes measured on CPU (fp32, one process).

Activations: the bytes of every tensor autograd saves in a stage-I forward of the real policy
(a saved-tensors hook; parameters excluded, shared storage counted once), at the tiny and small
widths (fast) and the Qwen3-VL-2B widths with 2 layers (slow). Total: the memory a 2-step training
run of the reduced 2B policy took beyond its weights (gradients, AdamW state, activations), as the
trainer measures it (peak resident-set growth over the loop).
"""

import pytest
import torch

from curriculum.builders import build_dataset
from curriculum.memory_model import MemoryBenchConfig, activation_bytes, count_model, estimate, per_gpu
from curriculum.presets import REDUCED_DEPTH_OVERRIDES, load_train_config
from lara.utils.errors import LaraUserError

SYNTHETIC = ["--data.type", "synthetic", "--data.root", "8", "--data.num_workers", "0"]


def _saved_activation_bytes(cfg, batch_size: int) -> tuple[int, int, int, int]:
    """(bytes autograd saved in one stage-I forward, sequence length, label tokens per sample, the
    LM head's output rows)."""
    from curriculum.lara_adapter import build_lara_policy

    dataset, collate = build_dataset(cfg)
    torch.manual_seed(0)
    policy = build_lara_policy(cfg, dataset, None)
    policy.set_latent_probability(0.0)
    policy.set_loss_weights(cfg.active_losses())
    batch, _ = policy.prepare_batch(collate([dataset[i] for i in range(batch_size)]), 1)
    tensors = batch["lara.prepared"]["tensors"]
    labels = int((tensors["labels"] != -100).sum()) // batch_size
    params = {p.untyped_storage().data_ptr() for p in policy.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen.setdefault(ptr, t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        policy(batch, 1)
    vocab = policy.output_vocab
    return (
        sum(seen.values()),
        tensors["input_ids"].shape[1],
        labels,
        vocab.rows if vocab.full else len(vocab.ids),
    )


def _check_activations(preset: str, extra: list[str], batch_size: int = 2) -> float:
    cfg = load_train_config([], [*extra, *SYNTHETIC], preset=preset, stage=1)
    measured, seq, labels, vocab = _saved_activation_bytes(cfg, batch_size)
    formula = activation_bytes(count_model(cfg), batch_size, seq, labels, False, False, vocab)
    print(f"{preset}: activations measured {measured / 2**20:.1f} MiB, formula {formula / 2**20:.1f} MiB")
    return formula / measured


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_activation_formula_matches_saved_bytes(preset):
    assert abs(_check_activations(preset, []) - 1) <= 0.10


@pytest.mark.slow
def test_2b_widths_activations_and_training_step_memory(tmp_path):
    """Slow (~2 min, ~9 GB): the 2B widths at 2 layers, ~0.5B parameters in fp32 with AdamW."""
    no_checkpointing = ["--model.backbone.gradient_checkpointing", "false"]
    assert abs(_check_activations("qwen3vl-2b", [*REDUCED_DEPTH_OVERRIDES, *no_checkpointing]) - 1) <= 0.10
    from curriculum.trainer import train

    _return_freed_memory()
    overrides = [*REDUCED_DEPTH_OVERRIDES, *SYNTHETIC, "--output_dir", str(tmp_path / "run"), "--steps", "2"]
    overrides += [
        "--batch_size",
        "2",
        "--save_state",
        "false",
        "--progress",
        "false",
        "--mixed_precision",
        '"no"',
    ]
    overrides += ["--model.backbone.gradient_checkpointing", "false"]
    cfg = load_train_config([], overrides, preset="qwen3vl-2b", stage=1)
    seq, labels, vocab = _saved_activation_bytes(cfg, 2)[1:]
    result = train(cfg)
    counts = count_model(cfg)
    act = activation_bytes(counts, 2, seq, labels, False, False, vocab)
    parts = per_gpu(counts, "ddp", 1, act, bf16=False, foreach=False)  # CPU: AdamW tensor by tensor
    beyond_weights = parts["total"] - parts["parameters"]
    print(
        f"step memory beyond the weights: measured {result.peak_memory_bytes / 2**30:.2f} GiB, formula "
        f"{beyond_weights / 2**30:.2f} GiB (gradients {parts['gradients'] / 2**30:.2f}, AdamW "
        f"{parts['optimizer'] / 2**30:.2f}, activations {act / 2**30:.2f} + backward temporaries "
        f"{(parts['activations'] - act) / 2**30:.2f}, step temporaries "
        f"{parts['step_temporaries'] / 2**30:.2f})"
    )
    assert abs(beyond_weights / result.peak_memory_bytes - 1) <= 0.10


def _return_freed_memory() -> None:
    """Make the resident set follow live tensors: glibc serves allocations below its (growing, up to
    32 MB) mmap threshold from the heap and keeps freed heap memory, so a peak RSS would count
    freed activations as still in use. A fixed 64 KiB threshold maps every tensor and unmaps it on
    free (M_MMAP_THRESHOLD = -3, glibc only)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 1024)
    except OSError:
        pytest.skip("not glibc: the resident set cannot be made to follow live tensors")


def test_engines_divide_what_they_shard():
    """Sharding: FSDP divides weights, gradients and moments by the GPU count; ZeRO-2 keeps bf16
    weights everywhere; DDP divides nothing. On the qwen3vl-2b preset (meta device: no memory)."""
    rows = {
        (engine, gpus): estimate(MemoryBenchConfig(engine=engine, gpus=gpus, batch_size=1))["bytes"]
        for engine in ("ddp", "fsdp", "zero2")
        for gpus in (1, 8)
    }
    assert rows["ddp", 8]["optimizer"] == rows["ddp", 1]["optimizer"]
    assert rows["fsdp", 8]["optimizer"] == pytest.approx(rows["fsdp", 1]["optimizer"] / 8)
    assert rows["zero2", 8]["optimizer"] == pytest.approx(rows["zero2", 1]["optimizer"] / 8)
    assert rows["fsdp", 8]["total"] < rows["zero2", 8]["total"] < rows["ddp", 8]["total"]
    assert rows["fsdp", 1]["activations"] == rows["fsdp", 8]["activations"]  # per GPU, same batch
    with pytest.raises(LaraUserError, match="engine"):
        MemoryBenchConfig(engine="zero3")
