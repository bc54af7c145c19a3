"""What a LIBERO reset costs, and what a soft reset would change (issue 27's next lever, not adopted).

LIBERO builds its environments with robosuite's `hard_reset=True`: every `env.reset()` parses the
scene's XML again, builds a new simulator and a new offscreen render context, and renders the cameras
several times, before `set_init_state` loads the protocol's init state. A soft reset
(`raw_env.hard_reset = False`) keeps the simulator and the render context. Per (suite, task), this
runs the scripted expert for `--steps` steps from init states 0 .. `--episodes`-1 in one environment
both ways and reports the mean reset time and whether each episode's trajectory (camera frames,
proprio state, actions and the final MuJoCo state, hashed) is identical, and the largest state
difference right after the first reset.

    .venv/bin/python benchmarks/reset_cost.py --tasks libero_object:0,libero_goal:3 \
        --out benchmarks/eval_batched_results/k10/reset_cost
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
from results_table import markdown_table, publish

from envs import libero_setup
from envs.libero_env import LiberoEnv
from envs.scripted_expert import ScriptedExpert


def run(suite: str, task: int, soft: bool, episodes: int, steps: int) -> dict:
    """Mean reset seconds, a hash per episode, and the MuJoCo state right after the first reset."""
    hashes, reset_seconds, first_state = [], 0.0, None
    with LiberoEnv(suite, task, camera_size=128, render=True) as env:
        if soft:
            env.raw_env.hard_reset = False
        expert = ScriptedExpert(env)
        for episode in range(episodes):
            start = time.perf_counter()
            obs = env.reset(episode)
            reset_seconds += time.perf_counter() - start
            if first_state is None:
                first_state = env.get_sim_state()
            expert.reset()
            digest = hashlib.sha1()
            for i in range(steps):
                for cam in sorted(obs.images):
                    digest.update(obs.images[cam].tobytes())
                digest.update(np.asarray(obs.state).tobytes())
                action = expert.select_action(obs)
                digest.update(np.asarray(action).tobytes())
                obs, done, _ = env.step(action, render=i % 4 == 3)  # a chunked policy's reads
                if done:
                    break
            digest.update(env.get_sim_state().tobytes())
            hashes.append(digest.hexdigest())
    return {"reset_s": reset_seconds / episodes, "hashes": hashes, "first_state": first_state}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="libero_object:0,libero_goal:3", help="suite:task,...")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json and results.md")
    args = parser.parse_args()
    libero_setup.configure()
    rows = []
    for item in args.tasks.split(","):
        suite, task = item.split(":")
        hard = run(suite, int(task), False, args.episodes, args.steps)
        soft = run(suite, int(task), True, args.episodes, args.steps)
        rows.append(
            {
                "suite": suite,
                "task": int(task),
                "hard_reset_s": hard["reset_s"],
                "soft_reset_s": soft["reset_s"],
                "same_episodes": [a == b for a, b in zip(hard["hashes"], soft["hashes"], strict=True)],
                "first_state_max_diff": float(np.abs(hard["first_state"] - soft["first_state"]).max()),
            }
        )
    table = markdown_table(
        ["suite", "task", "hard reset s", "soft reset s", "identical episodes", "state diff after reset"],
        [
            [r["suite"], str(r["task"]), f"{r['hard_reset_s']:.2f}", f"{r['soft_reset_s']:.2f}"]
            + [f"{sum(r['same_episodes'])}/{len(r['same_episodes'])}", f"{r['first_state_max_diff']:.1e}"]
            for r in rows
        ],
    )
    publish(table, args.out, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
