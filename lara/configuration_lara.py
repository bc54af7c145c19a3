"""Typed configuration of the LaRA model (draccus dataclasses, as lerobot does).

`LaraConfig` groups one sub-config per part of the model:
- `backbone`   the Qwen3-VL text model (architecture, or a local `from_pretrained` directory),
- `vision`     the Qwen3-VL vision tower and the camera inputs (size, normalization),
- `foresight`  the `<img_next>` slots, the EMA target encoder and the visual L1 loss,
- `latent`     the latent chain of thought (slots per segment, slot inputs, tags),
- `fast`       the FAST action tokenizer (DCT scale, BPE vocabulary = number of action tokens),
- `expert`     the DiT action expert and its flow-matching settings,
- `inference`  generation limits and the action queue.

The named sizes live in lara/presets.py (`tiny`, `small`, `qwen3vl-2b`, `qwen3vl-4b`); load one with
`lara.presets.load_config(name, args)` (then `--a.b=value` overrides, draccus). Loss weights are
not a model setting: the training config's `loss` (curriculum.config) sets them on the policy every
step.
`__post_init__` validates and raises `LaraConfigError` (a ValueError); nothing is silently changed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import draccus

STAGES = (1, 2, 3)
SLOT_INPUTS = ("learned", "recurrent")
LATENT_SELECTIONS = ("tag_order", "random")
PLAN_TAG = "PLAN"  # the episode-level CoT segment (data_pipeline's include_plan prepends it)
FORESIGHT_ATTENTION = ("bidirectional", "causal")
DTYPES = ("float32", "bfloat16", "float16")


class LaraConfigError(ValueError):
    """An invalid model setting (raised by the `__post_init__` checks below; configs nesting LaraConfig
    recognize it among draccus's wrapped errors)."""


@dataclass
class BackboneConfig:
    # Local directory of a real Qwen3-VL checkpoint (`from_pretrained`); None = random init from below.
    pretrained_path: str | None = None
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    intermediate_size: int = 256
    vocab_size: int = 151936  # rows of the architecture's embedding (Qwen pads 151,669 tokens to 151,936)
    max_position_embeddings: int = 8192
    rope_theta: float = 5_000_000.0
    mrope_section: list[int] = field(default_factory=lambda: [6, 5, 5])  # sums to head_dim / 2
    tie_word_embeddings: bool = True
    dtype: str = "float32"  # float32 | bfloat16 | float16 (weights and activations)
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2
    gradient_checkpointing: bool = False
    # LM-head softmax over the full vocabulary, or only over the ids the data uses (see lara/output_vocab.py)
    output_vocab: str = "full"  # full | observed
    # Freeze the token embedding table (and the tied LM head). The tiny preset does: its 151,936 x D
    # random table is ~90% of its parameters and dominated the CPU optimizer step; a fixed random
    # table is still a valid code for every token. Real presets train it (new LaRA token rows).
    freeze_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.output_vocab not in ("full", "observed"):
            raise LaraConfigError(f"backbone.output_vocab {self.output_vocab!r} not in ('full', 'observed')")
        if sum(self.mrope_section) * 2 != self.head_dim:
            raise LaraConfigError(
                f"backbone.mrope_section {self.mrope_section} must sum to head_dim/2 = {self.head_dim // 2}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise LaraConfigError("backbone.num_attention_heads must be a multiple of num_key_value_heads")
        if self.dtype not in DTYPES:
            raise LaraConfigError(f"backbone.dtype {self.dtype!r} not in {DTYPES}")
        if self.vocab_size < 151669:
            raise LaraConfigError(
                "backbone.vocab_size must hold Qwen's 151,669 tokens (ids must match real checkpoints)"
            )


@dataclass
class VisionConfig:
    depth: int = 2
    hidden_size: int = 64
    intermediate_size: int = 128
    num_heads: int = 2
    patch_size: int = 16
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    num_position_embeddings: int = 64  # learned position grid (a square); Qwen3-VL: 2304
    deepstack_visual_indexes: list[int] = field(default_factory=lambda: [0])
    cameras: list[str] = field(default_factory=lambda: ["agentview", "wrist"])
    image_size: int = 64  # square side the cameras are resized to before patchify
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])

    @property
    def tokens_per_image(self) -> int:
        side = self.image_size // (self.patch_size * self.spatial_merge_size)
        return side * side

    def __post_init__(self) -> None:
        unit = self.patch_size * self.spatial_merge_size
        if self.image_size % unit:
            raise LaraConfigError(
                f"vision.image_size {self.image_size} must be a multiple of patch*merge = {unit}"
            )
        if any(i >= self.depth or i < 0 for i in self.deepstack_visual_indexes):
            raise LaraConfigError(
                f"vision.deepstack_visual_indexes {self.deepstack_visual_indexes} "
                f"must be < depth {self.depth}"
            )
        if int(math.isqrt(self.num_position_embeddings)) ** 2 != self.num_position_embeddings:
            raise LaraConfigError("vision.num_position_embeddings must be a perfect square")
        if not self.cameras:
            raise LaraConfigError("vision.cameras must name at least one camera")


@dataclass
class ForesightConfig:
    num_slots: int = 4  # N_v `<img_next>` slots (a perfect square; 16 in the paper; 0 = no foresight at all)
    camera: str = "agentview"  # which camera's next frame is predicted
    image_size: int = 64  # next frame side fed to the EMA vision tower (multiple of patch*merge)
    use_ema_target: bool = True  # False = target from the online tower, detached (ablation)
    ema_momentum: float = 0.999  # tau in theta_ema = tau * theta_ema + (1 - tau) * theta
    head_hidden_mult: int = 2
    # bidirectional: the N_v slots see each other both ways (causal elsewhere), as the reference
    # code does; the block is written at once, also at inference. causal: slot k never sees k+1.
    attention: str = "bidirectional"
    # Deliberate deviations from the reference (docs/method.md), each a switch back to it:
    # head mlp: a 2-layer MLP maps the slot hidden states to the target space (reference: none, the
    # raw last hidden state is compared with the target); slot_offsets: a learned offset per slot
    # added to the `<img_next>` embedding (reference: 16 identical tokens, told apart by position only).
    head: str = "mlp"  # mlp | none
    slot_offsets: bool = True

    def __post_init__(self) -> None:
        if self.head not in ("mlp", "none"):
            raise LaraConfigError(f"foresight.head {self.head!r} not in ('mlp', 'none')")
        if self.attention not in FORESIGHT_ATTENTION:
            raise LaraConfigError(f"foresight.attention {self.attention!r} not in {FORESIGHT_ATTENTION}")
        if math.isqrt(self.num_slots) ** 2 != self.num_slots:
            raise LaraConfigError(
                f"foresight.num_slots {self.num_slots} must be a perfect square (2-D pooling)"
            )
        if not 0.0 <= self.ema_momentum < 1.0:
            raise LaraConfigError("foresight.ema_momentum must be in [0, 1)")


@dataclass
class LatentConfig:
    slots_per_segment: int = 1
    # recurrent (default, the paper's continuous thoughts): a slot's input is the previous position's
    # last hidden state, pass by pass with a KV cache (Coconut). learned: a fixed embedding per tag
    # ("pause tokens", one pass; the ablation).
    slot_input: str = "recurrent"
    # The CoT tags in order; at latent inference one latent segment per tag is placed.
    tags: list[str] = field(default_factory=lambda: ["SUBTASK", "OBJECTS", "MOVE", "GRIPPER"])
    # The CoT starts with the episode's PLAN segment (training data's `include_plan`): the latent
    # sequence of stage III and of latent inference then starts with a PLAN segment too.
    include_plan: bool = False
    max_segments: int = 8  # rows of the learned slot table = max_segments * slots_per_segment
    # Stage II, how the latent probability p picks segments. tag_order (the reference): the first
    # round(p * len(order)) tags of `order` are latent in every sample (tags outside `order` only
    # at p = 1). random: each segment latent with probability p. The training config's schedule
    # (`latent.kind`) must agree; each stage applies both to the model it continues.
    selection: str = "tag_order"
    order: list[str] = field(default_factory=lambda: ["SUBTASK", "OBJECTS", "MOVE", "GRIPPER"])

    def __post_init__(self) -> None:
        if self.slot_input not in SLOT_INPUTS:
            raise LaraConfigError(f"latent.slot_input {self.slot_input!r} not in {SLOT_INPUTS}")
        if self.selection not in LATENT_SELECTIONS:
            raise LaraConfigError(f"latent.selection {self.selection!r} not in {LATENT_SELECTIONS}")
        if not self.order or len(set(self.order)) != len(self.order):
            raise LaraConfigError(f"latent.order {self.order} must name each tag once")
        if self.slots_per_segment < 1:
            raise LaraConfigError("latent.slots_per_segment must be >= 1")
        if len(self.row_tags) > self.max_segments:
            raise LaraConfigError(
                f"latent.max_segments {self.max_segments} < {len(self.row_tags)} slot rows {self.row_tags}"
            )

    @property
    def row_tags(self) -> list[str]:
        """One learned slot row per tag: the configured tags, then PLAN (its own row, never another tag's)."""
        return [*self.tags, *(["PLAN"] if PLAN_TAG not in self.tags else [])]

    @property
    def canonical_tags(self) -> list[str]:
        """The latent segments of stage III and latent inference, in the order training's CoT has them."""
        return [PLAN_TAG, *self.tags] if self.include_plan and PLAN_TAG not in self.tags else list(self.tags)


@dataclass
class FastConfig:
    vocab_size: int = 256  # BPE vocabulary = number of action tokens added to the tokenizer
    scale: float = 10.0  # DCT coefficients are multiplied by this, then rounded
    max_abs_coefficient: int = 60  # quantized coefficients are clipped to [-m, m] (base alphabet 2m+1)

    def __post_init__(self) -> None:
        if self.vocab_size < 2 * self.max_abs_coefficient + 1:
            raise LaraConfigError("fast.vocab_size must be >= the base alphabet 2 * max_abs_coefficient + 1")


@dataclass
class ExpertConfig:
    num_layers: int = 4  # alternating self-attention / cross-attention blocks (16 in the paper)
    hidden_size: int = 128
    num_heads: int = 4
    ff_mult: int = 4
    num_inference_steps: int = 4  # Euler steps (4-10)
    time_beta_alpha: float = 1.5  # training times t ~ Beta(alpha, beta) (pi0 convention: t=1 is noise)
    time_beta_beta: float = 1.0
    use_state: bool = True  # a state token in the expert's self-attention
    # The reference's GR00T head: learned tokens between the state and the action tokens (32),
    # dropout in attention and MLP (0.2), and every sample's flow loss drawn with 4 noise/time pairs.
    num_future_tokens: int = 32
    dropout: float = 0.2
    flow_repeats: int = 4

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise LaraConfigError("expert.hidden_size must be a multiple of expert.num_heads")
        if self.num_future_tokens < 0 or self.flow_repeats < 1:
            raise LaraConfigError("expert.num_future_tokens must be >= 0 and expert.flow_repeats >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise LaraConfigError("expert.dropout must be in [0, 1)")
        if not 1 <= self.num_inference_steps <= 100:
            raise LaraConfigError("expert.num_inference_steps must be in [1, 100]")


@dataclass
class InferenceConfig:
    max_cot_tokens: int = 100
    max_action_tokens: int = 64
    n_action_steps: int = 8  # actions popped from each chunk by `select_action`
    # which inference path `predict_action_chunk` takes by default: in a saved checkpoint the stage
    # that trained it (the trainer writes it; lara.inference_plan)
    stage: int = 3
    # stage 2: the CoT tags latent when the trainer saved the checkpoint (None: all, a finished stage
    # II); token inference writes the others as text (mid stage II)
    latent_tags: list[str] | None = None
    # stage-III speed (lara.generation, lara.expert_runtime); predictions do not depend on them
    cache: bool = (
        True  # per-episode prompt cache, one host-to-device copy per call (false: the reference path)
    )
    compile: bool = False  # torch.compile the expert's Euler loop (CPU needs a C++ compiler; eager fallback)
    cuda_graph: bool = (
        False  # on CUDA: replay the Euler loop as a CUDA graph (ignored on CPU; eager fallback)
    )

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise LaraConfigError(f"inference.stage must be one of {STAGES}")


@dataclass
class LaraConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    foresight: ForesightConfig = field(default_factory=ForesightConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    fast: FastConfig = field(default_factory=FastConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    chunk_size: int = 8  # H (8 on LIBERO, 16 on Bridge)
    action_dim: int = 7
    state_dim: int = 8
    max_instruction_tokens: int = 48

    def __post_init__(self) -> None:
        if self.foresight.image_size % (self.vision.patch_size * self.vision.spatial_merge_size):
            raise LaraConfigError("foresight.image_size must be a multiple of vision patch*merge")
        if self.foresight.camera not in self.vision.cameras:
            raise LaraConfigError(
                f"foresight.camera {self.foresight.camera!r} not in vision.cameras {self.vision.cameras}"
            )
        if self.foresight.attention == "bidirectional" and self.backbone.attn_implementation not in (
            "sdpa",
            "eager",
        ):
            raise LaraConfigError(
                "foresight.attention bidirectional needs backbone.attn_implementation sdpa "
                "or eager (a 4-D mask); use foresight.attention causal with flash attention"
            )
        unknown = sorted(set(self.inference.latent_tags or []) - set(self.latent.canonical_tags))
        if unknown:
            raise LaraConfigError(
                f"inference.latent_tags {unknown} are not CoT tags {self.latent.canonical_tags}"
            )
        if self.inference.n_action_steps > self.chunk_size:
            raise LaraConfigError("inference.n_action_steps must be <= chunk_size")
        if self.chunk_size < 1 or self.action_dim < 1:
            raise LaraConfigError("chunk_size and action_dim must be positive")

    # --- serialization (JSON, no pickle) ---
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LaraConfig:
        """A saved config; keys it lacks (a checkpoint written before they existed) take the value
        that reproduces how that checkpoint was trained (`LEGACY`), not today's default."""
        data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items() if k not in DROPPED}
        for (section, key), value in LEGACY.items():
            if isinstance(data.get(section), dict) and key not in data[section]:
                data[section][key] = value
        return draccus.decode(cls, data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> LaraConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


# Behaviour of checkpoints saved before these keys existed (issue 12 changed the defaults): a causal
# `<img_next>` block, no future tokens, no dropout, one flow draw, random stage-II draws.
LEGACY = {
    ("foresight", "attention"): "causal",
    ("expert", "num_future_tokens"): 0,
    ("expert", "dropout"): 0.0,
    ("expert", "flow_repeats"): 1,
    ("latent", "selection"): "random",
}

# Sections of older checkpoints' configs that are no longer model settings: `loss` (per-stage loss
# weights) moved to the training config, which sets them on the policy every step.
DROPPED = ("loss",)
