"""The scripted expert's success from sampled layouts (what `lara collect --init sampled` starts from).

Each episode starts exactly as a collection attempt does (collect_worker._start: the placement
sampler's layout, re-drawn when within 1 cm of an evaluation init state, then settling), runs the
expert without rendering until LIBERO's success predicate holds or the suite's step limit, and
prints one JSON line; the last line is the summary.

    python benchmarks/generalization/expert_sampled.py --tasks 0,1,2 --layouts 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--tasks", default="all")
    p.add_argument("--layouts", type=int, default=5, help="sampled layouts (collection slots) per task")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--region_fit", "--region-fit", default="center", choices=("center", "footprint"))
    args = p.parse_args(argv)

    from envs import libero_setup

    libero_setup.configure()
    from data_pipeline.collect_worker import Job, _start
    from envs.libero_env import LiberoEnv, num_tasks
    from envs.protocol import parse_task_ids
    from envs.scripted_expert import ScriptedExpert

    successes = episodes = 0
    start = time.perf_counter()
    for task in parse_task_ids(args.tasks, num_tasks(args.suite)):
        with LiberoEnv(args.suite, task, render=False, seed=args.seed) as env:
            expert = ScriptedExpert(env)
            for slot in range(args.layouts):
                job = Job(
                    args.suite,
                    task,
                    slot,
                    0,
                    0.0,
                    5,
                    1,
                    None,
                    args.seed,
                    "",
                    init="sampled",
                    region_fit=args.region_fit,
                )
                obs, layout = _start(job, 0, env)
                expert.reset()
                done, steps = False, 0
                while not done and steps < env.max_steps:
                    obs, done, _ = env.step(expert.select_action(obs))
                    steps += 1
                successes += done
                episodes += 1
                print(
                    json.dumps({"task": task, "slot": slot, "success": done, "steps": steps, **layout}),
                    flush=True,
                )
    print(
        json.dumps(
            {
                "successes": successes,
                "episodes": episodes,
                "minutes": round((time.perf_counter() - start) / 60, 1),
                "suite": args.suite,
                "region_fit": args.region_fit,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
