"""Success rate of the scripted expert per task of a LIBERO suite (no rendering).

Episode i of a task starts from the suite's shipped init state i, after the protocol's no-op wait
steps, and is a success when LIBERO's own predicate (`done`) holds before the suite's step limit.
Tasks run in W worker processes (one env per task per worker; each worker is single-threaded).

    python -m benchmarks.scripted_expert --suite libero_object --episodes 50 --workers 2 \
        --out benchmarks/results_expert_libero_object.md
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field

from envs.report import success_table

logger = logging.getLogger("benchmarks.scripted_expert")


@dataclass
class EpisodeResult:
    task_id: int
    episode: int
    success: bool
    steps: int
    phases: list[tuple[str, int]] = field(default_factory=list)  # (phase, first step)


def run_episode(env, expert, episode: int) -> EpisodeResult:  # noqa: ANN001 - LiberoEnv, ScriptedExpert
    """Roll the expert out from init state `episode` until success or the suite's step limit."""
    obs = env.reset(episode)
    expert.reset()
    phases: list[tuple[str, int]] = []
    for t in range(env.max_steps):
        action = expert.select_action(obs)  # (7,)
        if not phases or phases[-1][0] != expert.phase:
            phases.append((expert.phase, t))
        obs, done, _ = env.step(action)
        if done:
            return EpisodeResult(env.task_id, episode, True, t + 1, phases)
    return EpisodeResult(env.task_id, episode, False, env.max_steps, phases)


def _run_task(args: tuple[str, int, list[int]]) -> list[EpisodeResult]:
    suite, task_id, episodes = args
    from envs.libero_env import LiberoEnv
    from envs.scripted_expert import ScriptedExpert

    env = LiberoEnv(suite, task_id, render=False)
    try:
        expert = ScriptedExpert(env)
        return [run_episode(env, expert, ep) for ep in episodes]
    finally:
        env.close()


def markdown_table(suite: str, names: dict[int, str], results: list[EpisodeResult], episodes: int) -> str:
    """Per task and for the suite: successes with 95% Wilson intervals (envs.report's writer) and the
    mean steps of the successes."""
    rows = []
    for tid in sorted(names):
        rs = [r for r in results if r.task_id == tid]
        steps = [r.steps for r in rs if r.success]
        mean_steps = f"{sum(steps) / len(steps):.0f}" if steps else "-"
        rows.append((f"{tid}: {names[tid]}", sum(r.success for r in rs), len(rs), mean_steps))
    rows.append(("**suite average**", sum(r.success for r in results), len(results), ""))
    table = success_table(
        rows, "task", ("mean steps (successes)",), labels=("successes", "success", "95% Wilson")
    )
    return "\n".join([f"### Scripted expert, {suite}, {episodes} episodes per task", "", *table]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--episodes", type=int, default=50, help="episodes per task (init states 0..N-1)")
    parser.add_argument("--start", type=int, default=0, help="first init state")
    parser.add_argument("--tasks", type=str, default="", help="comma-separated task ids (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=str, default="", help="write the markdown table here")
    parser.add_argument("--json", type=str, default="", help="also write one JSON line per episode here")
    parser.add_argument(
        "--merge", nargs="+", default=[], help="only tabulate these --json or lara eval episodes.jsonl files"
    )
    parser.add_argument("--verbose", action="store_true", help="print each episode's phases")
    args = parser.parse_args(argv)
    from lara.scripts.cli import configure_logging

    configure_logging()  # third-party noise hidden, as in the lara command
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    from envs.libero_env import _benchmark
    from envs.protocol import check_suite

    bench = _benchmark(check_suite(args.suite))
    names = {i: bench.get_task(i).name for i in range(bench.n_tasks)}
    if args.tasks:
        names = {int(t): names[int(t)] for t in args.tasks.split(",")}
    if args.merge:  # combine earlier runs (e.g. init states 0-9 and 10-19) into one table
        merged = []
        for path in args.merge:
            with open(path) as fh:
                for line in fh:
                    row = json.loads(line)
                    if row["suite"] == args.suite:
                        merged.append(_episode_from_record(row))
        per_task = min(sum(r.task_id == t for r in merged) for t in names)
        _write(args, markdown_table(args.suite, names, merged, per_task), merged)
        sys.stdout.write(markdown_table(args.suite, names, merged, per_task))
        return 0
    episodes = list(range(args.start, args.start + args.episodes))
    jobs = [(args.suite, tid, episodes) for tid in names]
    t0 = time.time()
    results: list[EpisodeResult] = []
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        for task_results in pool.map(_run_task, jobs):
            results.extend(task_results)
            s = sum(r.success for r in task_results)
            logger.info(
                "task %d: %d / %d (%.0f s elapsed)",
                task_results[0].task_id,
                s,
                len(task_results),
                time.time() - t0,
            )
            if args.verbose:
                for r in task_results:
                    logger.info(
                        "  ep %d success=%s steps=%d phases=%s", r.episode, r.success, r.steps, r.phases
                    )
            if len(results) < len(jobs) * len(episodes):  # partial table, in case the run is cut short
                done = {r.task_id: names[r.task_id] for r in results}
                _write(
                    args,
                    markdown_table(args.suite, done, results, args.episodes) + "\n_partial run_\n",
                    results,
                )
    table = markdown_table(args.suite, names, results, args.episodes)
    table += f"\n_{len(results)} episodes in {time.time() - t0:.0f} s with {args.workers} workers._\n"
    sys.stdout.write(table)
    _write(args, table, results)
    return 0


def _episode_from_record(row: dict) -> EpisodeResult:
    """One JSON line of this script's --json, or of `lara eval --policy scripted`'s episodes.jsonl
    (`task` for `task_id`, no phases)."""
    return EpisodeResult(
        task_id=int(row.get("task_id", row.get("task"))),
        episode=int(row["episode"]),
        success=bool(row["success"]),
        steps=int(row["steps"]),
        phases=[tuple(p) for p in row.get("phases", [])],
    )


def _write(args: argparse.Namespace, table: str, results: list[EpisodeResult]) -> None:
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table)
    if args.json:
        with open(args.json, "w") as fh:
            for r in results:
                fh.write(json.dumps({"suite": args.suite, **asdict(r)}) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
