"""Success tables with 95% Wilson intervals, `results.json`, `report.md` and a bar chart.

Built only from the per-episode JSON lines the evaluator writes, so a report can be rebuilt at
any time (`rebuild_report(out_dir)`) and always agrees with the raw records.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from envs.protocol import MAX_STEPS, NOOP_ACTION, NUM_WAIT_STEPS
from lara.utils.atomic import atomic_write_text
from lara.utils.jsonl import read_jsonl

Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion; (0, 1) when there are no trials."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = (
        0.0 if successes == 0 else max(0.0, centre - half)
    )  # exact at the ends: centre - half rounds below 0
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


@dataclass
class SuccessRow:
    name: str
    successes: int
    episodes: int
    errors: int
    mean_steps: float
    mean_latency_ms: float

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    def to_dict(self) -> dict:
        low, high = self.interval
        return {**asdict(self), "success_rate": self.rate, "ci95_low": low, "ci95_high": high}


def read_records(jsonl: Path) -> list[dict]:
    """Episode records, skipping a torn last line (a run killed mid-write); see lara.utils.jsonl."""
    return read_jsonl(jsonl)[0]


def _row(name: str, records: list[dict]) -> SuccessRow:
    steps = [r["steps"] for r in records]
    latency = [r["policy_latency_ms"] for r in records if r.get("policy_latency_ms") is not None]
    return SuccessRow(
        name=name,
        successes=sum(bool(r["success"]) for r in records),
        episodes=len(records),
        errors=sum(r.get("error") is not None for r in records),
        mean_steps=sum(steps) / len(steps) if steps else 0.0,
        mean_latency_ms=sum(latency) / len(latency) if latency else 0.0,
    )


def summarize(records: list[dict]) -> tuple[list[SuccessRow], list[SuccessRow]]:
    """(per-task rows sorted by suite/task, per-suite rows)."""
    by_task: dict[tuple[str, int], list[dict]] = {}
    for r in records:
        by_task.setdefault((r["suite"], r["task"]), []).append(r)
    task_rows = [
        _row(f"{suite} {task:>2d}: {recs[0].get('task_name', '')}", recs)
        for (suite, task), recs in sorted(by_task.items())
    ]
    suites = sorted({suite for suite, _ in by_task})
    suite_rows = [_row(s, [r for r in records if r["suite"] == s]) for s in suites]
    return task_rows, suite_rows


def results_of(records: list[dict]) -> dict:
    """results.json's "suites" and "tasks" rows of some episode records."""
    return _rows_json(*summarize(records))


def _rows_json(task_rows: list[SuccessRow], suite_rows: list[SuccessRow]) -> dict:
    return {"suites": [row.to_dict() for row in suite_rows], "tasks": [row.to_dict() for row in task_rows]}


def success_cells(successes: int, episodes: int, digits: int = 1) -> list[str]:
    """The cells every success table shows: "k/n", the rate and its 95% Wilson interval, in percent
    with `digits` decimals."""
    low, high = wilson_interval(successes, episodes)
    rate = successes / episodes if episodes else 0.0
    return [
        f"{successes}/{episodes}",
        f"{100 * rate:.{digits}f}%",
        f"[{100 * low:.{digits}f}, {100 * high:.{digits}f}]",
    ]


def _markdown_row(cells: list[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def success_table(
    rows: list[tuple],
    first: str = "",
    extra: tuple[str, ...] = (),
    digits: int = 1,
    labels: tuple[str, str, str] = ("success", "rate", "95% CI"),
) -> list[str]:
    """The one writer of success tables with Wilson intervals (evaluation reports, the multi-suite
    report, the demo's): a markdown header (`first`, `labels`, `extra`), then per row
    `(name, successes, episodes, *extra cells)`."""
    header = [first, *labels, *extra]
    lines = [_markdown_row(header), "|---" * len(header) + "|"]
    for name, successes, episodes, *cells in rows:
        lines.append(
            _markdown_row([str(name), *success_cells(successes, episodes, digits), *map(str, cells)])
        )
    return lines


def _table(rows: list[SuccessRow]) -> list[str]:
    return success_table(
        [
            (r.name, r.successes, r.episodes, f"{r.mean_steps:.0f}", f"{r.mean_latency_ms:.2f}", r.errors)
            for r in rows
        ],
        extra=("mean steps", "policy ms/step", "errors"),
    )


# a run without --execute_steps: each checkpoint's own setting (the policy's queue reads it)
STEPS_DEFAULT = "inference.n_action_steps (the checkpoint's)"
TIME_PARTS = (
    ("simulator", "sim_seconds"),
    ("rendering", "render_seconds"),
    ("policy", "policy_seconds"),
    ("set-up", "setup_seconds"),
)


def time_split(records: list[dict]) -> dict[str, float] | None:
    """Seconds of the episodes that recorded a split (evaluator's EpisodeClock), summed per part;
    `other` = episode time outside them (checks, policy reset, video). None if none recorded one."""
    timed = [r for r in records if r.get("policy_seconds") is not None]
    if not timed:
        return None
    out = {name: sum(r.get(key) or 0.0 for r in timed) for name, key in TIME_PARTS}
    out["other"] = max(0.0, sum(r["seconds"] for r in timed) - sum(out.values()))
    out["episodes"] = len(timed)
    return out


def _time_lines(split: dict[str, float] | None) -> list[str]:
    if split is None:
        return []
    total = sum(v for k, v in split.items() if k != "episodes") or 1.0
    parts = [name for name, _ in TIME_PARTS] + ["other"]
    bound = max(parts[:3], key=lambda k: split[k])  # of the three that scale with the episode count
    return [
        "## Where the time went",
        f"Summed over {split['episodes']} episodes; this evaluation is bound by **{bound}**.",
        "",
        "| part | seconds | share |",
        "|---|---|---|",
        *[f"| {k} | {split[k]:.1f} | {100 * split[k] / total:.1f}% |" for k in parts],
        "",
    ]


def plot_success(task_rows: list[SuccessRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(task_rows) + 2), 3.5))
    names = [row.name.split(":")[0] for row in task_rows]
    rates = [100 * row.rate for row in task_rows]
    # Wilson bounds can land a rounding error past the rate (0/n, n/n); matplotlib rejects negative bars
    errs = [
        [max(0.0, 100 * (row.rate - row.interval[0])) for row in task_rows],
        [max(0.0, 100 * (row.interval[1] - row.rate)) for row in task_rows],
    ]
    ax.bar(range(len(rates)), rates, yerr=errs, capsize=3, color="#4C72B0")
    ax.set_xticks(range(len(rates)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("success % (95% Wilson CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out_dir: Path, run_info: dict, records: list[dict]) -> dict:
    """Write results.json, success.png and report.md into `out_dir`; returns the results dict."""
    task_rows, suite_rows = summarize(records)
    results = {"run": run_info, **_rows_json(task_rows, suite_rows), "time_split": time_split(records)}
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2))
    if task_rows:
        plot_success(task_rows, out_dir / "success.png")

    suite = run_info.get("suite", "")
    per_task = run_info.get("episodes_per_task")
    header_note = (
        f"**{per_task} episodes per task (the standard protocol uses 50).**"
        if per_task and per_task < 50
        else ""
    )
    inference = run_info.get("policy_inference")  # a checkpoint: the stage that trained it, its path
    lines = [
        f"# LIBERO evaluation: {run_info.get('policy')} on {suite}",
        "",
        header_note,
        "",
        *(
            [f"Policy trained by stage {inference['stage']}; inference: {inference['inference']}.", ""]
            if inference
            else []
        ),
        "## Per suite",
        *_table(suite_rows),
        "",
        "## Per task",
        *_table(task_rows),
        "",
        "![success per task](success.png)" if task_rows else "",
        "",
        *_time_lines(results["time_split"]),
        "## Protocol",
        f"- Episode i starts from the suite's init state i; seed {run_info.get('seed')}; "
        f"{NUM_WAIT_STEPS} wait steps with the no-op {NOOP_ACTION} before the policy acts.",
        f"- Max policy steps: {MAX_STEPS.get(suite, '?')} ({suite}). Success: LIBERO's BDDL predicate.",
        f"- Cameras {run_info.get('camera_size')}x{run_info.get('camera_size')}, flipped [::-1, ::-1]; "
        "state = eef pos + axis-angle + 2 gripper joints; gripper -1 open / +1 close.",
        f"- Chunked policies execute the first {run_info.get('execute_steps') or STEPS_DEFAULT} actions of "
        "each chunk open-loop.",
        "",
        "## Versions",
        *[f"- {k}: {v}" for k, v in run_info.get("versions", {}).items()],
        f"- python: {platform.python_version()}, GL backend: {run_info.get('gl_backend')}",
    ]
    videos = sorted((out_dir / "videos").glob("*.mp4")) if (out_dir / "videos").is_dir() else []
    if videos:
        lines += [
            "",
            "## Rollout videos (agentview | wrist)",
            *[f"- [{v.name}](videos/{v.name})" for v in videos],
        ]
    errors = [r for r in records if r.get("error")]
    if errors:
        lines += [
            "",
            "## Episodes that raised",
            *[f"- task {r['task']} episode {r['episode']}: {r['error']}" for r in errors],
        ]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    return results
