"""`<out>/report.md` of the generalization benchmark, rebuilt at any time from the run's own files.

The dataset, annotation and training sections are the demo report's (lara/scripts/demo_report.py); this
module adds what a generalization result needs: the standard protocol's success table (Wilson
intervals per task and overall), how far the demos' start layouts were from the evaluation init
states, failure videos, and the equivalent `lara` command of every step.
"""

from __future__ import annotations

import dataclasses
import itertools
import shlex
import shutil
from pathlib import Path

from envs.protocol import max_steps
from envs.report import read_records, results_of, success_cells
from lara.scripts.demo_report import (
    _annotation_section,
    _dataset_section,
    _git_commit,
    _read_json,
    _training_section,
    report_header,
    success_table,
)
from lara.scripts.pipeline import REPO, PipelineConfig, collect_config, eval_args
from lara.utils.atomic import atomic_write_text
from lara.utils.errors import LaraUserError


def cli_flags(config: object) -> list[str]:
    """`--field value` for every dataclass field that differs from its default."""
    flags = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if value != default:
            flags += [f"--{f.name}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


def step_commands(cfg: PipelineConfig) -> dict[str, str]:
    """The `lara` command equivalent to each pipeline step (the steps call the same functions in-process)."""
    data, ann = str(cfg.data_dir), cfg.annotation
    commands = {
        "collect": "lara collect " + shlex.join(cli_flags(collect_config(cfg))),
        "annotate": (
            f"lara annotate --dataset {shlex.quote(data)} --backend sim --name {ann} --workers {cfg.workers}"
        ),
    }
    for stage in (1, 2, 3):
        commands[f"train_stage{stage}"] = (
            f"lara train --curriculum {shlex.quote(str(cfg.curriculum))} --out "
            f"{shlex.quote(str(cfg.out / 'train'))} --stages {stage} --dataset {shlex.quote(data)} "
            f"--data.annotation {ann} --steps {cfg.stage_steps[stage - 1]}"
        )
    commands["evaluate"] = "lara eval " + shlex.join(eval_args(cfg))
    commands.update(baseline_commands(cfg))
    return {name: cmd.replace(f"{REPO}/", "") for name, cmd in commands.items()}  # presets as repo paths


def baseline_commands(cfg: PipelineConfig) -> dict[str, str]:
    """The baseline arm's two steps as `lara` commands, once benchmarks/generalization/baseline.py ran."""
    from benchmarks.generalization import baseline_arm as baseline

    settings = _read_json(cfg.out / "pipeline.json")
    if settings is None or not (cfg.out / baseline.BASELINE_DIR).is_dir():
        return {}
    arm = baseline.BaselineConfig(out=cfg.out, workers=cfg.workers)
    return {
        "train_baseline": "lara train " + shlex.join(baseline.train_args(arm, settings)),
        "evaluate_baseline": "lara eval " + shlex.join(baseline.eval_args(arm, settings)),
    }


def failure_videos(cfg: PipelineConfig, limit: int) -> list[dict]:
    """Up to `limit` failed episodes with a video, one per task first (variety over count)."""
    by_task: dict[int, list[dict]] = {}
    for r in sorted(read_records(cfg.eval_dir / "episodes.jsonl"), key=lambda r: (r["task"], r["episode"])):
        if not r.get("success") and r.get("video"):
            by_task.setdefault(r["task"], []).append(r)
    rounds = itertools.zip_longest(*by_task.values())  # each task's 1st failure, then each task's 2nd, ...
    return [r for row in rounds for r in row if r is not None][:limit]


def _eval_section(cfg: PipelineConfig, max_videos: int) -> list[str]:
    results = _read_json(cfg.eval_dir / "results.json")
    lines = ["", "## 4. Standard-protocol evaluation (stage-III policy)", ""]
    if results is None:
        return [*lines, "not run yet"]
    layouts = _read_json(cfg.data_dir / "lara" / "collection.json") or {}
    run = _read_json(cfg.eval_dir / "run.json") or {}
    k = cfg.eval_episodes
    nearest = layouts.get("min_distance_to_evaluation_states_m")
    lines += [
        f"{k} episode(s) per task from the suite's evaluation init states 0..{k - 1} "
        f"({run.get('camera_size', '?')} "
        f"px cameras, seed {run.get('seed', '?')}, step limit {cfg.eval_max_steps or max_steps(cfg.suite)}). "
        "No training demo started from one of them"
        + (f" (nearest demo start {nearest:.3f} m, largest object offset)." if nearest is not None else ".")
        + (" **Fewer episodes than the full protocol (50 per task): a quick result.**" if k < 50 else "")
        + (
            f" **Episodes capped at {cfg.eval_max_steps} steps: a smoke run, not the protocol.**"
            if cfg.eval_max_steps
            else ""
        ),
        "",
        *success_table(results),
        "",
        "![success per task](eval/success.png)",
    ]
    videos = failure_videos(cfg, max_videos)
    if videos:
        lines += [
            "",
            "Failure videos (agentview | wrist):",
            *[
                f"- task {v['task']}, init state {v['episode']}: [{Path(v['video']).name}](eval/{v['video']})"
                for v in videos
            ],
        ]
    return lines


def comparison_table(lara: dict, baseline: dict) -> list[str]:
    """Markdown rows: per task and overall, each arm's successes, rate and 95% Wilson interval."""

    def cell(row: dict) -> str:
        count, rate, interval = success_cells(row["successes"], row["episodes"], digits=0)
        return f"{count} = {rate} {interval}"

    lines = ["| task | LaRA (stages I-III) | baseline (stage III only) |", "|---|---|---|"]
    base_tasks = {row["name"]: row for row in baseline["tasks"]}
    for row in lara["tasks"]:
        other = base_tasks.get(row["name"])
        lines.append(f"| {row['name']} | {cell(row)} | {cell(other) if other else 'not run'} |")
    lines.append(f"| **overall** | **{cell(lara['suites'][0])}** | **{cell(baseline['suites'][0])}** |")
    return lines


def partial_comparison(lara_eval: Path, baseline_eval: Path) -> tuple[dict, dict, str]:
    """Both arms' results on the (task, init state) episodes the baseline's unfinished evaluation
    has recorded so far, and a sentence saying so."""
    done = read_records(baseline_eval / "episodes.jsonl")
    keys = {(r["task"], r["episode"]) for r in done}
    lara = [r for r in read_records(lara_eval / "episodes.jsonl") if (r["task"], r["episode"]) in keys]
    run = _read_json(baseline_eval / "run.json") or {}
    planned = run.get("episodes_per_task", "?")
    note = (
        f"**Partial: the baseline's evaluation stopped after {len(done)} episodes (tasks "
        f"{min(k[0] for k in keys)}-{max(k[0] for k in keys)}, {planned} init states per task planned); "
        "both arms below are scored on exactly those episodes.**"
    )
    return results_of(lara), results_of(done), note


def _baseline_section(cfg: PipelineConfig) -> list[str]:
    from benchmarks.generalization.baseline_arm import BASELINE_DIR

    arm = cfg.out / BASELINE_DIR
    lines = ["", "## 5. Baseline (same data and model size, no reasoning)", ""]
    lines.append(
        "`lara train --preset <size> --stage baseline`: stage III alone from random init, with no chain of "
        "thought, no latent segments, no `<img_next>` slots and no visual L1, for as many optimizer steps at "
        "the same batch size as LaRA's three stages together; the same evaluation."
    )
    lara, baseline = _read_json(cfg.eval_dir / "results.json"), _read_json(arm / "eval" / "results.json")
    partial = lara is not None and baseline is None and (arm / "eval" / "episodes.jsonl").is_file()
    if partial:  # an evaluation stopped early: both arms on the episodes the baseline finished
        lara, baseline, note = partial_comparison(cfg.eval_dir, arm / "eval")
        lines += ["", note]
    if lara is None or baseline is None:
        return [*lines, "", f"not run yet: `python benchmarks/generalization/baseline.py --out {cfg.out}`"]
    timings = {**(_read_json(cfg.out / "timings.json") or {}), **(_read_json(arm / "timings.json") or {})}
    lara_train = sum(v for k, v in timings.items() if k.startswith("train_stage"))
    lines += ["", *comparison_table(lara, baseline), ""]
    if "train_baseline" in timings:
        lines.append(
            f"Training wall time: LaRA {lara_train / 60:.1f} min (three stages), baseline "
            f"{timings['train_baseline'] / 60:.1f} min (one machine, other jobs may have shared it)."
        )
    return lines


def write_report(cfg: PipelineConfig, command: str, max_videos: int = 3) -> Path:
    lines = report_header(cfg, "LaRA generalization benchmark (libero_object, standard protocol)", command)
    lines += _dataset_section(cfg)
    lines += _annotation_section(cfg)
    lines += _training_section(cfg)
    lines += _eval_section(cfg, max_videos)
    lines += _baseline_section(cfg)
    lines += [
        "",
        "## Commands",
        "",
        "Each step as a standalone `lara` command (the script runs the same code "
        "in-process and skips a step whose output exists):",
        "",
        "```",
    ]
    lines += [f"# {name}\n{cmd}" for name, cmd in step_commands(cfg).items()]
    lines += ["```"]
    path = cfg.out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def published_files(cfg: PipelineConfig, max_videos: int = 3) -> list[str]:
    """Paths (relative to `cfg.out`) of the report and the small files it shows or summarizes."""
    names = [
        "report.md",
        "timings.json",
        "collect.json",
        "pipeline.json",
        "data/lara/collection.json",
        "eval/results.json",
        "eval/episodes.jsonl",
        "eval/run.json",
        "eval/success.png",
    ]
    names += [p.name for p in sorted(cfg.out.glob("loss_stage*.png"))]
    names += [str(p.relative_to(cfg.out)) for p in sorted(cfg.preview_dir.glob("*.png"))]
    names += [f"eval/{v['video']}" for v in failure_videos(cfg, max_videos)]
    names += [
        f"baseline/{n}" for n in ("timings.json", "eval/results.json", "eval/episodes.jsonl", "eval/run.json")
    ]
    return [n for n in names if (cfg.out / n).is_file()]


BASELINE_FILES = ("timings.json", "eval/results.json", "eval/episodes.jsonl", "eval/run.json")


def demo_layouts(folder: Path) -> set[tuple[int, int, int]] | None:
    """(task, slot, layout seed) of every demo a run collected (its data/lara/collection.json)."""
    layouts = _read_json(folder / "data" / "lara" / "collection.json")
    if layouts is None:
        return None
    return {(e["task_id"], e["slot"], e["layout_seed"]) for e in layouts["episodes"]}


def publish_baseline(run: Path, dest: Path, command: str) -> list[Path]:
    """Add the baseline arm of the run in `run` to the report published in `dest` (by `run.py
    --publish`, possibly from an earlier run of the same settings): copy its small result files to
    `dest/baseline/`, rebuild section 5 of `dest/report.md` and add its commands. Refused when the
    two runs' demos started from different layouts (the comparison needs the same data)."""
    from benchmarks.generalization.baseline_arm import BASELINE_DIR

    report = dest / "report.md"
    if not report.is_file():
        raise LaraUserError(f"{dest} holds no published report: run `run.py --publish {dest}` first")
    ours, theirs = demo_layouts(run), demo_layouts(dest)
    if ours is None or theirs is None or ours != theirs:
        raise LaraUserError(
            f"the demos of {run} and of the report in {dest} started from different layouts "
            "(data/lara/collection.json): the arms would not share their data"
        )
    copied = []
    for name in BASELINE_FILES:
        source, target = run / BASELINE_DIR / name, dest / BASELINE_DIR / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            copied.append(target)
        elif target.is_file():  # e.g. results.json of an earlier publish, before a re-run stopped early
            target.unlink()
    settings = _read_json(dest / "pipeline.json")
    published = PipelineConfig(**{**settings, "out": dest})
    section = _baseline_section(published)
    section += [
        "",
        f"The baseline arm was run separately (`{command}`, code: commit {_git_commit()}) on a "
        f"re-collection of the same {len(ours)} demo layouts (identical (task, slot, layout seed) "
        "triples in data/lara/collection.json).",
    ]
    text = report.read_text()
    start, end = text.index("\n## 5. "), text.index("\n## Commands")
    text = text[:start] + "\n".join(section) + "\n" + text[end:]
    run_cfg = PipelineConfig(**{**settings, "out": run})
    extra = [f"# {name}\n{cmd.replace(f'{REPO}/', '')}" for name, cmd in baseline_commands(run_cfg).items()]
    if extra and "# train_baseline" not in text:
        head, tail = text.rsplit("```", 1)
        text = head + "\n".join(extra) + "\n```" + tail
    atomic_write_text(report, text)
    return [*copied, report]
