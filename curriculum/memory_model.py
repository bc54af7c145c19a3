"""Training memory per GPU, by formula: parameters, gradients, optimizer state and activations.

`lara bench memory --preset qwen3vl-2b --gpus 8 --engine fsdp --batch_size 8 --gradient_checkpointing true`

Parameter counts are exact: the preset's policy is built on the meta device (no memory, seconds).
The engines divide them as they are documented to:
    ddp    every GPU holds fp32 weights (4 B), fp32 gradients (4 B), DDP's gradient buckets (another
           4 B; none in a single process) and AdamW's two fp32 moments (8 B) per trainable parameter,
           plus the bf16 copies autocast makes of the weights a forward uses (2 B);
    fsdp   FSDP2 (fully_shard, accelerate): fp32 weights, gradients and moments divided by the GPU
           count, plus the bf16 working copies of the units in flight: the root (embeddings, heads)
           and two wrapped layers (the current one and the prefetched one), and their bf16 gradients;
    zero2  DeepSpeed ZeRO-2 (the ZeRO paper's 2 + 14/N bytes): bf16 weights on every GPU, the fp32
           master copy, moments and bf16 gradients partitioned, plus one reduce bucket (5e8 elements).
Activations are what autograd keeps for the backward, counted per op for Qwen3-VL's layers (sdpa
attention: no L x L probabilities), per token and layer:
    text layer   6 D + 6 Dq + 2 Dkv + 4 I + 2 H + Hkv + 2 elements (D hidden, Dq = heads x head_dim,
                 Dkv = kv heads x head_dim, I the MLP width); the RMS norms' 4 D + 2 Dq + 2 Dkv are
                 float32 under autocast (the residual stream of fp32 weights), the rest bf16
    vision block 11 Dv + 2 Iv + Hv + 4 per patch, the two LayerNorms' 4 Dv in float32
    mergers      4 Dv + 1 per patch each (the final merger and one per deepstack index)
    LM head      one float32 log-softmax row of the vocabulary per label token
With gradient checkpointing each layer keeps only its input (D per token, fp32) and one layer's
activations exist at a time, recomputed in the backward. tests/curriculum/test_memory_model.py
checks the activation count against the bytes autograd saved, and parameters + gradients + optimizer
+ activations against the memory a training step took, on CPU at the 2B widths with 2 layers.
Peak = parameters + gradients + optimizer state + the larger of the activations (with the tied
embedding's two dense backward gradients) and the AdamW step's temporaries (torch's foreach AdamW:
4 B per trainable parameter, after the backward).
Stage III's action expert is counted in parameters; its activations (a 40-token chunk) are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lara.utils.errors import LaraUserError

ENGINES = ("ddp", "fsdp", "zero2")
GIB = 2**30
ZERO_BUCKET_ELEMENTS = 5e8  # DeepSpeed's default reduce_bucket_size


@dataclass
class MemoryBenchConfig:
    preset: str = "qwen3vl-2b"  # training preset size (curriculum/presets.py)
    stage: int = 1
    gpus: int = 1
    engine: str = "fsdp"  # ddp | fsdp | zero2
    batch_size: int = 8  # per GPU and micro-batch
    gradient_checkpointing: bool = True
    # per sample: text beyond the image tokens and <img_next> slots (instruction, CoT, actions)
    text_tokens: int = 128
    label_tokens: int = 96  # per sample: tokens with a CE loss (CoT + FAST actions)
    compute: str = "bf16"  # bf16 (autocast / the engine's policy) | fp32
    gpu_gib: float = 80.0  # the card, for the fits / does not fit line
    # print the README's table instead: qwen3vl-2b and -4b on 1/2/4/8 GPUs, every engine (GiB per GPU)
    table: bool = False
    # TrainConfig flags, e.g. [--model.backbone.dtype=bfloat16]
    overrides: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise LaraUserError(f"--engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if min(self.gpus, self.batch_size, self.text_tokens) < 1 or self.label_tokens < 0:
            raise LaraUserError("--gpus, --batch_size and --text_tokens must be >= 1, --label_tokens >= 0")
        if self.compute not in ("bf16", "fp32"):
            raise LaraUserError(f"--compute {self.compute!r}: bf16 or fp32")


@dataclass
class ModelCounts:
    """What the formula needs from a built policy (exact, from its parameters) and its config."""

    weight_bytes: int  # all parameters at their storage dtype
    params: int
    trainable: int
    root: int  # parameters outside the wrapped layers (FSDP's root unit)
    largest_unit: int  # the largest text decoder layer or vision block
    largest_param: int  # the largest trainable tensor (the token embedding)
    text: dict  # D, Dq, Dkv, I, H, Hkv, layers, vocab
    vision: dict  # D, I, H, depth, mergers, patches_per_sample, merged_per_sample


def count_model(cfg) -> ModelCounts:
    """Build the config's policy on the meta device and count its parameters."""
    import torch

    from lara.modeling_lara import LaraPolicy

    validate = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)  # validation reads values
    try:
        with torch.device("meta"):
            policy = LaraPolicy(cfg.model)
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate)
    units = [
        m for m in policy.modules() if type(m).__name__ in ("Qwen3VLTextDecoderLayer", "Qwen3VLVisionBlock")
    ]
    in_units = {id(p) for m in units for p in m.parameters()}
    params = list(policy.parameters())
    b, v = cfg.model.backbone, cfg.model.vision
    side = v.image_size // v.patch_size
    return ModelCounts(
        weight_bytes=sum(p.numel() * p.element_size() for p in params),
        params=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        root=sum(p.numel() for p in params if id(p) not in in_units),
        largest_unit=max((sum(p.numel() for p in m.parameters()) for m in units), default=0),
        largest_param=max((p.numel() for p in params if p.requires_grad), default=0),
        text={
            "D": b.hidden_size,
            "Dq": b.num_attention_heads * b.head_dim,
            "Dkv": b.num_key_value_heads * b.head_dim,
            "I": b.intermediate_size,
            "H": b.num_attention_heads,
            "Hkv": b.num_key_value_heads,
            "layers": b.num_hidden_layers,
            "vocab": policy.vlm.get_input_embeddings().num_embeddings,
        },
        vision={
            "D": v.hidden_size,
            "I": v.intermediate_size,
            "H": v.num_heads,
            "depth": v.depth,
            "mergers": 1 + len(v.deepstack_visual_indexes),
            "patches_per_sample": len(v.cameras) * side * side,
            "merged_per_sample": len(v.cameras) * (side // v.spatial_merge_size) ** 2,
            "pixels_per_patch": 3 * v.temporal_patch_size * v.patch_size**2,
        },
    )


def activation_bytes(
    m: ModelCounts,
    batch: int,
    seq_len: int,
    label_tokens: int,
    checkpointing: bool,
    bf16: bool,
    vocab: int | None = None,
) -> int:
    """What autograd keeps for the backward of one micro-batch (see the module docstring). `vocab`:
    the LM head's output rows (default the whole table; `output_vocab: observed` uses fewer)."""
    t, v = m.text, m.vision
    c = 2 if bf16 else 4  # bytes of a compute-dtype activation
    tokens, patches = batch * seq_len, batch * v["patches_per_sample"]
    text_fp32 = 4 * t["D"] + 2 * t["Dq"] + 2 * t["Dkv"] + t["H"] + t["Hkv"] + 2  # the RMS norms
    text_compute = 2 * t["D"] + 4 * t["Dq"] + t["H"] + 4 * t["I"]
    text_layer = tokens * (4 * text_fp32 + c * text_compute)
    vis_fp32 = 4 * v["D"] + 4  # the two LayerNorms
    vis_compute = 7 * v["D"] + 2 * v["I"] + v["H"]
    vis_block = patches * (4 * vis_fp32 + c * vis_compute)
    if checkpointing:  # every layer keeps its input; one layer's activations are recomputed at a time
        text = tokens * t["layers"] * t["D"] * 4 + text_layer
        vision = patches * v["depth"] * v["D"] * c + vis_block
    else:
        text, vision = t["layers"] * text_layer, v["depth"] * vis_block
    mergers = v["mergers"] * patches * (4 * v["D"] + 1) * c
    head = batch * label_tokens * (vocab or t["vocab"]) * 4  # float32 log-softmax over the vocabulary
    # final norm, rotary cos/sin (text and vision), the attention mask: once per forward
    rest = tokens * (2 * t["D"] + 1 + 2 * t["Dq"] // t["H"]) * 4 + batch * seq_len * seq_len * 4
    rest += patches * (2 * (v["D"] // v["H"]) + v["pixels_per_patch"]) * 4  # + the patch embedding input
    return int(text + vision + mergers + head + rest)


def per_gpu(
    m: ModelCounts, engine: str, gpus: int, activations: int, bf16: bool, foreach: bool = True
) -> dict[str, float]:
    """Bytes per GPU by part (see the module docstring for what each engine keeps). `foreach`: torch's
    AdamW on CUDA (one step over the whole group); on CPU it steps tensor by tensor."""
    n, trainable = gpus, m.trainable
    working = (m.root + 2 * m.largest_unit) * (2 if bf16 else 4)  # FSDP: gathered units in flight
    if engine == "ddp":
        weights = m.weight_bytes + (2 * trainable if bf16 else 0)  # + autocast's bf16 copies
        grads = 4 * trainable * (2 if n > 1 else 1)  # + DDP's buckets
        optim = 8 * trainable
    elif engine == "fsdp":
        weights = m.weight_bytes / n + working
        grads = 4 * trainable / n + 2 * m.largest_unit * (2 if bf16 else 4)
        optim = 8 * trainable / n
    else:  # zero2
        weights = 2 * m.params + 4 * trainable / n
        grads = 2 * trainable / n + 2 * min(trainable, ZERO_BUCKET_ELEMENTS)
        optim = 8 * trainable / n
    # torch's AdamW computes sqrt(v) into a new tensor: for the whole group at once with foreach
    # (CUDA), tensor by tensor on CPU; the activations are gone by then, so the peak holds the larger
    # of the two. DeepSpeed's fused Adam works in place.
    step_temp = 0 if engine == "zero2" else 4 * (trainable if foreach else m.largest_param) / n
    # The tied token embedding / LM head gets two dense vocabulary x D gradients in the backward
    # (the embedding's and the head's) before they are summed into its .grad: two more copies of the
    # largest tensor while the activations are still held. Identified from the one CPU measurement
    # in tests/curriculum/test_memory_model.py, not profiled op by op.
    backward_temp = 2 * m.largest_param * (4 if engine == "ddp" or not bf16 else 2)
    return {
        "parameters": weights,
        "gradients": grads,
        "optimizer": optim,
        "activations": activations + backward_temp,
        "step_temporaries": step_temp,
        "total": weights + grads + optim + max(activations + backward_temp, step_temp),
    }


def sequence_length(m: ModelCounts, cfg, text_tokens: int) -> int:
    """Tokens per sample: the cameras' merged image tokens, the <img_next> slots, the text."""
    return m.vision["merged_per_sample"] + cfg.model.foresight.num_slots + text_tokens


_COUNTED: dict[tuple, tuple] = {}  # (preset, stage, overrides) -> (cfg, counts): one meta build each


def estimate(bench: MemoryBenchConfig) -> dict:
    from curriculum.presets import load_train_config

    key = (bench.preset, bench.stage, tuple(bench.overrides))
    if key not in _COUNTED:
        cfg = load_train_config([], list(bench.overrides), preset=bench.preset, stage=bench.stage)
        _COUNTED[key] = (cfg, count_model(cfg))
    cfg, counts = _COUNTED[key]
    bf16 = bench.compute == "bf16"
    seq = sequence_length(counts, cfg, bench.text_tokens)
    act = activation_bytes(
        counts, bench.batch_size, seq, bench.label_tokens, bench.gradient_checkpointing, bf16
    )
    parts = per_gpu(counts, bench.engine, bench.gpus, act, bf16)
    return {"params": counts.params, "trainable": counts.trainable, "seq_len": seq, "bytes": parts}


def table(bench: MemoryBenchConfig) -> str:
    """Markdown: total GiB per GPU (parameters + gradients + optimizer / activations) per preset,
    engine and GPU count, at the bench's batch, checkpointing and sequence settings."""
    gpus = (1, 2, 4, 8)
    lines = [
        "| preset | engine | " + " | ".join(f"{n} GPU{'s' if n > 1 else ''}" for n in gpus) + " |",
        "|---|---|" + "---|" * len(gpus),
    ]
    for preset in ("qwen3vl-2b", "qwen3vl-4b"):
        for engine in ENGINES:
            cells = []
            for n in gpus:
                b = replace(bench, preset=preset, engine=engine, gpus=n)
                parts = estimate(b)["bytes"]
                static = parts["parameters"] + parts["gradients"] + parts["optimizer"]
                mark = "" if parts["total"] <= bench.gpu_gib * GIB else " (no)"
                act = max(parts["activations"], parts["step_temporaries"]) / GIB
                cells.append(f"{parts['total'] / GIB:.1f} ({static / GIB:.1f} + {act:.1f}){mark}")
            lines.append(f"| {preset} | {engine} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
