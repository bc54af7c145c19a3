"""`lara eval`: closed-loop LIBERO evaluation.

lara eval --policy scripted --suite libero_object --tasks 0,3 --episodes 5 --workers 2 --out runs/eval/x --video
lara eval --config_path configs/eval/libero_object.yaml --policy runs/demo/stage3/final
lara eval --policy CKPT --suite libero_spatial,libero_object,libero_goal,libero_10 --out runs/eval/four

Several comma-separated suites run one after the other into one folder (envs.multi_suite): one record
file, each suite's report in <out>/<suite>/, and the paper's table (per suite, average) in <out>/report.md.
"""  # noqa: E501

from __future__ import annotations

from envs.evaluator import EvalConfig, evaluate
from lara.scripts.eval_policies import policy_builder
from lara.utils.config_parsing import parse_config


def main(argv: list[str]) -> int:
    cfg = parse_config(EvalConfig, argv, prog="lara eval")
    builder = policy_builder(cfg)
    if "," in cfg.suite:  # several suites: one table, one record file
        from envs.multi_suite import evaluate_suites

        results = evaluate_suites(cfg, policy_builder=builder)
    else:
        results = evaluate(cfg, policy_builder=builder)
    for row in results["suites"]:
        print(
            f"{row['name']}: {row['successes']}/{row['episodes']} = {100 * row['success_rate']:.1f}% "
            f"(95% CI {100 * row['ci95_low']:.1f}-{100 * row['ci95_high']:.1f}), errors: {row['errors']}"
        )
    if "average" in results:  # several suites: the paper's average (mean of the suite rates)
        avg = results["average"]
        print(
            f"average over {len(results['suites'])} suites: {100 * avg['success_rate']:.1f}% "
            f"(pooled 95% CI {100 * avg['ci95_low']:.1f}-{100 * avg['ci95_high']:.1f})"
        )
    print(f"report: {cfg.out / 'report.md'}")
    return 0
