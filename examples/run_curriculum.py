"""Journey 2: train the three-stage curriculum (tiny preset) on an annotated dataset.

    .venv/bin/python examples/run_curriculum.py                         # the data journey 1 wrote
    .venv/bin/python examples/run_curriculum.py DATASET --annotation sim-v1 --steps 200 200 200 \
        --out runs/examples/train [--batch_size 4 --progress false ...]

Stage I (explicit CoT + FAST action tokens + visual foresight) -> stage II (CoT segments turn
latent) -> stage III (DiT action expert), each starting from the previous stage's `final/`, into
`<out>/stage{1,2,3}`. Any further `--key value` flags override a field of every stage's config
(the tiny presets, curriculum/presets.py). A finished stage is skipped, an interrupted one resumed.
Finally the stage-III checkpoint is loaded and predicts one action chunk on a dataset frame.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from curriculum import checkpointing as ckpt
from curriculum.cli import run_curriculum
from data_pipeline.lerobot_io import read_lerobot_dataset
from envs.policies import resolve_checkpoint
from envs.protocol import Observation
from lara.modeling_lara import LaraPolicy
from lara.utils.errors import run_main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=Path("runs/examples/demos"))
    parser.add_argument("--annotation", default="sim-v1", help="annotation run name (annotations/<name>/)")
    parser.add_argument("--steps", type=int, nargs=3, metavar=("I", "II", "III"),
                        help="optimizer steps per stage (default: the presets' 200 each)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/train"))
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    common = ["--data.root", str(args.dataset), "--data.annotation", args.annotation, *overrides]
    for stage in (1, 2, 3):
        steps = ["--steps", str(args.steps[stage - 1])] if args.steps else []
        results = run_curriculum("tiny", [], [*common, *steps], str(args.out), [stage])
        if not results:  # its final/ already existed
            print(f"stage {stage}: already trained, skipped")
            continue
        history = results[0].history  # one record per optimizer step
        print(f"stage {stage}: loss {history[0]['loss']:.4f} at step {history[0]['step']} -> "
              f"{history[-1]['loss']:.4f} at step {history[-1]['step']}; checkpoint {results[0].final_dir}")
    final = ckpt.final_dir(args.out / "stage3")
    print(f"final checkpoint: {final}")

    policy = LaraPolicy.from_pretrained(resolve_checkpoint(str(final))).eval()
    episode = next(read_lerobot_dataset(args.dataset, episodes=[0]))
    obs = Observation(images={cam: frames[0] for cam, frames in episode.images.items()},
                      state=episode.state[0], instruction=episode.instruction, sim_state=None)
    chunk = policy.predict_action_chunk(obs)  # (chunk_size, 7), un-normalized, gripper -1 / +1
    print(f"predicted action chunk on episode 0, frame 0: shape {tuple(chunk.shape)}")
    print(f"  first action: {[round(float(a), 3) for a in chunk[0]]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
