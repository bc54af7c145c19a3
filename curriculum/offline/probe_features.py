"""What `lara probe` reads out of a model: the final hidden state of every latent slot and every
`<img_next>` slot on dataset frames, the visual-foresight agreement per frame, the labels the
annotation gives those frames, and the stage-I LM head's reading of a latent slot.

The sequence is the one latent inference and stage-III training run (`build_prompt(latent=True,
img_next=True)`: image, instruction, one latent segment per tag of `latent.canonical_tags` with
`latent.slots_per_segment` slots each, then the N_v `<img_next>` slots), through
`LaraModel.hidden_states`, which runs the recurrent (Coconut) latent passes exactly as inference
does. Rows are left-padded so every row's latent and `<img_next>` positions line up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lara.sequence import IMG_NEXT, LATENT

FORESIGHT_KEYS = ("l1", "cos", "copy_l1", "copy_cos")


@dataclass
class Features:
    """Per probed frame (N rows), of one model."""

    latent: list[np.ndarray] = field(default_factory=list)  # batches of (B, S, D), S = tags x k slots
    img_next: list[np.ndarray] = field(default_factory=list)  # batches of (B, D): mean over the N_v slots
    foresight: dict[str, list[np.ndarray]] = field(default_factory=dict)  # key -> batches of (B,)

    def stacked(self) -> dict[str, np.ndarray]:
        out = {"latent": np.concatenate(self.latent), "img_next": np.concatenate(self.img_next)}
        for k, v in self.foresight.items():
            out[k] = np.concatenate(v)
        return out


def slot_layout(cfg) -> dict[str, slice]:
    """Tag -> the columns of its latent slots in the (S,) slot axis, in canonical order."""
    k = cfg.latent.slots_per_segment
    return {tag: slice(i * k, (i + 1) * k) for i, tag in enumerate(cfg.latent.canonical_tags)}


@torch.no_grad()
def slot_hidden(policy, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Final hidden states of the latent slots (B, S, D) and of the `<img_next>` slots (B, N_v, D)
    (None without foresight slots) for a collated sample batch."""
    cfg = policy.cfg
    builder = policy.builder
    seqs = [
        builder.build_prompt(s, latent=True, img_next=True, act_start=False) for s in batch["instruction"]
    ]
    t = {k: v.to(policy.device) for k, v in builder.collate(seqs, "left").items()}
    images = policy.camera_images(batch, cfg.vision.cameras).to(policy.device)
    hidden = policy.hidden_states(t, images)  # (B, L, D)
    b = hidden.shape[0]
    latent = hidden[t["part"] == LATENT].view(b, -1, hidden.shape[-1])  # (B, S, D)
    nxt = None
    if cfg.foresight.num_slots:
        nxt = hidden[t["part"] == IMG_NEXT].view(b, cfg.foresight.num_slots, -1)  # (B, N_v, D)
    return latent, nxt


@torch.no_grad()
def foresight_agreement(policy, batch: dict, nxt: torch.Tensor) -> dict[str, np.ndarray]:
    """Per frame (B,): L1 and cosine of the `<img_next>` predictions (the foresight head on the slot
    hidden states) against the EMA target of the true next frame, and of the trivial predictor "the
    next frame looks like this one" (the target of the current frame) against the same target."""
    cam = policy.cfg.foresight.camera
    online = policy.vlm.model.visual
    now = torch.as_tensor(batch[f"image.{cam}"]).float().to(policy.device)
    nxt_img = torch.as_tensor(batch[f"next_image.{cam}"]).float().to(policy.device)
    target = policy.foresight.targets(nxt_img, online)  # (B, N_v, D)
    copy = policy.foresight.targets(now, online)  # (B, N_v, D)
    head_dtype = next(policy.foresight.head.parameters(), nxt).dtype  # Identity has no parameters
    pred = policy.foresight.head(nxt.to(head_dtype)).float()  # (B, N_v, D)

    def l1(a: torch.Tensor) -> np.ndarray:
        return (a - target).abs().mean((1, 2)).cpu().numpy()

    def cos(a: torch.Tensor) -> np.ndarray:
        return F.cosine_similarity(a, target, dim=-1).mean(1).cpu().numpy()

    return {"l1": l1(pred), "cos": cos(pred), "copy_l1": l1(copy), "copy_cos": cos(copy)}


@torch.no_grad()
def collect(policy, batch: dict, into: Features, foresight: bool) -> None:
    """Append one batch's slot features (and, if asked, foresight agreement) to `into`."""
    latent, nxt = slot_hidden(policy, batch)
    into.latent.append(latent.float().cpu().numpy())
    if nxt is None:
        into.img_next.append(np.zeros((latent.shape[0], 0), np.float32))
        return
    into.img_next.append(nxt.float().mean(1).cpu().numpy())
    if foresight:
        for k, v in foresight_agreement(policy, batch, nxt).items():
            into.foresight.setdefault(k, []).append(v)


@torch.no_grad()
def top_tokens(policy, hidden: np.ndarray, top_k: int, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (n, k) and probabilities (n, k) of the top-k tokens the LM head would emit from each
    hidden state (n, D), over the model's output vocabulary (the columns stages I-II trained its head on)."""
    head = policy.vlm.lm_head
    ids = policy.output_vocab.global_ids(policy.device)  # (V_out,)
    all_ids, all_p = [], []
    for s in range(0, len(hidden), batch):
        h = torch.as_tensor(hidden[s : s + batch]).to(policy.device, head.weight.dtype)
        probs = policy.output_vocab.logits(h, head).float().softmax(-1)  # (b, V_out)
        p, idx = probs.topk(min(top_k, probs.shape[-1]), dim=-1)  # (b, k)
        all_ids.append(ids[idx].cpu().numpy()), all_p.append(p.cpu().numpy())
    return np.concatenate(all_ids), np.concatenate(all_p)


# ------------------------------------------------------------------ labels
def parse_objects(text: str) -> list[tuple[str, list[int] | None]]:
    from data_pipeline.annotation.preview import parse_objects as parse

    return parse(text)


def frame_labels(cot: list[tuple[str, str]] | None, image_hw: tuple[int, int] | None) -> dict:
    """What each tag stood for at one frame: SUBTASK text (the phase), OBJECTS' first (target) object
    name and its box as (cx, cy, w, h) in image units (None without a box), MOVE text, GRIPPER
    open/closed ("close" and "hold" are both a closed gripper)."""
    tags = {str(t): str(v) for t, v in (cot or [])}
    out: dict = {"SUBTASK": tags.get("SUBTASK"), "MOVE": tags.get("MOVE"), "OBJECTS": None, "BOX": None}
    grip = tags.get("GRIPPER")
    out["GRIPPER"] = None if grip is None else ("open" if grip.strip() == "open" else "closed")
    objects = parse_objects(tags.get("OBJECTS", ""))
    if objects:
        name, box = objects[0]
        out["OBJECTS"] = name
        if box is not None and image_hw is not None:
            h, w = image_hw
            x1, y1, x2, y2 = box
            out["BOX"] = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
    return out
