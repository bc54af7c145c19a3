"""Sequence builder: one token sequence per sample, with per-position roles and loss labels.

Layout (Qwen chat template around LaRA's parts):

    <|im_start|>user\\n [<|vision_start|> <|image_pad|> x n <|vision_end|>] per camera
    {instruction}<|im_end|>\\n<|im_start|>assistant\\n
    CoT segments, each explicit  "TAG: text\\n"
                  or latent     <|latent_start|> <|latent|> x k <|latent_end|>
    <|img_next|> x N_v                                   (none with foresight.num_slots 0)
    <|act_start|> FAST action tokens <|act_end|>        (stages 1-2 only)

Per position the builder records `part` (PAD, IMAGE, PROMPT, COT, LATENT, IMG_NEXT, ACTION,
MARKER), `latent_index` (row of the learned slot table, -1 elsewhere), `labels` (the token id
where the model must predict this token from the previous position, -100 elsewhere) and
`loss_part` (LOSS_COT for explicit CoT text and the token that closes an explicit CoT, `cot_end_id`:
the first `<|img_next|>`, or `<|act_start|>` without slots; LOSS_ACTION for action tokens and
`<|act_end|>`). `collate` pads a list of built samples
(right padding for training, left padding for generation prompts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lara.configuration_lara import LaraConfig
from lara.tokenizer import LaraTokenizer

PAD, IMAGE, PROMPT, COT, LATENT, IMG_NEXT, ACTION, MARKER = range(8)
LOSS_NONE, LOSS_COT, LOSS_ACTION = 0, 1, 2
IGNORE = -100


@dataclass
class BuiltSequence:
    input_ids: list[int] = field(default_factory=list)
    part: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    loss_part: list[int] = field(default_factory=list)
    latent_index: list[int] = field(default_factory=list)

    def add(self, ids: list[int], part: int, loss: int = LOSS_NONE, latent: list[int] | None = None) -> None:
        self.input_ids += ids
        self.part += [part] * len(ids)
        self.labels += list(ids) if loss != LOSS_NONE else [IGNORE] * len(ids)
        self.loss_part += [loss] * len(ids)
        self.latent_index += latent if latent is not None else [-1] * len(ids)

    def __len__(self) -> int:
        return len(self.input_ids)


class SequenceBuilder:
    """Builds token sequences for training (`build`) and inference prompts (`build_prompt`)."""

    def __init__(self, cfg: LaraConfig, tokenizer: LaraTokenizer) -> None:
        self.cfg, self.tok = cfg, tokenizer
        self.k = cfg.latent.slots_per_segment
        self._head = tokenizer.encode("user\n")
        self._tail = tokenizer.encode("<|im_end|>") + tokenizer.encode("\n<|im_start|>assistant\n")
        # what follows a CoT, so what the model learns to stop writing it with: the first `<img_next>`
        # slot, or `<|act_start|>` when there are no slots (foresight.num_slots 0)
        self.cot_end_id = tokenizer.img_next_id if cfg.foresight.num_slots else tokenizer.act_start_id

    def _slot_rows(self, tag: str) -> list[int]:
        """Rows of the learned slot table for a latent segment of `tag`: one row per tag (PLAN too)."""
        tags = self.cfg.latent.row_tags
        if tag not in tags:
            raise ValueError(f"CoT tag {tag!r} has no latent slot row; add it to latent.tags (have {tags})")
        row = tags.index(tag)
        return [row * self.k + j for j in range(self.k)]

    def _prompt(self, instruction: str) -> BuiltSequence:
        seq = BuiltSequence()
        seq.add([self.tok.im_start_id] + self._head, PROMPT)
        n = self.cfg.vision.tokens_per_image
        for _ in self.cfg.vision.cameras:
            seq.add([self.tok.vision_start_id], PROMPT)
            seq.add([self.tok.image_pad_id] * n, IMAGE)
            seq.add([self.tok.vision_end_id], PROMPT)
        ids = self.tok.encode(instruction.strip())[: self.cfg.max_instruction_tokens]
        seq.add(ids + self._tail, PROMPT)
        return seq

    def _latent_segment(self, seq: BuiltSequence, tag: str) -> None:
        seq.add([self.tok.latent_start_id], MARKER)
        seq.add([self.tok.latent_id] * self.k, LATENT, latent=self._slot_rows(tag))
        seq.add([self.tok.latent_end_id], MARKER)

    def build(
        self,
        instruction: str,
        cot: list[tuple[str, str]] | None,
        latent_mask: list[bool] | None,
        action_ids: list[int] | None,
        canonical_latent: bool = False,
    ) -> BuiltSequence:
        """A training sequence. `latent_mask[i]` makes CoT segment i latent; `canonical_latent`
        replaces the CoT by one latent segment per tag of `latent.canonical_tags` (stage 3, latent
        inference; PLAN first when the model was trained with it);
        `action_ids` (FAST ids, already offset into the vocabulary) adds the action block."""
        seq = self._prompt(instruction)
        last_explicit = False
        if canonical_latent:
            for tag in self.cfg.latent.canonical_tags:
                self._latent_segment(seq, tag)
        else:
            cot = cot or []
            latent_mask = latent_mask or [False] * len(cot)
            if len(latent_mask) != len(cot):
                raise ValueError(f"latent_mask has {len(latent_mask)} entries for {len(cot)} CoT segments")
            for (tag, text), is_latent in zip(cot, latent_mask):
                if is_latent:
                    self._latent_segment(seq, tag)
                else:
                    seq.add(self.tok.encode(f"{tag}: {text.strip()}\n"), COT, LOSS_COT)
                last_explicit = not is_latent
        n_v = self.cfg.foresight.num_slots
        closes = (
            LOSS_COT if last_explicit else LOSS_NONE
        )  # the token after an explicit CoT (cot_end_id) ends it
        if n_v:
            seq.add([self.tok.img_next_id], IMG_NEXT, closes)
            seq.add([self.tok.img_next_id] * (n_v - 1), IMG_NEXT)
            closes = LOSS_NONE
        if (
            action_ids is not None or closes != LOSS_NONE
        ):  # without slots <|act_start|> ends a CoT, actions or not
            seq.add([self.tok.act_start_id], MARKER, closes)
        if action_ids is not None:
            seq.add(list(action_ids) + [self.tok.act_end_id], ACTION, LOSS_ACTION)
        return seq

    def build_prompt(
        self,
        instruction: str,
        latent: bool,
        img_next: bool,
        act_start: bool,
        latent_tags: list[str] | None = None,
    ) -> BuiltSequence:
        """An inference prompt: explicit mode stops after the template (CoT is generated);
        latent mode places one latent segment per tag, then the `<img_next>` slots. `latent_tags`
        places latent segments for those tags only (mid stage II: the model writes the rest)."""
        seq = self._prompt(instruction)
        if latent_tags is None:  # the same latent segments as stage III training (`canonical_latent`)
            latent_tags = self.cfg.latent.canonical_tags if latent else []
        for tag in latent_tags:
            self._latent_segment(seq, tag)
        if img_next:
            seq.add([self.tok.img_next_id] * self.cfg.foresight.num_slots, IMG_NEXT)
        if act_start:
            seq.add([self.tok.act_start_id], MARKER)
        return seq

    def collate(self, seqs: list[BuiltSequence], padding_side: str = "right") -> dict[str, torch.Tensor]:
        """Pad to the longest: input_ids, attention_mask, mm_token_type_ids, labels, loss_part,
        part, latent_index, all (B, L)."""
        width = max(len(s) for s in seqs)
        fills = {
            "input_ids": self.tok.pad_id,
            "part": PAD,
            "labels": IGNORE,
            "loss_part": LOSS_NONE,
            "latent_index": -1,
        }
        out = {k: torch.full((len(seqs), width), v, dtype=torch.long) for k, v in fills.items()}
        out["attention_mask"] = torch.zeros(len(seqs), width, dtype=torch.long)
        for b, s in enumerate(seqs):
            sl = slice(0, len(s)) if padding_side == "right" else slice(width - len(s), width)
            for k in fills:
                out[k][b, sl] = torch.tensor(getattr(s, k), dtype=torch.long)
            out["attention_mask"][b, sl] = 1
        out["mm_token_type_ids"] = (out["part"] == IMAGE).int()  # (B, L): 1 image, 0 text
        return out
