"""Part 2 of issue 15: LaRA's own path through the backbone (pixels, prompt, `encode_images`,
`rope_positions`, `run_text` with the image features scattered in and deepstack) gives the same
last hidden states as `Qwen3VLForConditionalGeneration.forward` on the same frames and prompt built
by transformers' Qwen3VLProcessor with the published chat template (a small random model, fp32)."""

import numpy as np
import pytest
import torch
from qwen_reference import processor, user_message

from lara.modeling_lara import LaraPolicy
from lara.presets import load_config

INSTRUCTIONS = ["pick up the black bowl and place it on the plate", "open it"]


@pytest.fixture(scope="module", params=[["agentview"], ["agentview", "wrist"]], ids=["1cam", "2cam"])
def policy(request):
    # the tiny preset at the qwen presets' 256 px (64 tokens per camera), 2 deepstack layers
    cams = ",".join(request.param)
    torch.manual_seed(0)
    cfg = load_config(
        "tiny",
        [f"--vision.cameras=[{cams}]", "--vision.image_size=256", "--vision.deepstack_visual_indexes=[0,1]"],
    )
    return LaraPolicy(cfg).eval()


def frames(n_cams: int, batch: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    sizes = {"agentview": 224, "wrist": 256}  # Qwen's own enlargement to 256 px, and no resize
    return [
        {c: rng.integers(0, 256, (sizes[c], sizes[c], 3), dtype=np.uint8) for c in list(sizes)[:n_cams]}
        for _ in range(batch)
    ]


@pytest.mark.parametrize(
    "batch, side", [(1, "left"), (2, "left"), (2, "right")], ids=["single", "padded_left", "padded_right"]
)  # inference pads left, training right
def test_lara_path_equals_qwen_forward(policy, batch, side):
    cams = policy.cfg.vision.cameras
    obs_frames = frames(len(cams), batch)
    instructions = INSTRUCTIONS[:batch]
    proc = processor(policy.tokenizer, padding_side=side)
    texts = [
        proc.apply_chat_template(user_message(s, len(cams)), add_generation_prompt=True, tokenize=False)
        for s in instructions
    ]
    images = [f[c] for f in obs_frames for c in cams]
    ref = proc(text=texts, images=images, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = policy.vlm(**ref, output_hidden_states=False)
        want_hidden = policy.vlm.model(**ref).last_hidden_state  # (B, L, D), what forward's logits come from

        obs = {"images": {c: np.stack([f[c] for f in obs_frames]) for c in cams}, "instruction": instructions}
        imgs = policy.processor.to_device(obs).images  # (B * n_cam, 3, 256, 256)
        seqs = [
            policy.builder.build_prompt(s, latent=False, img_next=False, act_start=False)
            for s in instructions
        ]
        t = policy.builder.collate(seqs, side)
        hidden = policy.hidden_states(t, imgs)  # (B, L, D)

    assert t["input_ids"].tolist() == ref["input_ids"].tolist()
    assert t["attention_mask"].tolist() == ref["attention_mask"].tolist()
    valid = ref["attention_mask"].bool()
    torch.testing.assert_close(hidden[valid], want_hidden[valid], atol=1e-4, rtol=1e-4)
    logits = policy.vlm.lm_head(hidden)  # the same head on LaRA's states reproduces forward's logits
    torch.testing.assert_close(logits[valid], out.logits[valid], atol=1e-4, rtol=1e-4)
