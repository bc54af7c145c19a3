"""GRPO arithmetic on hand-made numbers: group advantages, the clipped surrogate, the k3 KL."""

import math

import pytest
import torch

from curriculum.rl.grpo import clipped_surrogate, group_advantages, k3_kl, unit_weights


def test_group_advantages_standardize_within_each_group_and_zero_all_equal_groups():
    rewards = torch.tensor(
        [[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
    )
    adv, informative = group_advantages(rewards, eps=0.0)
    assert informative.tolist() == [True, False, False, True]
    # group 0: mean 0.25, population std sqrt(0.1875)
    s = math.sqrt(0.1875)
    assert adv[0].tolist() == pytest.approx([0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s])
    assert adv[1].tolist() == [0.0] * 4 and adv[2].tolist() == [0.0] * 4  # nothing to learn from these
    assert adv[3].tolist() == pytest.approx([1.0, 1.0, -1.0, -1.0])
    assert float(adv[0].sum()) == pytest.approx(0.0, abs=1e-6)


def test_group_advantages_reject_groups_of_one():
    with pytest.raises(ValueError, match="G >= 2"):
        group_advantages(torch.ones(3, 1))


def test_clipped_surrogate_on_hand_made_numbers():
    # ratios e^0.5 = 1.6487 and e^-0.5 = 0.6065, each with A = +1 and A = -1; clip range [0.8, 1.2]
    logp_old = torch.zeros(4)
    logp = torch.tensor([0.5, -0.5, 0.5, -0.5])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    w = torch.full((4,), 0.25)
    out = clipped_surrogate(logp, logp_old, adv, w, clip_eps=0.2)
    r_hi, r_lo = math.exp(0.5), math.exp(-0.5)
    # min(r A, clip(r) A): A=+1: min(1.6487, 1.2) = 1.2; min(0.6065, 0.8) = 0.6065
    #                      A=-1: min(-1.6487, -1.2) = -1.6487; min(-0.6065, -0.8) = -0.8
    expected = 0.25 * (1.2 + r_lo - r_hi - 0.8)
    assert float(out.objective) == pytest.approx(expected, rel=1e-6)
    assert float(out.loss) == pytest.approx(-expected, rel=1e-6)
    assert float(out.clip_fraction) == pytest.approx(1.0)  # every ratio is outside [0.8, 1.2]
    assert float(out.ratio_mean) == pytest.approx(0.5 * (r_hi + r_lo), rel=1e-6)


def test_clipped_surrogate_gradient_vanishes_where_clipped():
    logp = torch.tensor([0.5, 0.0], requires_grad=True)
    out = clipped_surrogate(
        logp, torch.zeros(2), torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.5]), clip_eps=0.2
    )
    out.loss.backward()
    assert logp.grad[0] == 0.0  # ratio 1.65 > 1.2 with A > 0: clipped, no push further
    assert float(logp.grad[1]) == pytest.approx(-0.5)  # d(-w r A)/dlogp at r = 1


def test_k3_kl_and_its_weight_in_the_loss():
    logp, ref = torch.tensor([0.0, -1.0]), torch.tensor([0.0, 0.0])
    kl = k3_kl(logp, ref)
    assert kl.tolist() == pytest.approx([0.0, math.exp(1.0) - 1.0 - 1.0])  # d = 1: e - 2
    w = torch.tensor([0.5, 0.5])
    out = clipped_surrogate(logp, logp.clone(), torch.zeros(2), w, clip_eps=0.2, logp_ref=ref, kl_weight=0.1)
    assert float(out.kl) == pytest.approx(0.5 * (math.e - 2.0))
    assert float(out.loss) == pytest.approx(
        0.1 * 0.5 * (math.e - 2.0)
    )  # zero advantages: only the KL remains
    assert float(k3_kl(torch.tensor([-1e6]), torch.tensor([0.0]))[0]) < float("inf")  # clamped, never inf


def test_unit_weights_count_each_rollout_once():
    w = unit_weights([2, 1, 4])
    assert w.tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 3, 1 / 12, 1 / 12, 1 / 12, 1 / 12])
    assert float(w.sum()) == pytest.approx(1.0)
