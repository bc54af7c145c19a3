"""GRPO fine-tuning vs. the same wall time of more supervised training (issue #17's measurement).

Starting from one stage-III checkpoint and the dataset it was trained on:
1. evaluate the starting policy on the standard protocol (the suite's init states 0..E-1 per task);
2. GRPO: `lara rl` (configs/rl/tiny.yaml plus flags) with `--max_minutes` = the budget (it stops
   after the iteration that reaches it); evaluate its final/;
3. supervised baseline: `lara train` stage III from the same checkpoint on the same data, with
   as many steps as fit in the wall time GRPO really used (its speed is measured on a short first
   run); evaluate;
4. write <out>/results.json and <out>/RESULTS.md: success before, after GRPO, after SFT, with 95%
   Wilson intervals, the wall times actually spent, and the RL report's per-iteration table.

Every step skips what exists, so the same command resumes. The starting policy should be the best
policy `benchmarks/generalization/` produces; until it exists, the memorization-check policy
(examples/memorize_libero.py: demos from init states 0..9, so its evaluation there is a
memorization check and says so). About an hour per arm on 2 CPU cores with the defaults.

    .venv/bin/python benchmarks/rl/rl_vs_sft.py --policy runs/memorize/train/stage3/final \
        --dataset runs/memorize/data --train_preset tiny \
        --out benchmarks/rl/results --minutes 60
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

from envs.report import success_table
from lara.utils.atomic import atomic_write_text
from lara.utils.errors import LaraUserError, run_main

REPO = Path(__file__).resolve().parents[2]
log = logging.getLogger("rl_vs_sft")


def _evaluate(policy: str, out: Path, args) -> dict:
    from envs.evaluator import EvalConfig, evaluate
    from lara.scripts.eval_policies import policy_builder

    if not (out / "results.json").is_file():
        cfg = EvalConfig(
            policy=policy,
            suite=args.suite,
            tasks=args.tasks,
            episodes=args.eval_episodes,
            workers=args.workers,
            out=out,
            max_steps=args.eval_max_steps,
        )
        evaluate(cfg, policy_builder=policy_builder(cfg))
    return json.loads((out / "results.json").read_text())["suites"][0]


def reuse_evaluation(source: Path, dest: Path, args) -> None:
    """Copy a finished evaluation of the starting policy (e.g. the generalization benchmark's
    `<run>/eval`) into `dest`, so that the "before" row is not evaluated a second time; refused unless
    it is the same checkpoint, suite, tasks and episodes per task."""
    import shutil

    from envs.libero_env import num_tasks
    from envs.protocol import parse_task_ids

    if (dest / "results.json").is_file():
        return
    run_file, results_file = source / "run.json", source / "results.json"
    if not (run_file.is_file() and results_file.is_file()):
        raise LaraUserError(f"--before_eval {source}: not a finished evaluation (no run.json + results.json)")
    run = json.loads(run_file.read_text())
    wanted = {
        "policy": str(Path(args.policy).resolve()),
        "suite": args.suite,
        "tasks": parse_task_ids(args.tasks, num_tasks(args.suite)),
        "episodes_per_task": args.eval_episodes,
        "max_steps": args.eval_max_steps,
    }
    found = {**{k: run.get(k) for k in wanted}, "policy": str(Path(run.get("policy", "")).resolve())}
    differ = [k for k in wanted if found[k] != wanted[k]]
    if differ:
        raise LaraUserError(
            f"--before_eval {source} evaluated another setting ("
            + "; ".join(f"{k}: {found[k]} there, {wanted[k]} here" for k in differ)
            + "): omit the flag to evaluate the starting policy here"
        )
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("videos"), dirs_exist_ok=True)
    log.info("before: reusing the evaluation in %s", source)


def _timed(out: Path, name: str, fn) -> float:
    """Run fn once and keep its wall time in <out>/timings.json (a resumed benchmark keeps the first)."""
    path = out / "timings.json"
    timings = json.loads(path.read_text()) if path.is_file() else {}
    if name not in timings:
        start = time.perf_counter()
        fn()
        timings[name] = time.perf_counter() - start
        atomic_write_text(path, json.dumps(timings, indent=1))
    return timings[name]


def run_grpo(args, budget_s: float) -> tuple[Path, float]:
    """`lara rl` with a wall-time budget (`--max_minutes`, counted over resumes from its own log)."""
    from curriculum.rl.config import RLConfig
    from curriculum.rl.loop import train_rl
    from lara.utils.config_parsing import parse_config

    out = args.out / "grpo"
    argv = [
        "--config_path",
        str(args.rl_config),
        "--policy",
        args.policy,
        "--dataset",
        args.dataset,
        "--suite",
        args.suite,
        "--tasks",
        args.tasks,
        "--workers",
        str(args.workers),
        "--iterations",
        "100000",
        "--max_minutes",
        str(budget_s / 60.0),
        "--resume",
        "true",
        "--out",
        str(out),
        "--eval_episodes",
        "0",
        *args.rl_flags,
    ]
    result = train_rl(parse_config(RLConfig, argv, prog="rl_vs_sft"))
    return out / "final" / "model", sum(r["wall_s"] for r in result.records)


def run_sft(args, budget_s: float) -> tuple[Path, float]:
    from curriculum.presets import load_train_config
    from curriculum.trainer import train

    probe_dir, out = args.out / "sft_probe", args.out / "sft"
    common = ["--init_from", args.policy, "--data.root", args.dataset, "--progress", "false"]
    if not (out / "final" / "model" / "config.json").is_file():
        # speed on a short first run: steady-state seconds per step, and the set-up time around them
        # (kept in sft_probe.json: a resumed probe run reports no speed)
        probe_file = args.out / "sft_probe.json"
        if not probe_file.is_file():
            start = time.perf_counter()
            probe_cfg = load_train_config(
                [],
                [
                    *common,
                    "--steps",
                    str(args.probe_steps),
                    "--output_dir",
                    str(probe_dir),
                    "--resume",
                    "true",
                ],
                preset=args.train_preset,
                stage=3,
            )
            probe = train(probe_cfg)
            if probe.samples_per_s <= 0:  # the probe had finished before a kill: it measured nothing now
                raise LaraUserError(f"delete {probe_dir} and re-run: the speed probe must run in one go")
            total = time.perf_counter() - start
            per_step = probe_cfg.batch_size * probe_cfg.grad_accum_steps / max(probe.samples_per_s, 1e-9)
            atomic_write_text(
                probe_file,
                json.dumps({"per_step": per_step, "setup": max(0.0, total - args.probe_steps * per_step)}),
            )
        probe = json.loads(probe_file.read_text())
        per_step, setup = probe["per_step"], probe["setup"]
        steps = max(1, int((budget_s - setup) / per_step))
        log.info(
            "SFT baseline: %.2f s/step + %.0f s set-up measured, %d steps for %.0f s",
            per_step,
            setup,
            steps,
            budget_s,
        )
        cfg = load_train_config(
            [],
            [*common, "--steps", str(steps), "--output_dir", str(out), "--resume", "true"],
            preset=args.train_preset,
            stage=3,
        )
        spent = _timed(args.out, "sft", lambda: train(cfg))
    else:
        spent = json.loads((args.out / "timings.json").read_text())["sft"]
    return out / "final" / "model", spent


def _row(name: str, r: dict, seconds: float | None) -> tuple:
    """(name, successes, episodes, minutes): a row of envs.report.success_table."""
    return (name, r["successes"], r["episodes"], "-" if seconds is None else f"{seconds / 60:.1f}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The benchmark's own flags; the rest (`args.rl_flags`) go to `lara rl` unchanged."""
    # Flags are spelled as lara's (underscores); the dashed spellings stay as aliases for commands
    # recorded in older reports. No abbreviations: unknown flags pass through to `lara rl` whole.
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--policy", required=True, help="starting stage-III checkpoint (save_pretrained folder)")
    p.add_argument("--dataset", required=True, help="the dataset it was trained on (layouts + SFT data)")
    p.add_argument(
        "--train_preset",
        "--train-preset",
        default="tiny",
        help="training preset size of the SFT arm (stage 3)",
    )
    p.add_argument("--rl_config", "--rl-config", type=Path, default=REPO / "configs/rl/tiny.yaml")
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--tasks", default="0,1")
    p.add_argument("--eval_episodes", "--eval-episodes", type=int, default=10)
    p.add_argument("--minutes", type=float, default=60.0, help="wall-time budget of each arm")
    p.add_argument("--probe_steps", "--probe-steps", type=int, default=20)
    p.add_argument(
        "--eval_max_steps",
        "--eval-max-steps",
        type=int,
        default=None,
        help="smoke runs only: caps evaluation episodes",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--before_eval",
        "--before-eval",
        type=Path,
        default=None,
        help="a finished evaluation of --policy with the same settings (e.g. runs/generalization/eval): "
        "reused as the 'start' row instead of evaluating again",
    )
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/rl/results")
    p.epilog = "Any other flag goes to `lara rl` (e.g. --noise_scale 0.2 --lr 3e-5)."
    args, rl_flags = p.parse_known_args(argv)
    args.rl_flags = rl_flags
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv  # kept whole: the reports print the command
    args = parse_args(argv)
    from lara.scripts.cli import configure_logging

    configure_logging()  # third-party noise hidden, as in the lara command
    args.out.mkdir(parents=True, exist_ok=True)
    budget = 60.0 * args.minutes

    if args.before_eval is not None:
        reuse_evaluation(args.before_eval, args.out / "eval_before", args)
    before = _evaluate(args.policy, args.out / "eval_before", args)
    grpo_model, grpo_s = run_grpo(args, budget)
    after_rl = _evaluate(str(grpo_model), args.out / "eval_grpo", args)
    sft_model, sft_s = run_sft(
        args, grpo_s
    )  # the time GRPO really used (its last iteration overshoots the budget)
    after_sft = _evaluate(str(sft_model), args.out / "eval_sft", args)

    from lara.scripts.rl_report import write_rl_report

    write_rl_report(args.out / "grpo", "benchmarks/rl/rl_vs_sft.py " + shlex.join(argv))
    summary = {
        "before": before,
        "grpo": after_rl,
        "sft": after_sft,
        "grpo_seconds": grpo_s,
        "sft_seconds": sft_s,
        "budget_seconds": budget,
        "suite": args.suite,
        "tasks": args.tasks,
        "eval_episodes": args.eval_episodes,
        "policy": args.policy,
        "dataset": args.dataset,
    }
    atomic_write_text(args.out / "results.json", json.dumps(summary, indent=1))
    gain = 100 * (after_rl["success_rate"] - before["success_rate"])
    lines = [
        "# GRPO vs. equal-time supervised training",
        "",
        f"Suite {args.suite}, tasks {args.tasks}, init states 0..{args.eval_episodes - 1} per task (standard "
        f"protocol). Starting policy `{args.policy}`, data `{args.dataset}`. Budget {args.minutes:.1f} "
        "min; the SFT arm gets the time GRPO used.",
        "",
        *(
            [
                f"**Smoke run: evaluation episodes capped at {args.eval_max_steps} steps; not success "
                "rates.**",
                "",
            ]
            if args.eval_max_steps
            else []
        ),
        *success_table(
            [
                _row("start", before, None),
                _row("GRPO", after_rl, grpo_s),
                _row("SFT (same time)", after_sft, sft_s),
            ],
            "policy",
            ("minutes",),
            labels=("successes", "rate", "95% Wilson"),
        ),
        "",
        f"GRPO vs. start: {gain:+.1f} points (target: +10 or more, and above the SFT baseline).",
        "",
        "Per-iteration GRPO report: [grpo/report.md](grpo/report.md).",
    ]
    atomic_write_text(args.out / "RESULTS.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
