"""Journey 2: train the three-stage curriculum (tiny preset) on an annotated dataset.

    .venv/bin/python examples/run_curriculum.py                         # the data journey 1 wrote
    .venv/bin/python examples/run_curriculum.py --dataset DATASET --annotation sim-v1 --steps 200,200,200 \
        --out runs/examples/train [--overrides '[--batch_size=4, --progress=false]']

Stage I (explicit CoT + FAST action tokens + visual foresight) -> stage II (CoT segments turn
latent) -> stage III (DiT action expert), each starting from the previous stage's `final/`, into
`<out>/stage{1,2,3}`. `--overrides` are `lara train` flags applied to every stage's config
(the tiny presets, curriculum/presets.py). A finished stage is skipped, an interrupted one resumed.
Finally the stage-III checkpoint is loaded and predicts one action chunk on a dataset frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from curriculum import checkpointing as ckpt
from curriculum.runner import run_curriculum
from data_pipeline.lerobot_io import read_lerobot_dataset
from envs.policies import resolve_checkpoint
from envs.protocol import Observation
from lara.modeling_lara import LaraPolicy
from lara.scripts.cli import configure_logging
from lara.utils.config_parsing import parse_config
from lara.utils.errors import LaraUserError, run_main


@dataclass
class Settings:
    dataset: Path = Path("runs/examples/demos")
    annotation: str = "sim-v1"  # annotation run name (annotations/<name>/)
    steps: list[int] | None = None  # optimizer steps of stages I, II, III (default: the presets' 200 each)
    out: Path = Path("runs/examples/train")
    overrides: list[str] = field(default_factory=list)  # `lara train` flags of every stage: [--batch_size=4]

    def __post_init__(self) -> None:
        if self.steps is not None and len(self.steps) != 3:
            raise LaraUserError(f"--steps takes three step counts (stages I, II, III), got {self.steps}")


def main(argv: list[str] | None = None) -> int:
    args = parse_config(Settings, argv, prog="examples/run_curriculum.py")
    configure_logging()

    common = ["--data.root", str(args.dataset), "--data.annotation", args.annotation, *args.overrides]
    for stage in (1, 2, 3):
        steps = ["--steps", str(args.steps[stage - 1])] if args.steps else []
        results = run_curriculum("tiny", [], [*common, *steps], str(args.out), [stage])
        if not results:  # its final/ already existed
            print(f"stage {stage}: already trained, skipped")
            continue
        history = results[0].history  # one record per optimizer step
        print(
            f"stage {stage}: loss {history[0]['loss']:.4f} at step {history[0]['step']} -> "
            f"{history[-1]['loss']:.4f} at step {history[-1]['step']}; checkpoint {results[0].final_dir}"
        )
    final = ckpt.final_dir(args.out / "stage3")
    print(f"final checkpoint: {final}")

    policy = LaraPolicy.from_pretrained(resolve_checkpoint(str(final))).eval()
    episode = next(read_lerobot_dataset(args.dataset, episodes=[0]))
    obs = Observation(
        images={cam: frames[0] for cam, frames in episode.images.items()},
        state=episode.state[0],
        instruction=episode.instruction,
        sim_state=None,
    )
    chunk = policy.predict_action_chunk(obs)  # (chunk_size, 7), un-normalized, gripper -1 / +1
    print(f"predicted action chunk on episode 0, frame 0: shape {tuple(chunk.shape)}")
    print(f"  first action: {[round(float(a), 3) for a in chunk[0]]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
