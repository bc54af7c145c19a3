"""`lara rl`: GRPO fine-tuning of a trained LaRA policy in LIBERO, with success rewards.

    lara rl --config_path configs/rl/tiny.yaml --policy outputs/tiny/stage3/final --dataset data/demos
    lara rl ... --resume true                # continue a killed (or finished, with more --iterations) run
    lara rl ... --eval_episodes 10           # also evaluate before/after on the standard protocol

Rollouts start from the dataset's demo start states (the training distribution); the before/after
evaluation uses the suite's evaluation init states (`lara eval`'s protocol) and is the number to
quote. Writes <out>/report.md (curriculum/rl/loop.py documents the rest of the layout).
"""

from __future__ import annotations

import logging
import shlex
import sys

from curriculum.rl.config import RLConfig
from lara.utils.config_parsing import parse_config

log = logging.getLogger(__name__)


def _evaluate(cfg: RLConfig, policy: str, name: str) -> None:
    from envs.evaluator import EvalConfig, evaluate
    from lara.scripts.eval_policies import policy_builder

    out = cfg.out / name
    if (out / "results.json").is_file():
        log.info("%s exists, skipping that evaluation", out / "results.json")
        return
    eval_cfg = EvalConfig(
        policy=policy,
        suite=cfg.suite,
        tasks=cfg.tasks,
        episodes=cfg.eval_episodes,
        workers=cfg.eval_workers,
        backend=cfg.backend,
        ray_address=cfg.ray_address,
        out=out,
        execute_steps=cfg.execute_steps,
        max_steps=cfg.eval_max_steps,
    )
    evaluate(eval_cfg, policy_builder=policy_builder(eval_cfg))


def main(argv: list[str]) -> int:
    cfg = parse_config(RLConfig, argv, prog="lara rl")
    from curriculum.rl.loop import train_rl
    from lara.checkpoint import resolve_checkpoint_dir  # torch + transformers: not for --help
    from lara.scripts.rl_report import write_rl_report

    start = str(resolve_checkpoint_dir(cfg.policy))
    if cfg.eval_episodes:
        cfg.out.mkdir(parents=True, exist_ok=True)
        _evaluate(cfg, start, "eval_before")
    result = train_rl(cfg)
    if cfg.eval_episodes:
        _evaluate(cfg, str(result.final_dir / "model"), "eval_after")
    report = write_rl_report(cfg.out, "lara rl " + shlex.join(argv), cfg.eval_max_steps)
    if result.records:
        last = result.records[-1]
        print(f"iteration {last['iteration']}: {last['successes']}/{last['rollouts']} rollouts succeeded")
    print(f"report: {report}", file=sys.stdout)
    return 0
