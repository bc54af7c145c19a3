"""Stage-III fast path: the prompt cache and the captured expert loop change speed, not predictions."""

import numpy as np
import pytest
import torch


def _nonzero_expert(policy, seed: int = 0):
    """AdaLN-Zero starts every block as the identity: random weights everywhere, so that a wrong
    block, mask or step in the captured loop would change the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.expert.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return policy.eval()


@pytest.fixture(scope="module")
def policy(tiny_policy):
    return _nonzero_expert(tiny_policy())


def _predict(policy, obs, cache: bool, seed: int = 1) -> np.ndarray:
    policy.cfg.inference.cache = cache
    try:
        torch.manual_seed(seed)  # the same noise draw
        return policy.predict_action_chunk(obs, stage=3)
    finally:
        policy.cfg.inference.cache = True


def test_cached_path_equals_the_reference_and_a_new_instruction_rebuilds(policy, make_obs):
    obs = make_obs()
    ref = _predict(policy, obs, cache=False)
    builds = policy.engine.prompt_cache.builds
    fast = _predict(policy, obs, cache=True)
    np.testing.assert_array_equal(fast, ref)
    again = _predict(policy, make_obs(seed=5), cache=True)  # new images, same instruction: cache hit
    assert policy.engine.prompt_cache.builds == builds + 1
    np.testing.assert_array_equal(again, _predict(policy, make_obs(seed=5), cache=False))
    other = make_obs(seed=5)
    other.instruction = "open the top drawer and put the bowl inside"
    fast_other = _predict(policy, other, cache=True)
    assert policy.engine.prompt_cache.builds == builds + 2  # the instruction changed: rebuilt
    np.testing.assert_array_equal(fast_other, _predict(policy, other, cache=False))
    assert np.abs(fast_other - again).max() > 0  # and the instruction really matters


def test_cache_follows_weight_updates_and_batches(policy, make_obs):
    obs = make_obs()
    before = _predict(policy, obs, cache=True)
    with torch.no_grad():  # an in-place update (as an optimizer step) of a cached input: the slot offsets
        policy.foresight.slot_embed.add_(0.5)
    after = _predict(policy, obs, cache=True)
    assert np.abs(after - before).max() > 0
    np.testing.assert_array_equal(after, _predict(policy, obs, cache=False))
    batched = {
        "images": {k: np.stack([v, v[::-1]]) for k, v in obs.images.items()},
        "state": np.stack([obs.state, -obs.state]),
        "instruction": [obs.instruction, "pick up the bowl"],
    }
    out = _predict(policy, batched, cache=True)
    assert out.shape == (2, 8, 7)
    np.testing.assert_array_equal(out, _predict(policy, batched, cache=False))


def _expert_inputs(policy, b: int = 2, length: int = 30):
    g = torch.Generator().manual_seed(3)
    ctx = torch.randn(b, length, policy.cfg.expert.hidden_size, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, :7] = False  # a left-padded row
    state = torch.randn(b, policy.cfg.state_dim, generator=g)
    noise = torch.randn(b, policy.cfg.chunk_size, policy.cfg.action_dim, generator=g)
    return ctx, mask, state, noise


@pytest.mark.parametrize("steps", [1, 4])
def test_captured_loop_equals_the_module(policy, steps):
    from lara.expert_runtime import ExpertRuntime

    ctx, mask, state, noise = _expert_inputs(policy)
    ref = policy.expert.sample(ctx, mask, state, steps, noise.clone())
    runtime = ExpertRuntime(policy.expert)
    out = runtime.sample(ctx, mask, state, steps, noise.clone())
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert (ref - noise).abs().max() > 1e-2  # the expert did move the chunk
    with torch.no_grad():  # cached fused weights and conditioning follow an in-place update
        policy.expert.blocks[0].attn.to_k.weight.mul_(2.0)
        policy.expert.blocks[0].norm1.linear.bias.add_(0.1)
    try:
        ref2 = policy.expert.sample(ctx, mask, state, steps, noise.clone())
        assert (ref2 - ref).abs().max() > 1e-4
        torch.testing.assert_close(
            runtime.sample(ctx, mask, state, steps, noise.clone()), ref2, rtol=1e-5, atol=1e-5
        )
    finally:
        with torch.no_grad():
            policy.expert.blocks[0].attn.to_k.weight.mul_(0.5)
            policy.expert.blocks[0].norm1.linear.bias.sub_(0.1)


def test_runtime_falls_back_to_eager_when_compilation_fails(policy, monkeypatch, caplog):
    from lara import expert_runtime

    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(expert_runtime.torch, "compile", lambda fn, **k: broken)
    runtime = expert_runtime.ExpertRuntime(policy.expert, compile=True)
    ctx, mask, state, noise = _expert_inputs(policy)
    out = runtime.sample(ctx, mask, state, 2, noise.clone())
    torch.testing.assert_close(
        out, policy.expert.sample(ctx, mask, state, 2, noise.clone()), rtol=1e-5, atol=1e-5
    )
    assert "falling back to eager" in caplog.text and "compile" in runtime._failed


@pytest.mark.slow  # Inductor compiles C++ kernels: about a minute on the project's CPU
def test_compiled_loop_equals_eager(policy):
    from lara.expert_runtime import ExpertRuntime

    ctx, mask, state, noise = _expert_inputs(policy)
    eager = ExpertRuntime(policy.expert).sample(ctx, mask, state, 4, noise.clone())
    compiled = ExpertRuntime(policy.expert, compile=True)
    out = compiled.sample(ctx, mask, state, 4, noise.clone())
    assert not compiled._failed, "torch.compile fell back to eager"
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_equals_eager(tiny_policy):
    from lara.expert_runtime import ExpertRuntime

    policy = _nonzero_expert(tiny_policy()).to("cuda")
    ctx, mask, state, noise = (t.cuda() for t in _expert_inputs(policy))
    eager = ExpertRuntime(policy.expert).sample(ctx, mask, state, 4, noise.clone())
    graphed = ExpertRuntime(policy.expert, cuda_graph=True)
    for _ in range(2):  # capture, then replay with new inputs
        out = graphed.sample(ctx, mask, state, 4, noise.clone())
        assert not graphed._failed
        torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)
    ctx2 = ctx * 0.5
    torch.testing.assert_close(
        graphed.sample(ctx2, mask, state, 4, noise.clone()),
        ExpertRuntime(policy.expert).sample(ctx2, mask, state, 4, noise.clone()),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize("future, use_state, layers", [(0, True, 4), (3, False, 3), (2, True, 1)])
def test_captured_loop_equals_the_module_for_other_expert_shapes(future, use_state, layers):
    """Without future tokens, without a state token, ending on a self-attention block, one block."""
    from dataclasses import replace

    from lara.action_expert import ActionExpert
    from lara.expert_runtime import ExpertRuntime
    from lara.presets import load_config

    cfg = load_config("tiny", [])
    ecfg = replace(cfg.expert, num_future_tokens=future, use_state=use_state, num_layers=layers)
    torch.manual_seed(0)
    expert = ActionExpert(ecfg, 32, 7, 8, 8).eval()
    with torch.no_grad():
        for p in expert.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    ctx, mask = expert.project_context(torch.randn(2, 12, 32)), torch.rand(2, 12) > 0.3
    mask[:, -1] = True
    state = torch.randn(2, 8) if use_state else None
    noise = torch.randn(2, 8, 7)
    ref = expert.sample(ctx, mask, state, 3, noise.clone())
    torch.testing.assert_close(
        ExpertRuntime(expert).sample(ctx, mask, state, 3, noise.clone()), ref, rtol=1e-5, atol=1e-5
    )
