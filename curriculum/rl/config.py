"""`lara rl` settings: one typed dataclass (draccus), YAML presets in configs/rl/, flags override.

Validation raises one clear line; nothing is adjusted silently. `identity()` is every setting that
changes the weights a run produces (the rest, like out or workers, may differ on resume).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from curriculum.config import LoraSettings
from envs.worker_backends import check_backend
from lara.utils.errors import LaraUserError

POLICY_KINDS = ("flow", "tokens")
POLICY_IN = ("driver", "workers")
# Free to change between a run and its resume: they do not change the weights.
# `iterations` among them: the learning rate is constant, so a longer run is a continuation.
OPERATIONAL = (
    "out",
    "resume",
    "iterations",
    "save_every",
    "keep_last",
    "progress",
    "workers",
    "policy_in",
    "slots_per_worker",
    "backend",
    "ray_address",
    "eval_episodes",
    "eval_workers",
    "eval_max_steps",
    "device",
    "max_minutes",
)


@dataclass
class RLConfig:
    policy: str = ""  # starting checkpoint: a save_pretrained folder or a training run's final/
    dataset: str = ""  # training dataset whose demo start states are the rollout layouts
    suite: str = "libero_object"
    tasks: str = "all"  # "all" or comma-separated task ids
    kind: str = "flow"  # flow: stage-III expert (noisy Euler steps) | tokens: stage-II FAST tokens
    noise_scale: float = 0.1  # flow: std of each Euler step's Gaussian, normalized action units
    temperature: float = 1.0  # tokens: sampling temperature
    num_steps: int | None = None  # flow: Euler steps (None = the checkpoint's)
    execute_steps: int | None = None  # actions run per chunk (None: checkpoint's inference.n_action_steps)
    max_steps: int | None = None  # rollout step limit (None = the suite's protocol limit)
    camera_size: int = 256
    iterations: int = 10
    # wall-time budget over all invocations of the run (0 = none): stops after the iteration that
    # reaches it
    max_minutes: float = 0.0
    groups: int = 4  # layouts per iteration
    group_size: int = 4  # rollouts per layout (G)
    lr: float = 1e-5
    weight_decay: float = 0.0
    clip_eps: float = 0.2
    kl_weight: float = 0.01
    epochs: int = 2
    minibatch_units: int = 64  # chunks per optimizer step
    grad_clip_norm: float = 1.0
    step_cost: float = 0.0  # reward = success - step_cost * steps (off by default)
    # LoRA adapters on the backbone (trained with the expert / instead of the whole decoder);
    # off = backbone frozen (flow) or decoder trained (tokens). No dropout: log-probs must be exact.
    lora: LoraSettings = field(default_factory=lambda: LoraSettings(dropout=0.0, train_embeddings=False))
    seed: int = 0
    device: str = "cpu"  # the learner's device (rollout workers run on the CPU); "cuda" untested so far
    out: Path = Path("outputs/rl")  # the run folder: checkpoints, iterations.jsonl, report.md
    resume: bool = False
    save_every: int = 1  # iterations between checkpoints
    keep_last: int = 2
    workers: int = 1  # simulator processes
    # driver: the learner's policy samples the chunks of every rollout in flight, batched over the
    # simulator workers (one copy of the policy); workers: each worker loads its own copy and runs
    # whole rollouts at batch 1, reloading a weights file after each update. The same rollouts.
    policy_in: str = "driver"
    slots_per_worker: int = 1  # driver: rollouts in flight per worker (the batch is workers x this)
    # local: rollout (and evaluation) workers here; ray: Ray actors, on a local Ray or the cluster at
    # --ray_address (with --policy_in workers its nodes must share --out's filesystem: the workers
    # read the weights file there)
    backend: str = "local"
    ray_address: str | None = None
    progress: bool = True
    eval_episodes: int = 0  # before/after evaluation on the standard protocol, episodes per task (0 = none)
    eval_workers: int = 1
    eval_max_steps: int | None = None  # smoke tests only: caps the evaluation episodes (reported)

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise LaraUserError(message)

        check(bool(self.policy), "give --policy <checkpoint dir> (the policy to fine-tune)")
        check(
            bool(self.dataset),
            "give --dataset <LeRobot dataset or LIBERO HDF5>: its demo start states are the layouts",
        )
        check_backend(self.backend, self.ray_address)
        check(
            self.policy_in in POLICY_IN,
            f"--policy_in {self.policy_in!r}: choose one of {', '.join(POLICY_IN)}",
        )
        check(self.kind in POLICY_KINDS, f"--kind {self.kind!r}: choose one of {', '.join(POLICY_KINDS)}")
        check(
            self.kind != "flow" or self.noise_scale > 0,
            "--noise_scale must be > 0 (the flow policy needs noise)",
        )
        check(self.kind != "tokens" or self.temperature > 0, "--temperature must be > 0 (sampled tokens)")
        for name in (
            "iterations",
            "groups",
            "epochs",
            "minibatch_units",
            "save_every",
            "keep_last",
            "workers",
            "slots_per_worker",
            "eval_workers",
            "camera_size",
        ):
            check(getattr(self, name) >= 1, f"--{name} must be >= 1, got {getattr(self, name)}")
        check(
            self.group_size >= 2,
            f"--group_size must be >= 2 (advantages are relative within a group), got {self.group_size}",
        )
        for name in ("num_steps", "execute_steps", "max_steps", "eval_max_steps"):
            v = getattr(self, name)
            check(v is None or v >= 1, f"--{name} must be >= 1, got {v}")
        check(self.max_minutes >= 0, f"--max_minutes must be >= 0 (0 = no budget), got {self.max_minutes}")
        check(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        check(0 < self.clip_eps < 1, f"--clip_eps must be in (0, 1), got {self.clip_eps}")
        check(
            self.kl_weight >= 0 and self.step_cost >= 0 and self.grad_clip_norm >= 0,
            "--kl_weight, --step_cost and --grad_clip_norm must be >= 0",
        )
        check(
            not self.lora.enabled or self.lora.dropout == 0,
            "--lora.dropout must be 0 for RL: dropout makes "
            "the re-scored log-probabilities differ from the sampled ones",
        )
        check(
            not self.lora.train_embeddings,
            "--lora.train_embeddings must be false for RL (the tied table stays frozen)",
        )
        check(
            0 <= self.eval_episodes <= 50,
            f"--eval_episodes must be in 0..50 (init states per task), got {self.eval_episodes}",
        )
        self.out = Path(self.out)

    def identity(self) -> dict:
        out = {
            k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items() if k not in OPERATIONAL
        }
        if not self.lora.enabled:  # LoRA settings matter only when it is on
            out["lora"] = {"enabled": False}
        return out

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]
