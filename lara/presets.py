"""The named sizes of the LaRA model: one function per size, each returning a fresh `LaraConfig`.

    tiny         random init, CPU tests and the demo (64 px cameras, 2-layer backbone)
    small        random init, CPU learning (128 px cameras, 4-layer backbone, 6-layer expert)
    qwen3vl-2b   the Qwen3-VL-2B architecture (real weights: backbone.pretrained_path)
    qwen3vl-4b   the Qwen3-VL-4B architecture

`load_config(name, args)` (below) applies `--a.b=value` overrides to one; the
training presets (curriculum.presets) nest one per size, as openpi's `TrainConfig(model=...)`.
Fields not named here keep `LaraConfig`'s defaults (the reference's expert head: 32 future
tokens, dropout 0.2, 4 flow draws; continuous-thought latents; bidirectional `<img_next>` block).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import draccus
import yaml

from lara.configuration_lara import (
    BackboneConfig,
    ExpertConfig,
    FastConfig,
    ForesightConfig,
    LaraConfig,
    VisionConfig,
)
from lara.utils.config_parsing import parse_over
from lara.utils.errors import LaraUserError


def tiny() -> LaraConfig:
    """A few million parameters beyond the 151,936 x 128 embedding table. 64 px cameras -> 4 visual
    tokens each (2 x 2 merged patches of 16 px); 4 `<img_next>` slots; 4-layer DiT expert."""
    return LaraConfig(
        backbone=BackboneConfig(
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            intermediate_size=256,
            mrope_section=[6, 5, 5],
            dtype="float32",
            # softmax over the ids the data uses; the random table stays fixed (CPU speed)
            output_vocab="observed",
            freeze_embeddings=True,
        ),
        vision=VisionConfig(
            depth=2,
            hidden_size=64,
            intermediate_size=128,
            num_heads=2,
            num_position_embeddings=64,  # an 8 x 8 grid, interpolated to the 4 x 4 patches
            deepstack_visual_indexes=[0],
            image_size=64,
        ),
        foresight=ForesightConfig(num_slots=4, image_size=64),
        fast=FastConfig(vocab_size=256),
        expert=ExpertConfig(num_layers=4, hidden_size=128, num_heads=4, num_inference_steps=4),
        chunk_size=8,
    )


def small() -> LaraConfig:
    """Sized for learning on CPU (issue 16): tiny scaled up. 128 px cameras -> 16 visual tokens each;
    a backbone of twice tiny's width and depth (hidden 256, 4 layers, head_dim 64), a 4-layer vision
    tower, a 6-layer expert of hidden 256; a 128 px foresight frame pooled to tiny's 4 slots."""
    cfg = tiny()
    return replace(
        cfg,
        backbone=replace(
            cfg.backbone,
            hidden_size=256,
            num_hidden_layers=4,
            head_dim=64,
            intermediate_size=768,
            mrope_section=[12, 10, 10],
        ),
        vision=replace(
            cfg.vision,
            depth=4,
            hidden_size=128,
            intermediate_size=256,
            num_heads=4,
            num_position_embeddings=64,  # an 8 x 8 grid: the 8 x 8 patches exactly
            deepstack_visual_indexes=[1],
            image_size=128,
        ),
        foresight=replace(cfg.foresight, image_size=128),
        expert=replace(cfg.expert, num_layers=6, hidden_size=256),
    )


def qwen3vl_2b() -> LaraConfig:
    """Qwen3-VL-2B (text hidden 2048 x 28 layers, vision depth 24). Without backbone.pretrained_path
    (a local Qwen3-VL-2B folder) the weights are random (latency benchmarks). 256 px cameras -> 64
    visual tokens each (16 x 16 patches of 16 px, merged 2 x 2); 16 `<img_next>` slots: the next frame
    through the EMA tower at 256 px (8 x 8 merged tokens) pooled to 4 x 4, as the reference's target
    (its processor enlarges the 112 px frame to 256 px; the training preset loads it at 112 px,
    `data.foresight_image_size`); 16-layer DiT expert, hidden 1024.
    Stored in bfloat16: the inference dtype. The training presets (curriculum/presets.py) store the
    weights in float32 (fp32 master weights, bf16 compute on CUDA): AdamW at lr 1e-5 barely moves bf16.
    Why 256 px and not 224: the published Qwen3-VL preprocessor (benchmarks/qwen3vl-2b-instruct/
    preprocessor_config.json, min 65,536 pixels) enlarges any smaller frame to 256 x 256 (224 -> 256
    too), so 256 px is what the pretrained weights see for a LIBERO frame; the protocol renders cameras
    at 256 px, so no resize happens and LaRA's pixels equal Qwen's (tests/lara/test_qwen_pixels.py)."""
    return LaraConfig(
        backbone=BackboneConfig(
            hidden_size=2048,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            intermediate_size=6144,
            mrope_section=[24, 20, 20],
            rope_theta=5_000_000.0,
            max_position_embeddings=262144,
            dtype="bfloat16",
        ),
        vision=VisionConfig(
            depth=24,
            hidden_size=1024,
            intermediate_size=4096,
            num_heads=16,
            num_position_embeddings=2304,
            deepstack_visual_indexes=[5, 11, 17],
            image_size=256,
        ),
        foresight=ForesightConfig(num_slots=16, image_size=256),
        fast=FastConfig(vocab_size=1024),
        expert=ExpertConfig(num_layers=16, hidden_size=1024, num_heads=16, num_inference_steps=4),
        chunk_size=8,
    )


def qwen3vl_4b() -> LaraConfig:
    """Qwen3-VL-4B: the 2B preset with the 4B text model (hidden 2560 x 36 layers, 32 heads)."""
    cfg = qwen3vl_2b()
    return replace(
        cfg,
        backbone=replace(
            cfg.backbone,
            hidden_size=2560,
            num_hidden_layers=36,
            num_attention_heads=32,
            intermediate_size=9728,
        ),
    )


MODEL_PRESETS: dict[str, Callable[[], LaraConfig]] = {
    "tiny": tiny,
    "small": small,
    "qwen3vl-2b": qwen3vl_2b,
    "qwen3vl-4b": qwen3vl_4b,
}


def model_preset(name: str) -> LaraConfig:
    """A fresh LaraConfig of the named size."""
    if name not in MODEL_PRESETS:
        raise LaraUserError(f"no model preset {name!r}; have {sorted(MODEL_PRESETS)}")
    return MODEL_PRESETS[name]()


def load_config(name_or_path: str | Path = "tiny", args: list[str] | None = None) -> LaraConfig:
    """A size preset (above) or a LaraConfig YAML file, then draccus overrides
    (`--expert.num_layers=16`)."""
    path = Path(name_or_path)
    if str(name_or_path) in MODEL_PRESETS or not path.suffix:
        defaults = draccus.encode(model_preset(str(name_or_path)))
    elif path.is_file():
        defaults = yaml.safe_load(path.read_text()) or {}
    else:
        raise LaraUserError(f"model config {path} does not exist")
    try:
        return parse_over(LaraConfig, defaults, list(args or []))
    except (draccus.utils.DraccusException, ValueError) as err:  # validation errors arrive wrapped
        cause = err.__cause__ or err
        raise LaraUserError(f"invalid model config {name_or_path}: {' '.join(str(cause).split())}") from err
