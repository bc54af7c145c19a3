"""Config, tokenizer, pixels, FAST and sequence-builder tests (no model forward)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lara.configuration_lara import FastConfig, LaraConfig
from lara.fast_tokenizer import FastActionTokenizer
from lara.pixels import patchify
from lara.presets import load_config
from lara.sequence import COT as COT_PART
from lara.sequence import IMAGE, IMG_NEXT, LATENT, LOSS_ACTION, LOSS_COT, SequenceBuilder
from lara.tokenizer import QWEN_SPECIAL_START, build_tokenizer, load_tokenizer
from lara.utils.errors import LaraUserError


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(256)


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("name", ["tiny", "small", "qwen3vl-2b", "qwen3vl-4b"])
def test_presets_load_and_round_trip(name):
    cfg = load_config(name)
    assert LaraConfig.from_dict(cfg.to_dict()) == cfg
    assert sum(cfg.backbone.mrope_section) * 2 == cfg.backbone.head_dim


def test_checkpoints_saved_with_loss_weights_still_load():
    """Loss weights left the model config (the training config sets them): an older checkpoint's
    `loss` section is dropped when it loads."""
    saved = load_config("tiny").to_dict()
    saved["loss"] = {
        "cot_weight": 1.0,
        "action_ce_weight": 1.0,
        "visual_weight_stage1": 0.1,
        "visual_weight": 0.2,
        "flow_weight": 1.0,
    }
    assert LaraConfig.from_dict(saved) == load_config("tiny")


def test_overrides_and_validation():
    assert load_config("tiny", ["--expert.num_layers=6"]).expert.num_layers == 6
    with pytest.raises(LaraUserError, match="mrope_section"):
        load_config("tiny", ["--backbone.mrope_section=[8,5,5]"])
    with pytest.raises(LaraUserError, match="deepstack"):
        load_config("tiny", ["--vision.deepstack_visual_indexes=[5]"])
    with pytest.raises(ValueError, match="chunk_size"):
        LaraConfig(chunk_size=4)  # n_action_steps 8 > chunk_size
    with pytest.raises(LaraUserError, match="slot_input"):
        load_config("tiny", ["--latent.slot_input=magic"])
    with pytest.raises(LaraUserError):
        load_config("no-such-preset")


# ---------------------------------------------------------------- tokenizer
def test_qwen_ids_are_the_real_ones(tok):
    assert tok.encode("Hello world") == [9707, 1879]  # Qwen2/3 BPE
    assert tok.pad_id == QWEN_SPECIAL_START == 151643
    assert (tok.im_start_id, tok.vision_start_id, tok.image_pad_id) == (151644, 151652, 151655)
    assert tok.encode("<|image_pad|>") == [151655]
    assert tok.img_next_id == 151669  # LaRA tokens follow Qwen's last special (</think> = 151668)
    assert tok.action_token_offset == tok.act_end_id + 1
    assert len(tok) == tok.action_token_offset + 256
    assert tok.decode(tok.encode("SUBTASK: grasp the bowl\n")) == "SUBTASK: grasp the bowl\n"


def test_tokenizer_save_load(tok, tmp_path):
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    text = "MOVE: move down 12 [3, 4]"
    assert again.encode(text) == tok.encode(text) and again.action_token_offset == tok.action_token_offset
    with pytest.raises(LaraUserError):
        load_tokenizer(tmp_path / "missing")


# ---------------------------------------------------------------- pixels
def test_patchify_matches_qwen_processor_layout():
    x = torch.rand(2, 3, 64, 64)
    pv, grid = patchify(x, 64, 16, 2, 2, [0.5] * 3, [0.5] * 3)
    assert pv.shape == (2 * 16, 3 * 2 * 16 * 16) and grid.tolist() == [[1, 4, 4]] * 2
    # reference: Qwen2-VL image processor's numpy reshape/transpose on one image
    img = ((x[1].numpy() - 0.5) / 0.5)[None].repeat(2, 0)  # (tp, C, H, W)
    ref = img.reshape(1, 2, 3, 2, 2, 16, 2, 2, 16).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(16, -1)
    np.testing.assert_allclose(pv[16:].numpy(), ref, atol=1e-6)


# ---------------------------------------------------------------- FAST
def test_fast_round_trip_within_tolerance(tmp_path, smooth_chunks):
    train, test = smooth_chunks(600, seed=0), smooth_chunks(100, seed=1)
    fast = FastActionTokenizer.train(train, 8, 7, FastConfig(vocab_size=256))
    report = fast.round_trip_error(test)
    assert report["max_abs_error"] < 0.12 and report["mean_abs_error"] < 0.03, report
    assert report["mean_tokens"] < 8 * 7  # BPE compresses the 56 coefficients
    ids = fast.encode(test[0])
    assert all(0 <= i < 256 for i in ids)
    fast.save(tmp_path / "f.json")
    again = FastActionTokenizer.load(tmp_path / "f.json")
    assert again.encode(test[0]) == ids
    np.testing.assert_array_equal(again.decode(ids), fast.decode(ids))
    assert fast.decode([]).shape == (8, 7) and fast.decode([9999, 3]).shape == (8, 7)  # garbage-tolerant
    with pytest.raises(LaraUserError):
        fast.encode(np.zeros((4, 7)))


# ---------------------------------------------------------------- sequence builder
@pytest.fixture(scope="module")
def builder(tok):
    return SequenceBuilder(load_config("tiny"), tok)


def test_p0_is_the_explicit_sequence_and_p1_has_no_cot_loss(builder, tok, cot):
    acts = tok.action_token_ids([1, 2, 3])
    explicit = builder.build("pick the bowl", cot, None, acts)
    p0 = builder.build("pick the bowl", cot, [False] * 4, acts)
    assert p0 == explicit
    latent = builder.build("pick the bowl", cot, [True] * 4, acts)
    assert LOSS_COT not in latent.loss_part and COT_PART not in latent.part
    assert latent.part.count(LATENT) == 4 * builder.k
    assert sum(1 for lp in explicit.loss_part if lp == LOSS_COT) > 20


def test_loss_positions(builder, tok, cot):
    n_v = builder.cfg.foresight.num_slots
    acts = tok.action_token_ids([5, 6, 7, 8])
    seq = builder.build("open the drawer", cot, [False, True, False, True], acts)
    n_img = builder.cfg.vision.tokens_per_image * len(builder.cfg.vision.cameras)
    assert seq.part.count(IMAGE) == n_img and seq.part.count(IMG_NEXT) == n_v
    # the action block and <act_end> carry the action loss, nothing else does
    act_labels = [lab for lab, lp in zip(seq.labels, seq.loss_part) if lp == LOSS_ACTION]
    assert act_labels == acts + [tok.act_end_id]
    # no loss on image, prompt, latent positions; the first <img_next> has no CoT loss after a latent segment
    for lab, part in zip(seq.labels, seq.part):
        if part in (IMAGE, LATENT):
            assert lab == -100
    assert all(lab == -100 for lab, part in zip(seq.labels, seq.part) if part == IMG_NEXT)
    explicit = builder.build("open the drawer", cot, None, acts)
    first = explicit.part.index(IMG_NEXT)
    assert explicit.loss_part[first] == LOSS_COT  # after an explicit CoT the model learns to stop there


def test_collate_padding(builder, cot):
    a = builder.build("a", cot, None, None)
    b = builder.build("a much longer instruction with many more words", None, None, None)
    for side in ("right", "left"):
        t = builder.collate([a, b], side)
        assert t["input_ids"].shape == (2, max(len(a), len(b)))
        assert t["attention_mask"].sum(1).tolist() == [len(a), len(b)]
        row = 1 if len(a) > len(b) else 0
        pad_at = -1 if side == "right" else 0
        assert t["attention_mask"][row, pad_at] == 0 and t["labels"][row, pad_at] == -100
        assert (t["mm_token_type_ids"] == (t["part"] == IMAGE).int()).all()
