"""One checkpoint scored on several LIBERO suites in one command: the paper's table.

    lara eval --policy CKPT --suite libero_spatial,libero_object,libero_goal,libero_10 --out runs/eval/four

Layout of the output folder:
    run.json          the run's identity (policy, suites, protocol settings); a re-run must match it
    episodes.jsonl    every suite's episodes in one record file; records carry `suite`, so resuming
                      skips each (suite, task, episode) already there and runs only what is missing
    <suite>/          each suite's own evaluation (envs.evaluator): run.json, results.json, report.md
                      with its per-task table, videos/
    results.json, report.md, success.png
                      per suite and the average, with 95% Wilson intervals, and the paper's row

Each suite runs through `envs.evaluator.evaluate` in turn (its own worker pool, its suite's step
limit), writing into the shared record file; nothing here runs an episode itself. The average is the
mean of the per-suite rates, as the paper's "avg" column; its interval is the Wilson interval of all
episodes pooled, which is the interval of that mean when every suite ran the same number of episodes
(the report says when they did not).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from envs.evaluator import EvalConfig, _read_episodes, _versions, evaluate
from envs.protocol import MAX_STEPS, parse_task_ids
from envs.report import SuccessRow, plot_success, success_table, summarize, wilson_interval
from lara.utils.atomic import atomic_write_text
from lara.utils.errors import LaraUserError
from lara.utils.run_identity import check_same_run
from lara.utils.run_lock import run_lock

logger = logging.getLogger(__name__)

# The paper's column names (STANDARDS.md's table)
SHORT_NAMES = {
    "libero_spatial": "Spatial",
    "libero_object": "Object",
    "libero_goal": "Goal",
    "libero_10": "Long",
    "libero_90": "90",
}


def suites_of(cfg: EvalConfig) -> list[str]:
    """The suites `cfg.suite` names, in the order given; a suite named twice is an error."""
    suites = cfg.suite.split(",")
    if len(set(suites)) != len(suites):
        raise LaraUserError(f"--suite {cfg.suite}: a suite is named twice; name each once")
    return suites


def _identity(cfg: EvalConfig) -> dict:
    """The settings every suite of the run shares (the per-suite identity minus the suite)."""
    return {k: v for k, v in cfg.identity().items() if k != "suite"}


def _check_identity(cfg: EvalConfig) -> None:
    """A folder holds one policy's results: a re-run with other settings is refused. Adding or
    dropping suites is allowed (the record file is keyed by suite)."""
    path = cfg.out / "run.json"
    if not path.exists():
        return
    previous = json.loads(path.read_text()).get("identity", {})
    now = _identity(cfg)
    error = check_same_run(cfg.out, previous, now, "results of a different run", keys=now)
    if error:
        raise LaraUserError(f"{error}; use another --out or delete it")


def evaluate_suites(cfg: EvalConfig, policy_builder=None) -> dict:
    """Run (or resume) `cfg` on every suite of `cfg.suite`; returns the combined results dict:
    "suites" (one row per suite), "average", "tasks" and "run"."""
    from envs.libero_env import num_tasks

    suites = suites_of(cfg)
    records = cfg.records or cfg.out / "episodes.jsonl"
    tasks = {suite: parse_task_ids(cfg.tasks, num_tasks(suite)) for suite in suites}  # checked up front
    with run_lock(cfg.out, "lara eval"):  # the suites' own folders are locked by evaluate
        _check_identity(cfg)
        run_info = {
            "identity": _identity(cfg),
            **cfg.identity(),
            "suites": suites,
            "tasks": tasks,
            "episodes_per_task": cfg.episodes,
            "workers": cfg.workers,
            "records": str(records),
            "versions": _versions(),
        }
        atomic_write_text(cfg.out / "run.json", json.dumps(run_info, indent=2))
        for suite in suites:
            logger.info("suite %s (%d of %d)", suite, suites.index(suite) + 1, len(suites))
            evaluate(replace(cfg, suite=suite, out=cfg.out / suite, records=records), policy_builder)
        selected = {
            suite: [
                r
                for r in _read_episodes(records, suite)
                if r["task"] in tasks[suite] and r["episode"] < cfg.episodes
            ]
            for suite in suites
        }
        return write_suites_report(cfg.out, run_info, selected)


def average_row(rows: list[SuccessRow]) -> dict:
    """The paper's average: the mean of the suite rates; the interval pools every episode."""
    successes, episodes = sum(r.successes for r in rows), sum(r.episodes for r in rows)
    low, high = wilson_interval(successes, episodes)
    return {
        "name": "average",
        "success_rate": sum(r.rate for r in rows) / len(rows) if rows else 0.0,
        "successes": successes,
        "episodes": episodes,
        "errors": sum(r.errors for r in rows),
        "ci95_low": low,
        "ci95_high": high,
        "equal_episodes": len({r.episodes for r in rows}) <= 1,
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def write_suites_report(out: Path, run_info: dict, by_suite: dict[str, list[dict]]) -> dict:
    """results.json, report.md and success.png of a multi-suite run, from its episode records."""
    records = [r for suite in by_suite for r in by_suite[suite]]
    task_rows, suite_rows = summarize(records)
    order = {suite: i for i, suite in enumerate(by_suite)}
    suite_rows.sort(key=lambda row: order[row.name])  # the order the command named them
    task_rows.sort(key=lambda row: order[row.name.split()[0]])  # stable: tasks stay in order per suite
    missing = [s for s in by_suite if s not in {row.name for row in suite_rows}]
    if missing:  # every suite ran before this point: no record means nothing could start
        raise LaraUserError(f"no episode of {missing} was recorded; re-run the same command")
    avg = average_row(suite_rows)
    results = {
        "run": run_info,
        "suites": [row.to_dict() for row in suite_rows],
        "average": avg,
        "tasks": [row.to_dict() for row in task_rows],
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    if task_rows:
        plot_success(task_rows, out / "success.png")
    per_task = run_info.get("episodes_per_task")
    names = [SHORT_NAMES.get(row.name, row.name) for row in suite_rows]
    lines = [
        f"# LIBERO evaluation: {run_info.get('policy')} on {len(suite_rows)} suites",
        "",
        f"**{per_task} episodes per task (the standard protocol uses 50).**"
        if per_task and per_task < 50
        else "",
        "",
        "## Success rate (%), the paper's table",
        "| policy | " + " | ".join(names) + " | avg |",
        "|---" * (len(names) + 2) + "|",
        f"| {run_info.get('policy')} | "
        + " | ".join(_pct(row.rate) for row in suite_rows)
        + f" | {_pct(avg['success_rate'])} |",
        "",
        "## Per suite",
    ]
    limit = run_info.get("max_steps")
    lines += success_table(
        [
            (
                f"[{row.name}]({row.name}/report.md)",
                row.successes,
                row.episodes,
                f"{row.mean_steps:.0f}",
                limit or MAX_STEPS.get(row.name, "?"),
                f"{row.mean_latency_ms:.2f}",
                row.errors,
            )
            for row in suite_rows
        ],
        first="suite",
        extra=("mean steps", "max steps", "policy ms/step", "errors"),
    )
    lines += [
        f"| **average** | {avg['successes']}/{avg['episodes']} | {_pct(avg['success_rate'])}% | "
        f"[{_pct(avg['ci95_low'])}, {_pct(avg['ci95_high'])}] | | | | {avg['errors']} |",
        "",
        "The average is the mean of the suite rates (the paper's avg); its 95% Wilson interval pools all "
        "episodes"
        + (
            "."
            if avg["equal_episodes"]
            else ", and the suites ran different numbers of episodes, so it is only approximate."
        ),
        f"{'A smoke-test step limit of ' + str(limit) + ' replaced the suites own limits.' if limit else ''}",
        "",
        "## Per task",
        *success_table([(row.name, row.successes, row.episodes) for row in task_rows], first="task"),
        "",
        "![success per task](success.png)" if task_rows else "",
        "",
        "Each suite's own report (protocol, time split, videos): "
        + ", ".join(f"[{s}/report.md]({s}/report.md)" for s in by_suite)
        + ".",
        f"Episode records: {run_info.get('records')}.",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return results
