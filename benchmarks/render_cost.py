"""Where a LIBERO control step's time goes: physics alone, cameras rendered every step, and cameras
rendered only for the frames a chunked policy reads (1 in `--chunk`, `LiberoEnv.step(render=...)`).

One process, one task, the same scripted-expert trajectory for every mode (the expert reads
privileged state, so its actions do not depend on the pixels), after one warm-up episode. Reports
milliseconds per `env.step` and the ratio to the physics-only step, measured in one run.

    .venv/bin/python benchmarks/render_cost.py --camera_sizes 128,256 --steps 120 \
        --out benchmarks/render_cost_results
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from results_table import markdown_table, publish

from envs import libero_setup
from envs.libero_env import LiberoEnv
from envs.scripted_expert import ScriptedExpert


def step_ms(suite: str, task: int, camera_size: int, render: bool, every: int, steps: int) -> float:
    """Mean ms per env.step over `steps` expert steps (rendering 1 step in `every` when `render`)."""
    with LiberoEnv(suite, task, camera_size=camera_size, render=render) as env:
        expert = ScriptedExpert(env)
        for _warm in range(2):  # the first episode pays for caches (textures, shaders)
            obs = env.reset(0)
            expert.reset()
            spent = 0.0
            for i in range(steps):
                action = expert.select_action(obs)
                start = time.perf_counter()
                obs, _done, _ = env.step(action, render=i % every == every - 1)  # on after success too
                spent += time.perf_counter() - start
    return 1e3 * spent / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--task", type=int, default=0)
    parser.add_argument("--camera_sizes", default="128,256")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--chunk", type=int, default=8, help="actions run open loop per planned chunk")
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json and results.md")
    args = parser.parse_args()
    libero_setup.configure()
    physics = step_ms(args.suite, args.task, 128, render=False, every=1, steps=args.steps)
    rows = [{"mode": "physics only (no renderer)", "camera": "-", "ms_per_step": physics}]
    for size in map(int, args.camera_sizes.split(",")):
        for label, every in (("both cameras every step", 1), (f"1 frame in {args.chunk}", args.chunk)):
            ms = step_ms(args.suite, args.task, size, render=True, every=every, steps=args.steps)
            rows.append({"mode": label, "camera": size, "ms_per_step": ms})
    for row in rows:
        row["x_physics"] = row["ms_per_step"] / physics
    table = markdown_table(
        ["mode", "camera px", "ms per step", "x physics"],
        [[r["mode"], str(r["camera"]), f"{r['ms_per_step']:.1f}", f"{r['x_physics']:.2f}"] for r in rows],
    )
    publish(table, args.out, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
