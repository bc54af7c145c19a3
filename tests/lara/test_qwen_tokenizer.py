"""Part 3 of issue 15: with backbone.pretrained_path the checkpoint's tokenizer.json is the base,
LaRA's tokens come after its whole vocabulary, and LaRA's prompt equals Qwen's chat template
(rendered and expanded by transformers' Qwen3VLProcessor) token for token."""

import numpy as np
import pytest
from qwen_reference import processor, user_message
from tokenizers import AddedToken

from lara.presets import load_config
from lara.sequence import SequenceBuilder
from lara.tokenizer import QWEN_SPECIAL_START, QWEN_SPECIAL_TOKENS, _base_qwen_tokenizer, build_tokenizer
from lara.utils.errors import LaraUserError


def checkpoint_with_tokenizer(tmp_path, extra: list[str]):
    """A checkpoint folder whose tokenizer.json has `extra` tokens after Qwen's specials (a checkpoint
    whose vocabulary differs from the offline one: LaRA must append after it)."""
    tok = _base_qwen_tokenizer()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in extra])
    tok.save(str(tmp_path / "tokenizer.json"))
    return tmp_path


def test_checkpoint_tokenizer_is_used_and_lara_tokens_follow_its_vocabulary(tmp_path):
    ckpt = checkpoint_with_tokenizer(tmp_path, ["<|ckpt_extra_a|>", "<|ckpt_extra_b|>"])
    tok = build_tokenizer(8, ckpt)
    base_size = QWEN_SPECIAL_START + len(QWEN_SPECIAL_TOKENS) + 2
    assert tok.tok.token_to_id("<|ckpt_extra_b|>") == base_size - 1
    assert tok.img_next_id == base_size  # first LaRA token right after the checkpoint's last id
    assert tok.action_token_offset + 7 == len(tok) - 1
    offline = build_tokenizer(8)
    assert offline.img_next_id == QWEN_SPECIAL_START + len(QWEN_SPECIAL_TOKENS)
    text = "pick up the black bowl 把碗放在盘子上  \n\t x=0.25"
    assert tok.encode(text) == offline.encode(text)  # same BPE, same ids for ordinary text


def test_checkpoint_tokenizer_with_foreign_ids_is_refused(tmp_path):
    from tokenizers import Tokenizer, models

    bad = Tokenizer(models.BPE())
    bad.add_special_tokens([AddedToken(t, special=True) for t in QWEN_SPECIAL_TOKENS])  # ids 0..25
    bad.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(LaraUserError, match="unexpected ids"):
        build_tokenizer(8, tmp_path)


@pytest.mark.parametrize("cameras", [["agentview"], ["agentview", "wrist"]])
def test_prompt_equals_qwen_chat_template(cameras):
    cfg = load_config("qwen3vl-2b", [f"--vision.cameras=[{','.join(cameras)}]"])
    tok = build_tokenizer(cfg.fast.vocab_size)
    builder = SequenceBuilder(cfg, tok)
    proc = processor(tok)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in cameras]
    for instruction in ("pick up the black bowl and place it on the plate", "open the top drawer"):
        text = proc.apply_chat_template(
            user_message(instruction, len(cameras)), add_generation_prompt=True, tokenize=False
        )
        want = proc(text=[text], images=frames, return_tensors="np")
        seq = builder.build_prompt(instruction, latent=False, img_next=False, act_start=False)
        assert seq.input_ids == want["input_ids"][0].tolist()
        mm = builder.collate([seq])["mm_token_type_ids"][0].tolist()
        assert mm == want["mm_token_type_ids"][0].tolist()
