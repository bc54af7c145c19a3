"""`vlm` backend: a Qwen3-VL checkpoint names the task objects, boxes them, and phrases the subtasks.

Why: datasets without a simulator or a clean instruction grammar (real robots, Bridge) still
deserve object lists, boxes (the OBJECTS tag's semantic anchors) and natural subtask wording.
1. One prompt per episode (the first frame and the instruction) asks for JSON: the objects, and
   one phrase per phase. Answers are validated; anything missing or malformed falls back to the
   instruction parser (flag `vlm_parse_fallback`), so a poor model degrades to the `instruction`
   backend instead of writing garbage or nothing.
2. Boxes: one grounding prompt per key frame (the first frame of each gripper phase segment) in
   Qwen3-VL's native format (`bbox_2d`, 0..1000 relative coordinates; `vlm_grounding.py`); every
   frame takes the boxes of its segment's key frame. Unusable answers are counted (`box_stats`,
   logged at close) and fall back: to the nearest key frame with boxes (flag `vlm_box_partial`), or
   to names without boxes when no key frame has any (flag `vlm_box_fallback`).
Real weights want a GPU; a tiny random model exercises the plumbing on CPU.

Inputs are what Qwen's own processor would give the model, built without the HF processor
(torchvision must not be imported): the tokenizer is the checkpoint's `tokenizer.json` read with
`tokenizers`; pixels follow the checkpoint's `preprocessor_config.json` (aspect ratio kept,
`lara.pixels.qwen_preprocess`; `vlm_image_size` only raises the minimum pixel count to its square);
the prompt is Qwen3-VL's chat template for one user turn (image, then text) and the generation prompt.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_pipeline.annotation.backends.base import ObjectAnchor, SemanticAnchors
from data_pipeline.annotation.backends.instruction import anchors_from_instruction
from data_pipeline.annotation.backends.vlm_grounding import BoxParseStats, grounding_prompt, parse_boxes
from data_pipeline.annotation.segmentation import (
    GRASP,
    MOVE_TO_GOAL,
    MOVE_TO_OBJECT,
    PLACE,
    RETRACT,
    TemporalAnchors,
)
from data_pipeline.episode import Episode
from lara.pixels import QwenImageSpec, qwen_preprocess
from lara.utils.errors import LaraUserError

if TYPE_CHECKING:
    from data_pipeline.annotation.config import AnnotationConfig

logger = logging.getLogger(__name__)
PHRASE_PHASES = (MOVE_TO_OBJECT, GRASP, MOVE_TO_GOAL, PLACE, RETRACT)
_NAME_OK = re.compile(r"^[a-z][a-z0-9 '\-]{0,39}$")
_PHRASE_OK = re.compile(r"^[a-z][a-z0-9 ,'\-]{2,79}$")

PROMPT = (
    "You see a robot's camera image. The robot's task: \"{instruction}\".\n"
    "Answer with one JSON object and nothing else, with two keys:\n"
    '"objects": the names of the objects the task involves (short noun phrases, lower case);\n'
    '"subtasks": an object with the keys move_to_object, grasp, move_to_goal, place, retract, each a short '
    'imperative phrase for that step (e.g. "grasp the black bowl", "place it on the plate").'
)


def objects_prompt(instruction: str) -> str:
    return PROMPT.format(instruction=instruction.strip())


def build_prompt(question: str, num_image_tokens: int) -> str:
    """Qwen chat format with the image placeholder expanded to the number of merged visual tokens."""
    image = "<|vision_start|>" + "<|image_pad|>" * num_image_tokens + "<|vision_end|>"
    return f"<|im_start|>user\n{image}{question}<|im_end|>\n<|im_start|>assistant\n"


def parse_response(text: str) -> tuple[list[str], dict[str, str]] | None:
    """(objects, phase -> phrase) from the model's answer, or None when no usable JSON is in it."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    objects = []
    for name in data.get("objects", []) if isinstance(data.get("objects"), list) else []:
        if isinstance(name, str):
            name = re.sub(r"\s+", " ", name.strip().lower())
            name = re.sub(r"^(the|a|an)\s+", "", name)
            if _NAME_OK.match(name) and name not in objects:
                objects.append(name)
    phrases: dict[str, str] = {}
    subtasks = data.get("subtasks")
    if isinstance(subtasks, dict):
        for phase in PHRASE_PHASES:
            value = subtasks.get(phase)
            if isinstance(value, str):
                value = re.sub(r"\s+", " ", value.strip().lower()).rstrip(".")
                if _PHRASE_OK.match(value):
                    phrases[phase] = value
    if not objects and not phrases:
        return None
    return objects, phrases


class VlmBackend:
    name = "vlm"

    def __init__(self, config: AnnotationConfig):
        self.config = config
        model_dir = Path(config.vlm_model_dir) if config.vlm_model_dir else None
        if model_dir is None or not (model_dir / "config.json").is_file():
            raise LaraUserError(
                f"the vlm backend needs --vlm_model_dir pointing at a local Qwen3-VL checkpoint folder "
                f"(config.json, weights, tokenizer.json); got {config.vlm_model_dir!r}"
            )
        if not (model_dir / "tokenizer.json").is_file():
            raise LaraUserError(
                f"{model_dir} has no tokenizer.json (the vlm backend reads it with `tokenizers`)"
            )
        import torch
        from tokenizers import Tokenizer
        from transformers import Qwen3VLForConditionalGeneration

        device = config.vlm_device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.device = torch.device(device)
        self.model = Qwen3VLForConditionalGeneration.from_pretrained(str(model_dir), dtype=dtype).to(
            self.device
        )
        self.model.eval()
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        vc = self.model.config.vision_config
        pre = model_dir / "preprocessor_config.json"
        spec = (
            QwenImageSpec.from_file(pre) if pre.is_file() else QwenImageSpec()
        )  # defaults: the published 2B file
        self.spec = dataclasses.replace(
            spec,
            patch_size=int(vc.patch_size),
            merge_size=int(vc.spatial_merge_size),
            temporal_patch_size=int(vc.temporal_patch_size),
            min_pixels=max(spec.min_pixels, config.vlm_image_size**2),
        )
        self.merge = self.spec.merge_size
        self.box_stats = BoxParseStats()
        ids = {t: self.tokenizer.token_to_id(t) for t in ("<|image_pad|>", "<|im_end|>", "<|endoftext|>")}
        if ids["<|image_pad|>"] is None:
            raise LaraUserError(f"{model_dir}/tokenizer.json lacks Qwen's <|image_pad|> token")
        self.image_pad_id = int(ids["<|image_pad|>"])
        self.eos_ids = [int(i) for i in (ids["<|im_end|>"], ids["<|endoftext|>"]) if i is not None]
        self.calls = 0

    def generate(self, image: np.ndarray, question: str) -> str:
        """Greedy answer of the model to `question` about one (H, W, 3) uint8 image."""
        import torch

        pixel_values, grid = qwen_preprocess([image], self.spec)  # (N_patch, C*tp*p*p), (1, 3)
        n_tokens = int(grid[0].prod().item()) // (self.merge * self.merge)
        ids = self.tokenizer.encode(build_prompt(question, n_tokens), add_special_tokens=False).ids
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)  # (1, L)
        mm = (input_ids == self.image_pad_id).long()  # (1, L): 1 at image tokens
        if int(mm.sum()) != n_tokens:
            raise RuntimeError(f"prompt has {int(mm.sum())} image tokens, the image needs {n_tokens}")
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                pixel_values=pixel_values.to(self.device, self.model.dtype),
                image_grid_thw=grid.to(self.device),
                mm_token_type_ids=mm,
                max_new_tokens=self.config.vlm_max_new_tokens,
                do_sample=False,
                eos_token_id=self.eos_ids,
                pad_token_id=self.eos_ids[-1],
            )  # (1, L + new)
        self.calls += 1
        return self.tokenizer.decode(out[0, input_ids.shape[1] :].tolist(), skip_special_tokens=True)

    def anchors(self, episode: Episode, temporal: TemporalAnchors) -> SemanticAnchors:
        base = anchors_from_instruction(episode.instruction)  # SkipEpisode without an instruction
        cam = self.config.camera if self.config.camera in episode.images else next(iter(episode.images))
        frames = episode.images[cam]  # (T, H, W, 3)
        answer = self.generate(frames[0], objects_prompt(episode.instruction))
        parsed = parse_response(answer)
        if parsed is None:
            logger.debug("episode %d: unusable VLM answer %r", episode.episode_index, answer[:200])
            base.flags.append("vlm_parse_fallback: instruction parser used")
        else:
            objects, phrases = parsed
            if objects:
                roles = {o.name: o.role for o in base.objects}
                base.objects = [ObjectAnchor(name=n, role=roles.get(n, "other"), key=n) for n in objects]
            if phrases and temporal.num_grasps <= 1:  # one phrase per phase only fits single-cycle episodes
                base.phrases = {(0, phase): text for phase, text in phrases.items()}
        if base.objects:
            self._boxes(base, frames, temporal)
        return base

    def _boxes(self, anchors: SemanticAnchors, frames: np.ndarray, temporal: TemporalAnchors) -> None:
        """Per-frame boxes from grounding answers at each phase segment's first frame (see the docstring)."""
        keys = {o.name: o.key or o.name for o in anchors.objects}
        names = list(keys)
        starts = sorted({0, *(seg.start for seg in temporal.segments)})
        found: dict[int, dict[str, list[int]]] = {}
        for t in starts:
            answer = self.generate(frames[t], grounding_prompt(names))
            boxes, stats = parse_boxes(
                answer, names, frames.shape[2], frames.shape[1], self.config.min_box_pixels
            )
            self.box_stats.add(stats)
            if boxes:
                found[t] = {keys[n]: b for n, b in boxes.items()}
        if not found:
            anchors.flags.append(f"vlm_box_fallback: no usable box in {len(starts)} grounding answers")
            return
        if len(found) < len(starts):
            anchors.flags.append(
                f"vlm_box_partial: {len(starts) - len(found)} of {len(starts)} key frames without "
                "a box (the nearest key frame's boxes used)"
            )
        usable = sorted(found)
        per_start = {t: found[max([u for u in usable if u <= t], default=usable[0])] for t in starts}
        key_of_frame = np.searchsorted(np.asarray(starts), np.arange(len(frames)), side="right") - 1  # (T,)
        anchors.boxes = [dict(per_start[starts[k]]) for k in key_of_frame]

    def close(self) -> None:
        if self.box_stats.answers:
            logger.info("vlm boxes: %s", self.box_stats.summary())
        self.model = None  # type: ignore[assignment]
