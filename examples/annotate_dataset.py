"""Journey 1: annotate a dataset with the structured chain of thought and write a preview.

    .venv/bin/python examples/annotate_dataset.py                       # the tiny default (below)
    .venv/bin/python examples/annotate_dataset.py --dataset DATASET --backend instruction --name instr-v1 \
        --preview 2 --workers 2 [--out runs/examples]

Without --dataset, 2 scripted demos of libero_object task 0 are first collected into
`<out>/demos` (skipped when that dataset exists) and annotated with the `sim` backend. The CoT
goes into the sidecar `DATASET/annotations/NAME/`; PNG previews (frames with their CoT) into
`<out>/preview/NAME/`. Re-running resumes: finished episodes are not annotated again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data_pipeline.annotation.annotate import annotate_dataset
from data_pipeline.annotation.config import AnnotationConfig
from data_pipeline.annotation.preview import render_previews
from data_pipeline.annotation.sidecar import annotation_dir, load_annotations, read_meta
from data_pipeline.annotation.source import LeRobotSource
from lara.scripts.cli import configure_logging
from lara.utils.config_parsing import parse_config
from lara.utils.errors import LaraUserError, run_main


@dataclass
class Settings:
    dataset: Path | None = None  # LeRobot dataset (default: 2 collected demos)
    backend: str = "sim"  # sim | instruction
    name: str = ""  # annotation run name (default: <backend>-v1)
    preview: int = 2  # episodes to render as PNG strips (0: none)
    workers: int = 2
    out: Path = Path("runs/examples")  # demos and previews go here


def collect_default_demos(out: Path, workers: int) -> Path:
    """2 scripted-expert demos of libero_object task 0 (a LeRobot dataset with MuJoCo states)."""
    demos = out / "demos"
    if (demos / "meta" / "info.json").exists():
        print(f"using the demos already in {demos}")
        return demos
    from data_pipeline.collect import CollectConfig, collect, summary

    result = collect(
        CollectConfig(
            suite="libero_object",
            tasks="0",
            episodes_per_task=2,
            out=str(demos),
            workers=min(workers, 2),
            perturb_xy=0.0,
        )
    )
    print(summary(result))
    return demos


def main(argv: list[str] | None = None) -> int:
    args = parse_config(Settings, argv, prog="examples/annotate_dataset.py")
    configure_logging()
    name = args.name or f"{args.backend}-v1"

    dataset = args.dataset or collect_default_demos(args.out, args.workers)
    source = LeRobotSource(dataset)
    summary = annotate_dataset(source, name, AnnotationConfig(backend=args.backend), workers=args.workers)
    print(summary.format())
    previews = []
    if args.preview:
        previews = render_previews(source, name, args.preview, args.out / "preview" / name, fmt="png")

    run_dir = annotation_dir(dataset, name)
    print(f"sidecar: {run_dir} (complete: {read_meta(run_dir)['complete']})")
    for path in previews:
        print(f"preview: {path}")

    cot = load_annotations(dataset, name, include_plan=True)  # {(episode, frame): [(tag, text), ...]}
    if not cot:
        raise LaraUserError(f"every episode was skipped: {summary.skip_reasons}")
    episode = min(ep for ep, _ in cot)  # episode 0 unless it was skipped
    last = max(frame for ep, frame in cot if ep == episode)
    for frame in sorted({0, last // 2, last}):
        print(f"episode {episode}, frame {frame}:")
        for tag, text in cot[(episode, frame)]:
            print(f"  {tag:8s} {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
