"""Pixel parity figures (issue 15, part 1): LaRA's pixels vs transformers' Qwen3-VL PIL image processor
configured as the published Qwen3-VL-2B-Instruct (benchmarks/qwen3vl-2b-instruct/), on random uint8
frames: max |difference| of pixel_values, and the grids. Random noise is the worst case for
resampling differences (all high frequencies). Run: `PYTHONPATH=. python benchmarks/pixel_parity.py`."""

import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1] / "tests" / "lara")
)  # qwen_reference (the reference setup)
import numpy as np
from qwen_reference import PUBLISHED, image_processor

from lara.pixels import QwenImageSpec, patchify, qwen_preprocess, to_float_images

ref, spec = image_processor(), QwenImageSpec.from_file(PUBLISHED / "preprocessor_config.json")
rng = np.random.default_rng(0)
for h, w in [(128, 128), (224, 224), (256, 256), (480, 640), (200, 300)]:
    f = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    want = ref(images=[f], return_tensors="pt")
    pv, g = qwen_preprocess([f], spec)
    diff = float((pv - want["pixel_values"]).abs().max())
    line = f"{h}x{w}: Qwen grid {want['image_grid_thw'][0].tolist()}, qwen_preprocess max|diff| {diff:.1e}"
    if h == w:
        pm, gm = patchify(to_float_images(f, 256), 256, 16, 2, 2, [0.5] * 3, [0.5] * 3)
        line += (
            f"; model path (256 px) grid {gm[0].tolist()}, max|diff| "
            f"{float((pm - want['pixel_values']).abs().max()):.1e}"
        )
    print(line)
print("the former path (float frames, torch bilinear resize inside patchify), for comparison:")
for h in (128, 224):
    f = rng.integers(0, 256, (h, h, 3), dtype=np.uint8)
    want = ref(images=[f], return_tensors="pt")
    po, _ = patchify(to_float_images(f), 256, 16, 2, 2, [0.5] * 3, [0.5] * 3)
    d = (po - want["pixel_values"]).abs()
    print(
        f"{h}x{h} -> 256: max|diff| {float(d.max()):.3f}, mean {float(d.mean()):.3f} (normalized units, "
        "range [-1, 1])"
    )
