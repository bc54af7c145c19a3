"""Which policy `lara eval` runs for `--policy`: the one place a new policy kind is added.

`policy_builder(cfg)` -> what `envs.evaluator.evaluate(cfg, policy_builder=...)` gets: None for the
built-in noop and scripted policies (the simulator layer builds them), a dataset reader for
`replay`, `lara.peer.policy.PeerPolicyBuilder` for `peer:DIR` (lerobot's Diffusion Policy trained by
`lara peer-train`, one copy per worker), and for a LaRA checkpoint `lara.modeling_lara.LaraPolicyBuilder`,
whose policy runs once in the evaluation driver on the batch of episodes in flight (envs.driver).
The simulator layer never imports the model: a new kind is one more branch here returning a
picklable `env -> policy`.
"""

from __future__ import annotations

from envs.evaluator import EvalConfig
from envs.policies import BUILTIN_POLICIES, resolve_checkpoint
from lara.utils.errors import LaraUserError

PEER_PREFIX = "peer:"  # `--policy peer:DIR`: a `lara peer-train` run folder


def policy_builder(cfg: EvalConfig):
    if cfg.policy == "replay":
        if not cfg.dataset:
            raise LaraUserError("--policy replay needs --dataset DIR (a LeRobot or LIBERO HDF5 dataset)")
        from data_pipeline.replay import ReplayPolicyBuilder

        return ReplayPolicyBuilder(cfg.dataset)
    if cfg.policy in BUILTIN_POLICIES:
        return None
    if cfg.policy.startswith(PEER_PREFIX):
        from lara.peer.policy import PeerPolicyBuilder  # torch + lerobot: not for --help

        return PeerPolicyBuilder(
            cfg.policy.removeprefix(PEER_PREFIX), seed=cfg.seed, execute_steps=cfg.execute_steps
        )
    from lara.modeling_lara import LaraPolicyBuilder  # torch + transformers: not for --help

    return LaraPolicyBuilder(str(resolve_checkpoint(cfg.policy)), cfg.execute_steps)
