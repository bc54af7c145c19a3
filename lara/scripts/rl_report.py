"""`lara rl`'s report: per-iteration success on the rollout layouts with 95% Wilson intervals, the
informative-group fraction, KL, noise scale / entropy, wall time, and the before/after evaluation
on the standard protocol. Built only from `iterations.jsonl` and the evaluator's `results.json`
files, so it can be rebuilt at any time and always agrees with the raw records."""

from __future__ import annotations

import json
from pathlib import Path

from envs.report import success_table, wilson_interval
from lara.utils.atomic import atomic_write_text
from lara.utils.jsonl import read_jsonl


def _fmt(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def iteration_rows(records: list[dict]) -> list[str]:
    """The per-iteration table: rollout success with its Wilson interval (envs.report's writer),
    then the update's figures."""
    rows = []
    for r in records:
        scale = r["noise_scale"] if r.get("noise_scale") is not None else r.get("temperature")
        rows.append(
            (
                r["iteration"],
                r["successes"],
                r["rollouts"],
                f"{r['informative_fraction']:.2f}",
                _fmt(r.get("kl"), ".4f"),
                _fmt(r.get("clip_fraction"), ".2f"),
                _fmt(scale, "g"),
                _fmt(r.get("entropy_per_token")),
                _fmt(r.get("mean_chunk_log_prob"), ".1f"),
                r["errors"],
                f"{r['rollout_s']:.1f}",
                f"{r['wall_s']:.1f}",
            )
        )
    extra = (
        "informative groups",
        "KL",
        "clip frac",
        "noise / temperature",
        "entropy per token",
        "mean chunk log-prob",
        "errors",
        "rollout s",
        "wall s",
    )
    return success_table(rows, "iteration", extra, labels=("success (rollout layouts)", "rate", "95% Wilson"))


def _eval_row(name: str, results_path: Path) -> tuple | None:
    if not results_path.is_file():
        return None
    suite = json.loads(results_path.read_text())["suites"][0]  # one suite per `lara rl` run
    return (name, suite["successes"], suite["episodes"])


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
        row
        for row in (
            _eval_row("before (starting policy)", out / "eval_before" / "results.json"),
            _eval_row("after (final/)", out / "eval_after" / "results.json"),
        )
        if row
    ]
    if evals:
        lines += ["## Standard protocol (evaluation init states)", ""]
        if capped_eval_steps:
            lines += [f"Episodes capped at {capped_eval_steps} steps (a smoke run, not a success rate).", ""]
        lines += [*success_table(evals, "policy", labels=("successes", "rate", "95% Wilson")), ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
