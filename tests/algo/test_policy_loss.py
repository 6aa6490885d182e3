"""PPO-clip loss: hand-computed values, aggregation modes, KL estimators, gradients."""

import math

import pytest
import torch

from saw.algo.policy_loss import (PolicyLossConfig, aggregate_loss, entropy_from_logits, kl_in_reward,
                             kl_penalty, policy_loss)


def test_clip_by_hand():
    # one token each: ratio 1.5 with A=+1 is clipped at 1.2; ratio 0.5 with A=+1 is not
    old = torch.zeros(3, 1)
    new = torch.log(torch.tensor([[1.5], [0.5], [1.5]]))
    adv = torch.tensor([1.0, 1.0, -1.0])
    mask = torch.ones(3, 1)
    loss, info = policy_loss(new, old, adv, mask, PolicyLossConfig(clip_ratio_low=0.2))
    # token losses: -min(1.5, 1.2) = -1.2; -0.5; A<0: max(1.5, 1.2) -> 1.5
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.5) / 3, abs=1e-6)
    assert info["clip_frac"].item() == pytest.approx(1 / 3)


def test_gradient_zero_when_clipped():
    new = torch.log(torch.tensor([[1.5]])).requires_grad_()
    loss, _ = policy_loss(new, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1))
    loss.backward()
    assert new.grad.abs().item() == 0.0
    new2 = torch.zeros(1, 1, requires_grad=True)
    loss2, _ = policy_loss(new2, torch.zeros(1, 1), torch.tensor([2.0]), torch.ones(1, 1))
    loss2.backward()
    assert new2.grad.item() == pytest.approx(-2.0)  # d(-A * exp(lp))/dlp at lp=0


def test_aggregation_modes_by_hand():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate_loss(loss, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate_loss(loss, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate_loss(loss, mask, "seq-mean-token-sum-norm").item() == pytest.approx(10 / (2 * 3))
    assert aggregate_loss(loss, mask, "seq-mean-token-sum-norm", max_response_length=10).item() == pytest.approx(0.5)
    assert aggregate_loss(loss, mask, "token-mean", normalizer=8).item() == pytest.approx(10 / 8)
    with pytest.raises(ValueError, match="valid modes"):
        aggregate_loss(loss, mask, "sum")


def test_kl_estimators():
    lp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.0]])
    lr = lp - ref
    torch.testing.assert_close(kl_penalty(lp, ref, "k1"), lr)
    torch.testing.assert_close(kl_penalty(lp, ref, "k2"), 0.5 * lr ** 2)
    torch.testing.assert_close(kl_penalty(lp, ref, "k3"), torch.exp(-lr) - 1 + lr)
    assert (kl_penalty(lp, ref, "k3") >= 0).all()
    with pytest.raises(ValueError, match="k1"):
        kl_penalty(lp, ref, "k9")
    r = kl_in_reward(torch.ones(1, 2), lp, ref, torch.tensor([[1, 0]]), coef=0.1)
    torch.testing.assert_close(r, torch.full((1, 2), 1 - 0.1 * 0.5))


def test_kl_and_entropy_terms_enter_loss():
    torch.manual_seed(0)
    lp = torch.randn(2, 4) * 0.1 - 1
    ref = lp + 0.3
    ent = torch.rand(2, 4)
    mask = torch.ones(2, 4)
    adv = torch.tensor([0.5, -0.5])
    base, _ = policy_loss(lp, lp, adv, mask)
    cfg = PolicyLossConfig(kl_coef=0.1, entropy_coef=0.01)
    full, info = policy_loss(lp, lp, adv, mask, cfg, ref_logprobs=ref, entropy=ent)
    expected = base + 0.1 * kl_penalty(lp, ref, "k3").mean() - 0.01 * ent.mean()
    torch.testing.assert_close(full, expected)
    assert info["kl"].item() > 0 and "entropy" in info


def test_entropy_from_logits_uniform():
    assert entropy_from_logits(torch.zeros(3, 8)).allclose(torch.full((3,), math.log(8)))
