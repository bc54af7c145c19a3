"""Previews of annotated episodes (mp4 or PNG strip): image, boxes and the CoT, for a person to check.

Why: box conventions (flips, resolutions) and phase boundaries are easy to get subtly wrong and
hard to see in JSON; one glance at a video with the boxes drawn and the SUBTASK changing at the
grasp tells whether an annotation run is usable. Drawing uses Pillow's default bitmap font, so it
works offline on any machine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from data_pipeline.annotation import sidecar
from data_pipeline.annotation.source import EpisodeSource
from lara.utils.errors import LaraUserError

logger = logging.getLogger(__name__)
COLORS = [(255, 64, 64), (64, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255), (255, 160, 60)]
PANEL_LINES = 6


def parse_objects(text: str) -> list[tuple[str, list[int] | None]]:
    """'bowl [1, 2, 3, 4]; plate' -> [('bowl', [1, 2, 3, 4]), ('plate', None)]."""
    out: list[tuple[str, list[int] | None]] = []
    if not text or text == "none visible":
        return out
    for part in text.split("; "):
        name, sep, rest = part.partition(" [")
        box = [int(v) for v in rest.rstrip("]").split(", ")] if sep else None
        out.append((name, box))
    return out


def _wrap(text: str, width: int) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width and cur:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(cur)
    return lines


def render_frame(
    image: np.ndarray, cot: list[tuple[str, str]], scale: int = 3, header: str = ""
) -> np.ndarray:
    """(H, W, 3) uint8 image + CoT -> (H * scale + panel, W * scale, 3) uint8 with boxes and text."""
    H, W = image.shape[:2]
    big = Image.fromarray(image).resize((W * scale, H * scale), Image.NEAREST)
    font = ImageFont.load_default()
    line_h = 12
    width_chars = max(20, (W * scale) // 6)
    tags = dict(cot)
    lines = [header] if header else []
    for tag, text in cot:
        if tag == "OBJECTS":
            text = "; ".join(n for n, _ in parse_objects(text)) or text
        lines += _wrap(f"{tag}: {text}", width_chars)
    panel_h = line_h * max(PANEL_LINES, len(lines)) + 6
    canvas = Image.new("RGB", (W * scale, H * scale + panel_h), (0, 0, 0))
    canvas.paste(big, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (name, box) in enumerate(parse_objects(tags.get("OBJECTS", ""))):
        if box is None:
            continue
        color = COLORS[i % len(COLORS)]
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=color, width=2)
        draw.text((x1 + 2, max(0, y1 - line_h)), name, fill=color, font=font)
    for i, line in enumerate(lines):
        draw.text((4, H * scale + 3 + i * line_h), line, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def render_previews(
    source: EpisodeSource,
    name: str,
    count: int,
    out_dir: Path,
    fmt: str = "mp4",
    camera: str = "agentview",
    strip_frames: int = 8,
    fps: int = 10,
) -> list[Path]:
    """Render the first `count` annotated episodes of run `name`; returns the files written."""
    import imageio.v2 as imageio

    anns = [a for a in sidecar.iter_episode_annotations(source.root, name) if a.status == "ok"][:count]
    if not anns:
        raise LaraUserError(f"annotation run {name!r} has no annotated episodes to preview")
    by_index = {a.episode: a for a in anns}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for ep in source.iter_episodes(sorted(by_index)):
        ann = by_index[ep.episode_index]
        if camera not in ep.images:
            raise LaraUserError(f"episode {ep.episode_index} has no {camera!r} images to preview")
        images = ep.images[camera]  # (T, H, W, 3)
        header = f"ep {ep.episode_index}: {ep.instruction}"
        if fmt == "mp4":
            path = out_dir / f"episode_{ep.episode_index:06d}.mp4"
            frames = [
                render_frame(images[t], ann.frames[t], header=f"{header} [t={t}]") for t in range(ep.length)
            ]
            h = max(f.shape[0] for f in frames)
            frames = [np.pad(f, ((0, h - f.shape[0]), (0, 0), (0, 0))) for f in frames]
            frames = [
                np.pad(f, ((0, f.shape[0] % 2), (0, f.shape[1] % 2), (0, 0))) for f in frames
            ]  # even dims
            imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
        elif fmt == "png":
            path = out_dir / f"episode_{ep.episode_index:06d}.png"
            picks = np.unique(np.linspace(0, ep.length - 1, min(strip_frames, ep.length)).round().astype(int))
            tiles = [render_frame(images[t], ann.frames[t], header=f"t={t}") for t in picks]
            h = max(f.shape[0] for f in tiles)
            tiles = [np.pad(f, ((0, h - f.shape[0]), (0, 4), (0, 0))) for f in tiles]
            imageio.imwrite(path, np.concatenate(tiles, axis=1))
        else:
            raise LaraUserError(f"unknown preview format {fmt!r} (mp4 or png)")
        paths.append(path)
        logger.info("preview written: %s", path)
    return paths
