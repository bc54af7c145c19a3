"""The FAST-token scorer inside one GRPO update: the re-scored old log-probabilities equal the
sampled ones, and the update moves the backbone while the reference copy stays put."""

import torch

from curriculum.rl.scorers import ChunkUnits, TokenScorer
from curriculum.rl.update import UpdateSettings, grpo_update
from lara.token_logprobs import sample_tokens


def test_token_scorer_grpo_update_moves_the_policy_not_the_reference(make_obs, tiny_policy):
    policy = tiny_policy()
    scorer = TokenScorer(policy, temperature=1.0)
    chunks, logps = [], []
    g = torch.Generator().manual_seed(0)
    for i in range(4):  # 2 groups x 2 rollouts, one chunk each
        o = make_obs(i // 2, size=64)
        imgs = policy.processor.to_device(o).images
        s = sample_tokens(policy, imgs, o.instruction, 1.0, g, max_tokens=3)
        chunks.append(
            {"images": dict(o.images), "state": o.state, "instruction": o.instruction, "tokens": s.tokens}
        )
        logps.append(s.log_prob)
    params = [p for p in policy.vlm.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    ref_before = scorer.ref_log_prob(ChunkUnits(chunks)).detach()
    opt = torch.optim.AdamW(params, lr=1e-3)
    m = grpo_update(
        scorer,
        ChunkUnits(chunks),
        torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        [1, 1, 1, 1],
        opt,
        UpdateSettings(epochs=1, minibatch_units=4, kl_weight=0.1),
        torch.Generator().manual_seed(1),
        torch.tensor(logps),
    )
    assert m["updated"] == 1.0 and m["informative_fraction"] == 1.0
    assert m["rollout_logp_gap"] < 1e-4  # sampled (cached decoding) vs re-scored (teacher forcing)
    assert abs(m["ratio_mean"] - 1.0) < 1e-5  # first pass: old policy = current
    assert any(not torch.equal(a, b) for a, b in zip(before, params))
    assert torch.equal(scorer.ref_log_prob(ChunkUnits(chunks)).detach(), ref_before)


def test_flow_lora_update_and_the_merged_weights_rollout_workers_load(tmp_path, make_obs, tiny_policy):
    from safetensors.torch import load_file

    from curriculum.config import LoraSettings
    from curriculum.rl.config import RLConfig
    from curriculum.rl.loop import _rollout_weights, _trainable
    from curriculum.rl.scorers import BackboneFlowScorer
    from lara.flow_sampling import sample_flow_chunk
    from lara.modeling_lara import LaraPolicy

    ckpt = tmp_path / "tiny"
    start = tiny_policy()
    with (
        torch.no_grad()
    ):  # adaLN-Zero: an untrained expert ignores its context, so no gradient would reach LoRA
        for p in start.expert.parameters():
            p.add_(0.05 * torch.randn_like(p))
    start.save_pretrained(ckpt)
    cfg = RLConfig(
        policy=str(ckpt),
        dataset="unused",
        lora=LoraSettings(enabled=True, r=4, alpha=8, dropout=0.0, train_embeddings=False),
    )
    learner = LaraPolicy.from_pretrained(ckpt).eval()
    named, modules = _trainable(learner, cfg)
    assert modules and any("lora_" in n for n in named) and any(n.startswith("expert.") for n in named)
    assert not any(n.startswith("vlm.") and "lora_" not in n for n in named)  # base weights stay frozen
    scorer = BackboneFlowScorer(learner, 0.3)
    worker = LaraPolicy.from_pretrained(ckpt).eval()  # a rollout worker's plain policy

    def rollouts(seed):
        chunks, logps, g = [], [], torch.Generator().manual_seed(seed)
        for i in range(4):
            o = make_obs(i // 2, size=64)
            obs = {
                "images": {c: v[None] for c, v in o.images.items()},
                "state": o.state[None],
                "instruction": [o.instruction],
            }
            _, s = sample_flow_chunk(worker, obs, 0.3, None, g)
            chunks.append(
                {"images": dict(o.images), "state": o.state, "instruction": o.instruction, "path": s.path[0]}
            )
            logps.append(float(s.log_prob[0]))
        return ChunkUnits(chunks), torch.tensor(logps)

    units, logps = rollouts(0)
    opt = torch.optim.AdamW(list(named.values()), lr=1e-2)
    m = grpo_update(
        scorer,
        units,
        torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        [1] * 4,
        opt,
        UpdateSettings(epochs=2, minibatch_units=2),
        torch.Generator().manual_seed(1),
        logps,
    )
    assert m["updated"] == 1.0 and m["rollout_logp_gap"] < 1e-3
    assert any(
        float(p.detach().abs().sum()) > 0 for n, p in named.items() if "lora_B" in n
    )  # the adapters moved off 0
    _rollout_weights(learner, named, modules, tmp_path / "w.safetensors")
    weights = load_file(str(tmp_path / "w.safetensors"))
    assert not any("lora_" in k for k in weights)  # merged under the plain names a worker knows
    assert not worker.load_state_dict(weights, strict=False).unexpected_keys
    units, logps = rollouts(1)  # sampled by the worker with the merged weights
    with torch.no_grad():
        rescored = scorer.log_prob(units)  # scored by the learner through its adapters
        assert torch.allclose(rescored, logps, atol=1e-3), rescored - logps
        assert not torch.allclose(
            scorer.ref_log_prob(units), rescored, atol=1e-2
        )  # the policy really changed
