"""Action expert details of the reference head (finding 7 of issue 12)."""

import copy

import torch

from lara.action_expert import ActionExpert
from lara.configuration_lara import ExpertConfig
from lara.presets import load_config


def _expert(**kw) -> ActionExpert:
    torch.manual_seed(0)
    expert = ActionExpert(ExpertConfig(num_layers=2, hidden_size=32, num_heads=4, **kw), 16, 7, 8, 8)
    for blk in expert.blocks:  # adaLN-Zero starts every block as the identity: open the gates
        torch.nn.init.normal_(blk.norm1.linear.weight, std=0.1)
    return expert


def _inputs(b: int = 3):
    g = torch.Generator().manual_seed(1)
    return (
        torch.rand(b, 8, 7, generator=g) * 2 - 1,
        torch.randn(b, 5, 32, generator=g),
        torch.ones(b, 5, dtype=torch.bool),
        torch.randn(b, 8, generator=g),
    )


def test_presets_default_to_the_reference_head():
    for preset in ("tiny", "qwen3vl-2b", "qwen3vl-4b"):
        e = load_config(preset).expert
        assert (e.num_future_tokens, e.dropout, e.flow_repeats) == (32, 0.2, 4), preset


def test_learned_future_tokens_sit_between_state_and_actions_and_learn():
    expert = _expert(num_future_tokens=32, dropout=0.0).eval()
    actions, ctx, mask, state = _inputs()
    t = torch.full((3,), 0.5)
    v = expert.velocity(actions, t, ctx, mask, state)
    assert v.shape == (3, 8, 7)
    with torch.no_grad():
        expert.future.add_(torch.randn_like(expert.future))  # (a constant shift would vanish in LayerNorm)
    assert (expert.velocity(actions, t, ctx, mask, state) - v).abs().max() > 1e-4  # actions attend to them
    expert.train()
    expert.loss(actions, ctx, mask, state).backward()
    assert expert.future.grad is not None and expert.future.grad.abs().sum() > 0
    assert _expert(num_future_tokens=0).future is None


def test_dropout_is_on_in_training_only():
    expert = _expert(dropout=0.2)
    actions, ctx, mask, state = _inputs()
    t = torch.full((3,), 0.5)
    expert.train()
    a, b = (expert.velocity(actions, t, ctx, mask, state) for _ in range(2))
    assert (a - b).abs().max() > 1e-5
    expert.eval()
    torch.testing.assert_close(*(expert.velocity(actions, t, ctx, mask, state) for _ in range(2)))


def test_each_sample_is_drawn_flow_repeats_times():
    """r repeats = the loss of the batch with each sample repeated r times (independent noise and
    times per copy), divided by r: the per-step mean is kept, the draws are averaged."""
    four = _expert(flow_repeats=4, dropout=0.0)
    one = copy.deepcopy(four)
    one.cfg = ExpertConfig(**{**vars(four.cfg), "flow_repeats": 1})
    actions, ctx, mask, state = _inputs()
    torch.manual_seed(5)
    l4 = four.loss(actions, ctx, mask, state)
    torch.manual_seed(5)
    rep = [x.repeat_interleave(4, 0) for x in (actions, ctx, mask, state)]
    l1 = one.loss(*rep)
    torch.testing.assert_close(l4, l1 / 4)
    torch.manual_seed(5)
    single = one.loss(actions, ctx, mask, state)
    assert abs(single.item() - l4.item()) > 1e-6  # really different draws, not one draw scaled


def test_a_samples_context_is_projected_once_for_its_repeats_with_the_same_loss_and_gradients():
    """The r draws of a sample share its context's cross-attention K/V (projected once, repeated):
    loss and gradients equal those of the batch with the context itself repeated r times."""
    four = _expert(flow_repeats=4, dropout=0.0)
    one = copy.deepcopy(four)
    one.cfg = ExpertConfig(**{**vars(four.cfg), "flow_repeats": 1})
    actions, ctx, mask, state = _inputs()
    ctx4, ctx1 = ctx.clone().requires_grad_(), ctx.clone().requires_grad_()
    torch.manual_seed(5)
    four.loss(actions, ctx4, mask, state).backward()
    torch.manual_seed(5)
    rep = [x.repeat_interleave(4, 0) for x in (actions, ctx1, mask, state)]
    (one.loss(*rep) / 4).backward()
    torch.testing.assert_close(ctx4.grad, ctx1.grad)
    cross = next(i for i, blk in enumerate(four.blocks) if blk.cross)
    torch.testing.assert_close(
        four.blocks[cross].attn.to_k.weight.grad, one.blocks[cross].attn.to_k.weight.grad
    )
