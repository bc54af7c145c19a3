import math

import pytest

from curriculum.schedules import latent_probability, loss_weight, lr_multiplier, stage_latent_probability

SCHED = dict(total_steps=100, start_fraction=0.1, end_fraction=0.7, num_segments=3)


def test_lr_warmup_then_cosine_to_floor():
    f = [lr_multiplier(s, total_steps=100, warmup_steps=10, min_lr_ratio=0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)  # first update is not at lr 0
    assert all(a < b for a, b in zip(f[:10], f[1:10]))  # warmup rises
    assert all(a >= b for a, b in zip(f[9:], f[10:]))  # cosine decays
    assert f[99] == pytest.approx(0.1)  # reaches the floor at the last step
    assert f[54] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 44 / 89)))


def test_lr_without_warmup_starts_at_one():
    assert lr_multiplier(0, total_steps=10, warmup_steps=0, min_lr_ratio=0.0) == pytest.approx(1.0)
    assert lr_multiplier(9, total_steps=10, warmup_steps=0, min_lr_ratio=0.0) == pytest.approx(0.0)


@pytest.mark.parametrize("kind", ["linear", "cosine", "stepwise"])
def test_latent_probability_monotone_zero_to_one_with_final_all_latent_stretch(kind):
    p = [latent_probability(s, kind=kind, **SCHED) for s in range(100)]
    assert all(a <= b for a, b in zip(p, p[1:]))
    assert p[0] == 0.0 and p[10] == 0.0  # nothing latent before the ramp starts
    assert all(v == 1.0 for v in p[70:])  # the final stretch: every segment latent
    assert 0.0 < p[50] < 1.0


def test_latent_probability_shapes():
    mid = 40  # halfway through the ramp [10, 70]
    assert latent_probability(mid, kind="linear", **SCHED) == pytest.approx(0.5)
    assert latent_probability(mid, kind="cosine", **SCHED) == pytest.approx(0.5)
    assert latent_probability(25, kind="cosine", **SCHED) < latent_probability(25, kind="linear", **SCHED)
    levels = {latent_probability(s, kind="stepwise", **SCHED) for s in range(100)}
    assert levels == {0.0, 1 / 3, 2 / 3, 1.0}  # one more segment latent per level (Coconut)


def test_latent_probability_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown latent schedule"):
        latent_probability(0, kind="exp", **SCHED)


def test_stage_latent_probability():
    assert stage_latent_probability(1, 99, kind="linear", **SCHED) == 0.0
    assert stage_latent_probability(3, 0, kind="linear", **SCHED) == 1.0
    assert stage_latent_probability(2, 40, kind="linear", **SCHED) == pytest.approx(0.5)


def test_loss_weight_ramp_never_zero():
    w = [loss_weight(s, weight=0.2, warmup_steps=4) for s in range(6)]
    assert w == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2])
    assert loss_weight(0, weight=0.1, warmup_steps=0) == 0.1


def test_tag_order_one_more_tag_per_level_from_the_first_ramp_step():
    """tag_order: 0 before the ramp, the first tag from its first step, one more tag per level
    (levels of equal length over the ramp), all tags after it."""
    sched = dict(total_steps=100, start_fraction=0.1, end_fraction=0.7, num_segments=4)
    p = [latent_probability(s, kind="tag_order", **sched) for s in range(100)]
    assert p[:10] == [0.0] * 10 and p[10] == 0.25
    assert all(a <= b for a, b in zip(p, p[1:]))
    assert p[29] == 0.25 and p[30] == 0.5 and p[49] == 0.5 and p[50] == 0.75 and p[69] == 0.75
    assert p[70:] == [1.0] * 30
