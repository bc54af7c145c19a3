"""`runs/demo/report.md`: what `lara demo` measured, written for a person.

Everything here is read back from the run's own outputs (collect.json, the dataset's meta, the
annotation sidecar, each stage's tensorboard scalars, the evaluation's results.json, latency.json,
timings.json), so the report can be rebuilt at any time and every figure in it was measured by
the steps of that run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

from envs.report import success_table as markdown_success_table
from lara.scripts.pipeline import REPO, PipelineConfig
from lara.utils.atomic import atomic_write_text

STAGE_NAMES = {
    1: "I (explicit CoT + FAST tokens)",
    2: "II (CoT progressively latent)",
    3: "III (DiT expert, flow)",
}


def stage_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from a training run's tensorboard folder (resumed runs merged)."""
    import logging

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # one INFO line per event file otherwise

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    series: dict[str, dict[int, float]] = {}
    for tag in acc.Tags()["scalars"]:
        series[tag] = {e.step: e.value for e in acc.Scalars(tag)}  # a resumed step keeps its last value
    return {tag: sorted(points.items()) for tag, points in series.items()}


def plot_stage(stage: int, scalars: dict[str, list[tuple[int, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for tag in sorted(t for t in scalars if t.startswith("loss/")):
        steps, values = zip(*scalars[tag])
        values = [
            v if v > 0 else float("nan") for v in values
        ]  # 0 (e.g. CoT CE once all latent): no log point
        ax.plot(
            steps,
            values,
            label=tag.split("/", 1)[1],
            lw=1.4 if tag == "loss/total" else 1.0,
            marker="o" if len(steps) < 5 else None,
        )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)")
    ax.set_title(f"stage {STAGE_NAMES[stage]}", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    if stage == 2 and "train/latent_probability" in scalars:  # the curriculum's schedule, on its own axis
        steps, values = zip(*scalars["train/latent_probability"])
        twin = ax.twinx()
        twin.plot(steps, values, color="grey", ls="--", lw=1.0)
        twin.set_ylabel("latent probability p", color="grey")
        twin.set_ylim(-0.05, 1.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _dataset_section(cfg: PipelineConfig) -> list[str]:
    import pandas as pd

    info = _read_json(cfg.data_dir / "meta" / "info.json") or {}
    episodes = pd.concat(
        pd.read_parquet(f) for f in sorted((cfg.data_dir / "meta" / "episodes").glob("*/*.parquet"))
    )
    jitter = "" if cfg.perturb_xy == 0 else f" (objects moved up to {cfg.perturb_xy} m)"
    starts = f"demo k of a task starts from the suite's init state k{jitter or ' (no perturbation)'}"
    layouts = _read_json(cfg.data_dir / "lara" / "collection.json")
    if cfg.init == "sampled" and layouts:
        starts = (
            f"demos start from layouts drawn by LIBERO's placement sampler{jitter} (seed {layouts['seed']}, "
            f"region fit {layouts['region_fit']}), never within {layouts['min_layout_distance_m']} m of an "
            f"evaluation init state: {layouts['layouts_refused']} draw(s) refused, nearest kept layout "
            f"{layouts['min_distance_to_evaluation_states_m']:.3f} m"
        )
    per_task = episodes.assign(task=episodes["tasks"].map(lambda t: t[0])).groupby("task")["length"]
    lines = [
        "## 1. Dataset: scripted demonstrations",
        "",
        f"`{cfg.data_dir}` (LeRobot v3): {info.get('total_episodes')} episode(s), "
        f"{info.get('total_frames')} frames at "
        f"{info.get('fps')} Hz, cameras {cfg.camera_size} px, {cfg.suite} tasks {cfg.tasks}; {starts}.",
        "",
        "| instruction | demos | mean frames |",
        "|---|---|---|",
        *[f"| {task} | {len(lengths)} | {lengths.mean():.0f} |" for task, lengths in per_task],
    ]
    collect = _read_json(cfg.out / "collect.json")
    if collect:
        lines += [
            "",
            f"Collection: {collect['collected_now']} demo(s) in {collect['seconds']:.0f} s "
            f"({collect['demos_per_minute']:.2f} demos/min, {cfg.workers} worker process(es)); attempt "
            "outcomes "
            f"{collect['attempt_outcomes']}; {collect['not_collected']} slot(s) not collected.",
        ]
    return lines


def _annotation_section(cfg: PipelineConfig) -> list[str]:
    from data_pipeline.annotation.sidecar import iter_episode_annotations

    lines = ["", f"## 2. Annotation (`sim` backend, run `{cfg.annotation}`)", ""]
    anns = [a for a in iter_episode_annotations(cfg.data_dir, cfg.annotation)]
    ok = sum(a.status == "ok" for a in anns)
    lines.append(f"{ok}/{len(anns)} episodes annotated. Preview (boxes from the simulator, CoT per frame):")
    lines.append("")
    lines += [
        f"![annotation preview]({p.relative_to(cfg.out)})" for p in sorted(cfg.preview_dir.glob("*.png"))
    ]
    first = next((a for a in anns if a.status == "ok"), None)
    if first is not None:
        lines += [
            "",
            f"CoT of episode {first.episode} at its first, middle and last frame:",
            "",
            "| frame | CoT |",
            "|---|---|",
        ]
        for t in (0, first.num_frames // 2, first.num_frames - 1):
            text = " ".join(f"<{tag}> {value}" for tag, value in first.frames[t]).replace("|", "/")
            lines.append(f"| {t} | {text} |")
    return lines


def _training_section(cfg: PipelineConfig) -> list[str]:
    lines = [
        "",
        f"## 3. Training: the three-stage curriculum ({cfg.curriculum} preset, CPU)",
        "",
        "| stage | steps | first loss | last loss | samples/s | checkpoint |",
        "|---|---|---|---|---|---|",
    ]
    plots = []
    for stage in (1, 2, 3):
        run = cfg.stage_dir(stage)
        if not (run / "tensorboard").is_dir():
            lines.append(f"| {STAGE_NAMES[stage]} | not run | | | | |")
            continue
        scalars = stage_scalars(run)
        total = scalars.get("loss/total", [])
        sps = scalars.get("train/samples_per_s", [])
        png = cfg.out / f"loss_stage{stage}.png"
        plot_stage(stage, scalars, png)
        plots.append(f"![stage {stage} losses]({png.name})")
        lines.append(
            f"| {STAGE_NAMES[stage]} | {total[-1][0] if total else 0} | {total[0][1]:.3f} | "
            f"{total[-1][1]:.3f} | "
            f"{sps[-1][1]:.1f} | `{(run / 'final').relative_to(cfg.out)}` |"
        )
    return [
        *lines,
        "",
        "(first/last: the first and last logged `loss/total`; samples/s over the whole stage)",
        "",
        *plots,
    ]


def success_table(results: dict) -> list[str]:
    """Markdown rows: successes, rate and 95% Wilson interval per task, then per suite (results.json)."""
    rows = [*results["tasks"], *results["suites"]]
    return markdown_success_table(
        [(r["name"], r["successes"], r["episodes"], f"{r['mean_steps']:.0f}") for r in rows],
        extra=("mean steps",),
        digits=0,
        labels=("successes", "rate", "95% Wilson CI"),
    )


def _eval_section(cfg: PipelineConfig) -> list[str]:
    results = _read_json(cfg.eval_dir / "results.json")
    lines = ["", "## 4. Closed-loop evaluation in LIBERO (stage-III policy)", ""]
    if results is None:
        return [*lines, "not run yet"]
    lines += [
        f"{cfg.eval_episodes} episode(s) per task from init states 0..{cfg.eval_episodes - 1}: the states "
        "the demos "
        "started from, so this checks that the whole spine (data, normalization, gripper sign, image flip, "
        "chunk "
        "execution) can reproduce what it was shown. It is not a generalization result."
        + (
            f" **Episodes capped at {cfg.eval_max_steps} steps (smoke run; the protocol's limit is higher).**"
            if cfg.eval_max_steps
            else ""
        ),
        "",
        *success_table(results),
    ]
    lines += [
        "",
        "![success per task](eval/success.png)",
        "",
        "Full report: [eval/report.md](eval/report.md)",
    ]
    videos = sorted((cfg.eval_dir / "videos").glob("*.mp4"))
    if videos:
        lines += [
            "",
            "Rollout videos (agentview | wrist):",
            *[f"- [{v.name}](eval/videos/{v.name})" for v in videos],
        ]
    return lines


def _latency_section(cfg: PipelineConfig, latency: dict | None) -> list[str]:
    from lara.scripts.bench_latency import checkpoint_table

    lines = ["", "## 5. Latency: explicit CoT vs latent reasoning (trained checkpoints, CPU)", ""]
    if latency is None:
        return [*lines, "not run yet"]
    for key in ("explicit_checkpoint", "latent_checkpoint"):  # shown relative to the report
        path = Path(latency[key])
        latency = {
            **latency,
            key: str(path.relative_to(cfg.out)) if path.is_relative_to(cfg.out) else str(path),
        }
    raw = latency["cot_text"]
    cot = " ".join(raw.split()) or (
        f"({len(raw)} whitespace characters)" if raw else "(empty: <img_next> at once)"
    )
    return [
        *lines,
        checkpoint_table(latency),
        "",
        f"Median of {latency['reps']} runs after {latency['warmup']} warm-up, {latency['threads']} torch "
        "threads, "
        f"on the first frame of demo 0. Explicit: the stage-I model generates its CoT and FAST action tokens "
        "itself (greedy, KV cache) until it emits the stop tokens; latent: one prefill and the expert's "
        "Euler steps.",
        "",
        "CoT the stage-I model generated for that frame:",
        "",
        f"    {cot[:400]}",
    ]


def _probe_section(cfg: PipelineConfig) -> list[str]:
    """The headline probe table of `lara probe` on the stage-III policy (full report: probe/probe.md)."""
    from curriculum.offline.probe_report import own_slot_rows, probe_table

    lines = ["", "## 6. Latent probes of the stage-III policy", ""]
    result = _read_json(cfg.out / "probe" / "probe.json")
    if result is None:
        return [*lines, "not run yet"]
    d = result["data"]
    lines += [
        f"Linear probes from each tag's latent slot to the annotation, fit on demos {d['fit_episodes']} and "
        f"scored on demos {d['score_episodes']} ({d['frames']} frames; every demo was also a training demo), "
        "beside the same probe on a randomly initialized model, on shuffled labels, and the majority class. "
        "Decoding and visual foresight: [probe/probe.md](probe/probe.md).",
        "",
        *probe_table(own_slot_rows(result)),
    ]
    fs = result.get("foresight")
    if fs and fs.get("frames"):
        lines += [
            "",
            f"Visual foresight on {fs['frames']} frames: `<img_next>` L1 {fs['l1']['mean']:.4f} to the EMA "
            f'target of the next frame, against {fs["copy_l1"]["mean"]:.4f} for "the next frame looks like '
            'this one".',
        ]
    return [*lines, "", "![probes](probe/probes.png)"]


def report_header(cfg: PipelineConfig, title: str, command: str) -> list[str]:
    """Title, command, code and machine, and the wall time of every step (timings.json)."""
    import torch

    timings = _read_json(cfg.out / "timings.json") or {}
    return [
        f"# {title}",
        "",
        f"Command: `{command}`  ",
        f"Code: commit {_git_commit()}; torch {torch.__version__}; python {platform.python_version()}; "
        f"{platform.machine()} with {len(os.sched_getaffinity(0))} CPU cores.",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {name} | {seconds:.0f} |" for name, seconds in timings.items()],
        f"| **total** | **{sum(timings.values()):.0f}** |",
        "",
        "(each step's time was measured by the run that did it; a resumed run skips finished steps)",
        "",
    ]


def write_report(cfg: PipelineConfig, command: str) -> Path:
    latency = _read_json(cfg.out / "latency.json")
    lines = report_header(cfg, "LaRA demo report", command)
    lines += _dataset_section(cfg)
    lines += _annotation_section(cfg)
    lines += _training_section(cfg)
    lines += _eval_section(cfg)
    lines += _latency_section(cfg, latency)
    lines += _probe_section(cfg)
    path = cfg.out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
