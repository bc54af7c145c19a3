"""Part 1 of issue 15: LaRA's pixel_values / image_grid_thw equal transformers' Qwen3-VL image
processor configured as the published Qwen3-VL-2B-Instruct preprocessor (PIL backend)."""

import numpy as np
import pytest
import torch
from qwen_reference import PUBLISHED, image_processor

from lara.pixels import (
    QwenImageSpec,
    check_preprocessor,
    patchify,
    qwen_preprocess,
    smart_resize,
    to_float_images,
)
from lara.presets import load_config

SIZES = [(128, 128), (224, 224), (256, 256), (480, 640), (200, 300)]


def frame(h, w, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, w)[None, :, None] * 0.5 + np.linspace(0, 255, h)[:, None, None] * 0.3
    return np.clip(x + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)  # (H, W, 3) texture + noise


@pytest.fixture(scope="module")
def reference():
    return image_processor()


def test_published_spec_is_what_the_presets_assume():
    spec = QwenImageSpec.from_file(PUBLISHED / "preprocessor_config.json")
    assert (spec.patch_size, spec.merge_size, spec.temporal_patch_size) == (16, 2, 2)
    assert (spec.min_pixels, spec.max_pixels) == (65536, 16777216)
    for preset in ("qwen3vl-2b", "qwen3vl-4b"):
        v = load_config(preset).vision
        assert (v.patch_size, v.spatial_merge_size, v.temporal_patch_size) == (16, 2, 2)
        assert list(spec.image_mean) == v.image_mean and list(spec.image_std) == v.image_std
        # the presets' square side is one Qwen's processor keeps: no resize of a 256 px camera frame
        assert smart_resize(v.image_size, v.image_size, 32, spec.min_pixels, spec.max_pixels) == (256, 256)
        assert v.image_size == 256 and v.tokens_per_image == 64
        assert (
            check_preprocessor(
                PUBLISHED / "preprocessor_config.json", v.image_size, v.image_mean, v.image_std, 16, 2
            )
            is None
        )


@pytest.mark.parametrize("hw", SIZES)
def test_full_pipeline_matches_qwen_processor(reference, hw):
    """Any frame (square, non-square, resized or not): same grid, same values."""
    f = frame(*hw)
    want = reference(images=[f], return_tensors="pt")
    pv, grid = qwen_preprocess([f], QwenImageSpec.from_file(PUBLISHED / "preprocessor_config.json"))
    assert grid.tolist() == want["image_grid_thw"].tolist()
    torch.testing.assert_close(pv, want["pixel_values"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("hw", [(128, 128), (224, 224), (256, 256)])
def test_model_path_at_256_matches_qwen(reference, hw):
    """The path the qwen3vl presets take (square frames -> 256 px -> patchify) equals Qwen's: no resize
    for 256 px frames, and Qwen's own enlargement (PIL bicubic on uint8) for 128 and 224 px ones."""
    f = frame(*hw, seed=1)
    want = reference(images=[f], return_tensors="pt")
    v = load_config("qwen3vl-2b").vision
    pv, grid = patchify(
        to_float_images(f, v.image_size),
        v.image_size,
        v.patch_size,
        v.spatial_merge_size,
        v.temporal_patch_size,
        v.image_mean,
        v.image_std,
    )
    assert grid.tolist() == want["image_grid_thw"].tolist() == [[1, 16, 16]]
    torch.testing.assert_close(pv, want["pixel_values"], atol=1e-5, rtol=0)


def test_224_preset_would_differ_from_qwen(reference):
    """Why not 224 px: Qwen enlarges a 224 frame to a 16 x 16 grid (64 tokens); 224 px gives 14 x 14 (49)."""
    f = frame(224, 224, seed=2)
    want = reference(images=[f], return_tensors="pt")
    _, grid = patchify(to_float_images(f, 224), 224, 16, 2, 2, [0.5] * 3, [0.5] * 3)
    assert want["image_grid_thw"].tolist() == [[1, 16, 16]] and grid.tolist() == [[1, 14, 14]]


def test_non_square_frame_is_squashed_by_the_model_path(reference):
    """A non-square camera: Qwen keeps the aspect ratio (480 x 640 -> 30 x 40 patches), the model path
    feeds vision.image_size squares (16 x 16): a documented difference, not a silent one."""
    f = frame(480, 640)
    want = reference(images=[f], return_tensors="pt")
    _, grid = patchify(to_float_images(f, 256), 256, 16, 2, 2, [0.5] * 3, [0.5] * 3)
    assert want["image_grid_thw"].tolist() == [[1, 30, 40]] and grid.tolist() == [[1, 16, 16]]


def test_check_preprocessor_rejects_other_normalization(tmp_path):
    with pytest.raises(ValueError, match="image_mean"):
        check_preprocessor(
            PUBLISHED / "preprocessor_config.json", 256, [0.48, 0.45, 0.4], [0.27, 0.26, 0.28], 16, 2
        )
    note = check_preprocessor(PUBLISHED / "preprocessor_config.json", 224, [0.5] * 3, [0.5] * 3, 16, 2)
    assert note is not None and "256x256" in note
