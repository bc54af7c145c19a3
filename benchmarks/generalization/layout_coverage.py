"""Does success fall with the distance from the training layouts? A data-coverage measurement.

For every evaluated episode (task, evaluation init state) this measures how far its start layout is
from the nearest start layout of that task's training demos, and relates the distance to the
episode's success, for each arm of the benchmark. If the policies succeed where a demo started
nearby and fail farther away, the data's coverage of the layout space limits them (more demos per
task would help); if success does not depend on the distance, something else does.

Two distances, both the `envs.layouts.check_layout` metric (for the nearest demo, the largest x/y
displacement of any object, metres):
- `layout`: all free-jointed objects of the scene;
- `task_objects`: only the task's objects of interest (for libero_object: the object to pick and
  the basket), the ones a pick-and-place policy must find.

The distances need the simulator only to read each task's object list and evaluation init states
(no rendering, no stepping): about a minute for 10 tasks.

    python benchmarks/generalization/layout_coverage.py --data runs/generalization/data \\
        --out benchmarks/generalization/results/coverage

(Not named coverage.py: run as a script, its folder comes first on sys.path and numba, imported
by robosuite, would find it instead of the `coverage` package.)

Writes `coverage.jsonl` (one row per evaluated episode), `coverage.json` (the tables) and
`coverage.md`. The statistic that controls for task difficulty: within each task, the mean
distance of the failures minus that of the successes, averaged over tasks with both outcomes, and
its one-sided p-value under shuffling the success labels within each task (10,000 shuffles).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere: the repository's packages first
    sys.path.insert(0, str(REPO))

from lara.utils.errors import LaraUserError  # noqa: E402

RESULTS = REPO / "benchmarks" / "generalization" / "results"
DISTANCES = ("layout", "task_objects")
SHUFFLES = 10_000


@dataclass
class CoverageConfig:
    data: Path = Path("runs/generalization/data")  # the demos (a LeRobot dataset with lara/ sidecars)
    # arm name -> its evaluation's episodes.jsonl (both arms of the published benchmark by default)
    arms: dict[str, str] = field(
        default_factory=lambda: {
            "LaRA": str(RESULTS / "eval" / "episodes.jsonl"),
            "baseline": str(RESULTS / "baseline" / "eval" / "episodes.jsonl"),
        }
    )
    out: Path = RESULTS / "coverage"
    seed: int = 0  # of the label shuffles


def demo_start_states(data: Path) -> dict[int, list[np.ndarray]]:
    """task id -> the flattened MuJoCo states the task's demos started from (`lara/episodes/*.npz`)."""
    sidecars = sorted((data / "lara" / "episodes").glob("episode_*.npz"))
    if not sidecars:
        raise LaraUserError(
            f"{data} has no lara/episodes/episode_*.npz: coverage needs the demos' start states, which "
            "`lara collect` writes there"
        )
    starts: dict[int, list[np.ndarray]] = {}
    for path in sidecars:
        with np.load(path, allow_pickle=False) as sidecar:
            info = json.loads(str(sidecar["info"]))
            starts.setdefault(int(info["task_index"]), []).append(np.array(sidecar["init_state"]))
    return starts


def nearest_distance(layout: np.ndarray, references: np.ndarray) -> float:
    """(O, 2) layout, (N, O, 2) references -> the `check_layout` distance to the nearest one."""
    from envs.layouts import check_layout

    return check_layout(layout, references).distance


def task_distances(suite: str, task: int, starts: list[np.ndarray], init_states: list[int]) -> dict:
    """init state index -> {distance name: metres to the nearest demo start} for one task."""
    from envs.layouts import LayoutSpec
    from envs.libero_env import LiberoEnv

    with LiberoEnv(suite, task, render=False) as env:
        spec = LayoutSpec.from_env(env)
        interest = [i for i, name in enumerate(spec.names) if name in set(env.obj_of_interest)]
        if not interest:
            raise LaraUserError(f"{suite} task {task}: no free-jointed object among {env.obj_of_interest}")
        demos = np.stack([spec.positions(s) for s in starts])  # (N_demos, O, 2)
        rows = {}
        for k in init_states:
            layout = spec.positions(env.init_states[k])  # (O, 2)
            rows[k] = {
                "layout": nearest_distance(layout, demos),
                "task_objects": nearest_distance(layout[interest], demos[:, interest]),
            }
    return rows


def within_task_gap(rows: list[dict], distance: str, rng: np.random.Generator) -> dict:
    """Mean over tasks with both outcomes of (mean distance of failures - of successes), in cm, and its
    one-sided p-value when success labels are shuffled within each task."""
    by_task: dict[int, list[dict]] = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(row)
    mixed = [
        (np.array([r[distance] for r in task_rows]), np.array([r["success"] for r in task_rows], dtype=bool))
        for task_rows in by_task.values()
        if 0 < sum(r["success"] for r in task_rows) < len(task_rows)
    ]
    if not mixed:
        return {"tasks_with_both_outcomes": 0, "gap_cm": None, "p_value": None}

    def gap(labels: list[np.ndarray]) -> float:
        return float(np.mean([d[~s].mean() - d[s].mean() for (d, _), s in zip(mixed, labels)])) * 100

    observed = gap([s for _, s in mixed])
    shuffled = np.array([gap([rng.permutation(s) for _, s in mixed]) for _ in range(SHUFFLES)])
    return {
        "tasks_with_both_outcomes": len(mixed),
        "gap_cm": round(observed, 2),
        "p_value": round(float((shuffled >= observed).mean()), 4),
    }


def distance_bins(rows: list[dict], distance: str, edges_cm: list[float]) -> list[dict]:
    """Success per distance bin (cm edges), with 95% Wilson intervals."""
    from envs.report import wilson_interval

    bins = []
    for low, high in zip(edges_cm[:-1], edges_cm[1:]):
        inside = [r for r in rows if low <= 100 * r[distance] < high]
        wins = sum(r["success"] for r in inside)
        ci = wilson_interval(wins, len(inside)) if inside else (0.0, 0.0)
        bins.append({"from_cm": low, "to_cm": high, "successes": wins, "episodes": len(inside), "ci95": ci})
    return bins


def measure(cfg: CoverageConfig) -> dict:
    from envs.report import read_records

    arms = {}
    for arm, path in cfg.arms.items():
        if not Path(path).is_file():
            raise LaraUserError(f"arm {arm}: {path} does not exist (an evaluation's episodes.jsonl)")
        arms[arm] = read_records(Path(path))
    starts = demo_start_states(cfg.data)
    suites = {r["suite"] for records in arms.values() for r in records}
    if len(suites) != 1:
        raise LaraUserError(f"the arms' episodes must come from one suite, got {sorted(suites)}")
    suite = suites.pop()
    wanted: dict[int, set[int]] = {}
    for records in arms.values():
        for r in records:
            wanted.setdefault(int(r["task"]), set()).add(int(r["init_state_index"]))
    missing = sorted(set(wanted) - set(starts))
    if missing:
        raise LaraUserError(f"{cfg.data} has no demos of evaluated task(s) {missing}")
    distances = {
        task: task_distances(suite, task, starts[task], sorted(states))
        for task, states in sorted(wanted.items())
    }
    rows = []
    for arm, records in arms.items():
        for r in records:
            task, state = int(r["task"]), int(r["init_state_index"])
            rows.append(
                {
                    "arm": arm,
                    "task": task,
                    "init_state_index": state,
                    "success": bool(r["success"]),
                    **{name: round(distances[task][state][name], 5) for name in DISTANCES},
                }
            )
    farthest_cm = max(100 * r[name] for r in rows for name in DISTANCES)
    edges = [0.5 * i for i in range(int(np.floor(farthest_cm / 0.5)) + 2)]  # 0.5 cm bins
    rng = np.random.default_rng(cfg.seed)
    summary = {
        arm: {
            name: {
                "within_task": within_task_gap([r for r in rows if r["arm"] == arm], name, rng),
                "bins": distance_bins([r for r in rows if r["arm"] == arm], name, edges),
            }
            for name in DISTANCES
        }
        for arm in arms
    }
    demos_per_task = {task: len(s) for task, s in sorted(starts.items())}
    return {"suite": suite, "demos_per_task": demos_per_task, "rows": rows, "summary": summary}


def markdown(result: dict) -> str:
    lines = [
        f"# Success vs. distance to the nearest training layout ({result['suite']})",
        "",
        "Distance: for the nearest demo start of the same task, the largest x/y displacement of any "
        "object (`layout`: all objects; `task_objects`: the object to pick and the basket).",
        "",
    ]
    for arm, per_distance in result["summary"].items():
        for name, stats in per_distance.items():
            gap = stats["within_task"]
            lines += [
                f"## {arm}, `{name}` distance",
                "",
                "| distance (cm) | success | rate | 95% CI |",
                "|---|---|---|---|",
            ]
            for b in stats["bins"]:
                if b["episodes"]:
                    low, high = b["ci95"]
                    lines.append(
                        f"| {b['from_cm']:.1f}-{b['to_cm']:.1f} | {b['successes']}/{b['episodes']} | "
                        f"{100 * b['successes'] / b['episodes']:.0f}% | [{100 * low:.0f}, {100 * high:.0f}] |"
                    )
            if gap["tasks_with_both_outcomes"]:
                lines += [
                    "",
                    f"Within task ({gap['tasks_with_both_outcomes']} tasks with successes and failures): "
                    f"failures start {gap['gap_cm']:+.2f} cm farther from a demo than successes on average; "
                    f"one-sided shuffle p = {gap['p_value']}.",
                ]
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from lara.scripts.cli import configure_logging
    from lara.utils.atomic import atomic_write_text
    from lara.utils.config_parsing import parse_config

    cfg = parse_config(CoverageConfig, argv, prog="benchmarks/generalization/layout_coverage.py")
    configure_logging()
    result = measure(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.out / "coverage.jsonl", "".join(json.dumps(r) + "\n" for r in result["rows"]))
    tables = {k: v for k, v in result.items() if k != "rows"}
    atomic_write_text(cfg.out / "coverage.json", json.dumps(tables, indent=1))
    atomic_write_text(cfg.out / "coverage.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    from lara.utils.errors import run_main

    raise SystemExit(run_main(main, sys.argv[1:]))
