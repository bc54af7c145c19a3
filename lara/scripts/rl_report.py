"""`lara rl`'s report: per-iteration success on the rollout layouts with 95% Wilson intervals, the
informative-group fraction, KL, noise scale / entropy, wall time, and the before/after evaluation
on the standard protocol. Built only from `iterations.jsonl` and the evaluator's `results.json`
files, so it can be rebuilt at any time and always agrees with the raw records."""

from __future__ import annotations

import json
from pathlib import Path

from envs.report import wilson_interval
from lara.utils.atomic import atomic_write_text
from lara.utils.jsonl import read_jsonl


def _fmt(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def iteration_rows(records: list[dict]) -> list[str]:
    rows = [
        "| iteration | success (rollout layouts) | 95% Wilson | informative groups | KL | clip frac | "
        "noise / temperature | entropy per token | mean chunk log-prob | errors | rollout s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        low, high = wilson_interval(r["successes"], r["rollouts"])
        scale = r["noise_scale"] if r.get("noise_scale") is not None else r.get("temperature")
        rows.append(
            f"| {r['iteration']} | {r['successes']}/{r['rollouts']} ({r['successes'] / r['rollouts']:.0%}) | "
            f"[{low:.2f}, {high:.2f}] | {r['informative_fraction']:.2f} | {_fmt(r.get('kl'), '.4f')} | "
            f"{_fmt(r.get('clip_fraction'), '.2f')} | {_fmt(scale, 'g')} | "
            f"{_fmt(r.get('entropy_per_token'))} | "
            f"{_fmt(r.get('mean_chunk_log_prob'), '.1f')} | {r['errors']} | {r['rollout_s']:.1f} | "
            f"{r['wall_s']:.1f} |"
        )
    return rows


def _eval_line(name: str, results_path: Path) -> str | None:
    if not results_path.is_file():
        return None
    suite = json.loads(results_path.read_text())["suites"][0]  # one suite per `lara rl` run
    return (
        f"| {name} | {suite['successes']}/{suite['episodes']} | {suite['success_rate']:.1%} | "
        f"[{suite['ci95_low']:.2f}, {suite['ci95_high']:.2f}] |"
    )


def plot_success(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [r["iteration"] for r in records]
    rate = [r["successes"] / r["rollouts"] for r in records]
    ci = [wilson_interval(r["successes"], r["rollouts"]) for r in records]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.fill_between(its, [c[0] for c in ci], [c[1] for c in ci], alpha=0.25, label="95% Wilson")
    ax.plot(its, rate, marker="o", label="success (rollout layouts)")
    ax.plot(its, [r["informative_fraction"] for r in records], ls="--", label="informative groups")
    ax.set_xlabel("iteration")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_rl_report(out: Path, command: str, capped_eval_steps: int | None = None) -> Path:
    records, dropped = read_jsonl(out / "iterations.jsonl")
    lines = [f"# lara rl: {out}", "", f"Command: `{command}`", ""]
    if records:
        last = records[-1]
        lines += [
            f"{len(records)} iterations, {sum(r['rollouts'] for r in records)} rollouts of "
            f"{last['rollouts']} per iteration; rollouts start from the training data's demo start states "
            "(not the evaluation init states).",
            "",
        ]
        lines += ["## Rollout success per iteration", "", *iteration_rows(records), ""]
        if len(records) >= 2:
            plot_success(records, out / "rl_success.png")
            lines += ["![success per iteration](rl_success.png)", ""]
    if dropped:
        lines += [f"({dropped} unreadable log lines skipped.)", ""]
    evals = [
        line
        for line in (
            _eval_line("before (starting policy)", out / "eval_before" / "results.json"),
            _eval_line("after (final/)", out / "eval_after" / "results.json"),
        )
        if line
    ]
    if evals:
        lines += ["## Standard protocol (evaluation init states)", ""]
        if capped_eval_steps:
            lines += [f"Episodes capped at {capped_eval_steps} steps (a smoke run, not a success rate).", ""]
        lines += ["| policy | successes | rate | 95% Wilson |", "|---|---|---|---|", *evals, ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
