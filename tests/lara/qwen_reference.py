"""Transformers' own Qwen3-VL processing, configured as the published Qwen3-VL-2B-Instruct
(benchmarks/qwen3vl-2b-instruct/): the reference LaRA's pixels, prompt and forward are compared with.

torchvision is absent here (docs/platform.md), so the image processor is the PIL one
(`Qwen2VLImageProcessorPil`, what `Qwen2VLImageProcessor` resolves to without torchvision), and
`Qwen3VLProcessor`'s constructor type check is skipped: it looks the video processor's base class
up in a mapping that is a placeholder without torchvision. Everything the processor does with text
and images (`apply_chat_template`, image-token expansion, `mm_token_type_ids`) is its own code.
"""

from __future__ import annotations

import json
from pathlib import Path

PUBLISHED = Path(__file__).resolve().parents[2] / "benchmarks" / "qwen3vl-2b-instruct"


def image_processor(**overrides):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    cfg = json.loads((PUBLISHED / "preprocessor_config.json").read_text())
    kwargs = {k: v for k, v in cfg.items() if k not in ("processor_class", "image_processor_type")}
    return Qwen2VLImageProcessorPil(**{**kwargs, **overrides})


def chat_template() -> str:
    return json.loads((PUBLISHED / "chat_template.json").read_text())["chat_template"]


def processor(lara_tokenizer, padding_side: str = "left"):
    from transformers import Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    class _Processor(Qwen3VLProcessor):
        def check_argument_for_proper_class(self, argument_name, argument):  # see the module docstring
            return type(argument)

    hf_tok = lara_tokenizer.to_hf()
    hf_tok.padding_side = padding_side
    return _Processor(
        image_processor=image_processor(),
        tokenizer=hf_tok,
        video_processor=Qwen3VLVideoProcessor(),
        chat_template=chat_template(),
    )


def user_message(instruction: str, n_images: int) -> list[dict]:
    """One user turn: the camera images, then the instruction (LaRA's order)."""
    return [
        {"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": instruction}]}
    ]
