"""`lara annotate --dataset DIR --backend sim --name v1 [--workers W] [--worker_backend ray] [--preview N]`.

Thin: `parse_config` reads an `AnnotateConfig` (every `AnnotationConfig` field, e.g.
`--motion_dead_zone 0.01`, plus where and how the run goes; `--config_path
configs/annotation/sim.yaml` for a preset), then `annotate_dataset` runs, the summary is printed
and previews are rendered. User errors raise `LaraUserError` (the `lara` dispatcher prints them as
one line).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from data_pipeline.annotation.config import BACKEND_NAMES, AnnotationConfig
from envs.worker_backends import check_backend
from lara.utils.config_parsing import parse_config
from lara.utils.errors import LaraUserError

logger = logging.getLogger(__name__)
PREVIEW_FORMATS = ("mp4", "png")


@dataclass
class AnnotateConfig(AnnotationConfig):
    """The annotation settings (the ones the sidecar's config hash covers) plus how and where to run."""

    # semantic anchors: sim (LIBERO, exact boxes) | instruction (any dataset, no boxes) | vlm (Qwen3-VL,
    # needs --vlm_model_dir)
    backend: str = ""
    dataset: str = ""  # LeRobot dataset folder; the sidecar goes to <dataset>/annotations/<name>/
    name: str = ""  # annotation run name (the trainer selects it by this name)
    mapping: str = "auto"  # key mapping of the dataset: a configs/data/ preset, a YAML path, or auto
    workers: int = 1  # worker processes
    # local: worker processes here; ray: Ray actors, on a local Ray or the cluster at --ray_address
    # (its nodes must see --dataset at the same path). `--backend` names the semantic annotator.
    worker_backend: str = "local"
    ray_address: str | None = None
    episodes: str = ""  # only these episodes, e.g. '0-9,12' (default: all)
    overwrite: bool = False  # replace an existing run made with another config
    preview: int = 0  # render this many annotated episodes for review
    preview_format: str = "mp4"  # mp4 | png
    preview_dir: str = ""  # where previews go (default: the run folder's preview/)
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.backend:
            raise LaraUserError(
                f"choose a backend: --backend {' | '.join(BACKEND_NAMES)} "
                "(or --config_path configs/annotation/<backend>.yaml)"
            )
        if not self.dataset or not self.name:
            raise LaraUserError("give --dataset (a LeRobot dataset folder) and --name (the annotation run)")
        if self.preview_format not in PREVIEW_FORMATS or self.preview < 0 or self.workers < 1:
            raise LaraUserError(
                f"--preview_format must be one of {', '.join(PREVIEW_FORMATS)}, "
                "--preview >= 0, --workers >= 1"
            )
        check_backend(self.worker_backend, self.ray_address, "--worker_backend")
        super().__post_init__()

    def annotation_config(self) -> AnnotationConfig:
        """The settings the annotator and the sidecar's hash see (this config minus the run fields)."""
        names = [f.name for f in dataclasses.fields(AnnotationConfig)]
        return AnnotationConfig(**{name: getattr(self, name) for name in names})


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
        raise LaraUserError(f"--episodes {spec!r}: expected indices or ranges like '0-9,12'") from err
    return sorted(out)


def main(argv: list[str]) -> int:
    cfg = parse_config(AnnotateConfig, argv, prog="lara annotate")
    from data_pipeline.annotation.annotate import annotate_dataset
    from data_pipeline.annotation.source import LeRobotSource

    source = LeRobotSource(Path(cfg.dataset), mapping=cfg.mapping)
    logger.info("%s: key mapping %s", source.root, source.mapping.name)
    summary = annotate_dataset(
        source,
        cfg.name,
        cfg.annotation_config(),
        workers=cfg.workers,
        overwrite=cfg.overwrite,
        progress=cfg.progress,
        episodes=parse_episodes(cfg.episodes),
        worker_backend=cfg.worker_backend,
        ray_address=cfg.ray_address,
    )
    print(summary.format())
    if cfg.preview > 0:
        from data_pipeline.annotation import sidecar
        from data_pipeline.annotation.preview import render_previews

        out_dir = Path(cfg.preview_dir or sidecar.annotation_dir(source.root, cfg.name) / "preview")
        for path in render_previews(source, cfg.name, cfg.preview, out_dir, fmt=cfg.preview_format):
            print(f"preview: {path}")
    if summary.annotated == 0:
        reasons = ", ".join(f"{r} ({n})" for r, n in summary.skip_reasons.items())
        raise LaraUserError(f"all {summary.total} episodes were skipped ({reasons}); nothing was annotated")
    return 0
