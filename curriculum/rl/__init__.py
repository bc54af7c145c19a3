"""GRPO fine-tuning in LIBERO with success rewards (`lara rl`), the curriculum's fourth stage.

Modules: `grpo` (advantages, clipped surrogate, KL: pure torch), `update` (one GRPO update over a
batch of rollout groups), `scorers` (the flow expert and the FAST-token policy as scorers of
recorded chunks), `layouts` (rollout start states from the training demos), `config` (RLConfig),
`loop` (rollouts -> update -> checkpoint, resumable). Rollouts run in envs/rollouts.py workers;
the stochastic samplers are lara/flow_sampling.py and lara/token_logprobs.py.
"""
