"""`lara annotate DATASET --backend sim --name v1 [--workers W] [--preview N]`.

Thin: parse flags into an `AnnotationConfig` (a YAML preset from configs/annotation/ plus flag
overrides), run `annotate_dataset`, print the summary, optionally render previews. User errors
raise `LaraUserError` (the `lara` dispatcher prints them as one line).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from data_pipeline.annotation.config import BACKEND_NAMES, AnnotationConfig
from lara.utils.errors import LaraUserError

logger = logging.getLogger(__name__)
PRESET_DIR = Path(__file__).resolve().parents[2] / "configs" / "annotation"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lara annotate", description=__doc__.splitlines()[0])
    p.add_argument("dataset", help="LeRobot dataset folder; the sidecar goes to DATASET/annotations/NAME/")
    p.add_argument("--backend", choices=BACKEND_NAMES, help="semantic anchors: sim (LIBERO, exact boxes), "
                   "instruction (any dataset, no boxes), vlm (Qwen3-VL, needs --vlm-model-dir)")
    p.add_argument("--name", required=True, help="annotation run name (the trainer selects it by this name)")
    p.add_argument("--config", help="YAML preset (default: configs/annotation/<backend>.yaml when it exists)")
    p.add_argument("--mapping", default="libero", help="key-mapping preset of the dataset (configs/data/)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--episodes", help="only these episodes, e.g. '0-9,12'")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run made with another config")
    p.add_argument("--preview", type=int, default=0, metavar="N", help="render N annotated episodes for review")
    p.add_argument("--preview-format", choices=("mp4", "png"), default="mp4")
    p.add_argument("--preview-dir", help="where previews go (default: the run folder's preview/)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--vlm-model-dir", help="local Qwen3-VL checkpoint folder (vlm backend)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set motion_dead_zone=0.01")
    return p


def parse_episodes(spec: str | None) -> list[int] | None:
    if not spec:
        return None
    out: set[int] = set()
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                out.update(range(int(a), int(b) + 1))
            elif part:
                out.add(int(part))
    except ValueError as err:
        raise LaraUserError(f"--episodes {spec!r}: expected comma-separated indices or ranges like '0-9,12'") from err
    return sorted(out)


def _coerce(value: str) -> Any:
    import yaml

    return yaml.safe_load(value)


def build_config(args: argparse.Namespace) -> AnnotationConfig:
    overrides: dict[str, Any] = {}
    for item in args.set:
        if "=" not in item:
            raise LaraUserError(f"--set {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        overrides[key.strip()] = _coerce(value)
    if args.backend:
        overrides["backend"] = args.backend
    if args.vlm_model_dir:
        overrides["vlm_model_dir"] = args.vlm_model_dir
    preset = args.config
    if preset is None:
        backend = overrides.get("backend")
        if backend is None:
            raise LaraUserError("choose a backend: --backend sim | instruction | vlm (or --config PRESET.yaml)")
        candidate = PRESET_DIR / f"{backend}.yaml"
        preset = str(candidate) if candidate.is_file() else None
    if preset is not None:
        return AnnotationConfig.from_yaml(preset, overrides)
    return AnnotationConfig.from_dict(overrides)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    config = build_config(args)
    from data_pipeline.annotation.annotate import annotate_dataset
    from data_pipeline.annotation.source import LeRobotSource

    source = LeRobotSource(Path(args.dataset), mapping=args.mapping)
    summary = annotate_dataset(source, args.name, config, workers=args.workers, overwrite=args.overwrite,
                               progress=not args.no_progress, episodes=parse_episodes(args.episodes))
    print(summary.format())
    if args.preview > 0:
        from data_pipeline.annotation import sidecar
        from data_pipeline.annotation.preview import render_previews

        out_dir = Path(args.preview_dir) if args.preview_dir else sidecar.annotation_dir(source.root, args.name) / "preview"
        paths = render_previews(source, args.name, args.preview, out_dir, fmt=args.preview_format)
        for path in paths:
            print(f"preview: {path}")
    if summary.annotated == 0:
        reasons = ", ".join(f"{r} ({n})" for r, n in summary.skip_reasons.items())
        raise LaraUserError(f"all {summary.total} episodes were skipped ({reasons}); nothing was annotated")
    return 0
