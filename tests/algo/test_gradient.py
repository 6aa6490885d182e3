"""The "+Gradient" weighting (Lu et al.): influence vs direct autograd, direction of the update."""

import math

import pytest
import torch

from saw.algo.advantages import compute_advantages
from saw.algo.weighting import build_weighting
from saw.rl.logprobs import build_token_batch, response_logprobs
from saw.algo.gradient import (influence_from_grads, mirror_descent_step, per_objective_gradients)
from saw.algo.policy_loss import PolicyLossConfig, policy_loss


def _setup(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = [[1, 40 + i, 50 + i] for i in range(4)]
    comps = [[60 + i, 70 + i, 80] for i in range(4)]
    batch = build_token_batch(prompts, comps, pad_id=0)
    params = [p for p in model.parameters() if p.requires_grad]
    return model, batch, params


def _losses(model, mb, advs, n_tok):
    lp, _ = response_logprobs(model, mb)
    return [policy_loss(lp, lp.detach(), a, mb.response_mask, PolicyLossConfig(), normalizer=n_tok)[0] for a in advs]


def test_influence_matches_direct_autograd(tiny_model_dir):
    model, batch, params = _setup(tiny_model_dir)
    a1 = torch.tensor([1.0, -1.0, 0.5, -0.5])
    a2 = torch.tensor([0.2, 0.3, -1.0, 0.5])
    n_tok = float(batch.response_mask.sum())

    def micro():
        for s in (slice(0, 2), slice(2, 4)):
            yield lambda s=s: _losses(model, batch.slice(s), [a1[s], a2[s]], n_tok)

    grads = per_objective_gradients(params, micro(), 2)
    s = influence_from_grads(grads)
    # direct: full-batch objective k = mean over tokens of -A_k * ratio; gradients by autograd
    direct = []
    for a in (a1, a2):
        lp, _ = response_logprobs(model, batch)
        loss = (-(a.unsqueeze(1) * torch.exp(lp - lp.detach())) * batch.response_mask).sum() / n_tok
        g = torch.autograd.grad(loss, params, allow_unused=True)
        direct.append(torch.cat([(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, params)]))
    g1, g2 = direct
    expected = torch.stack([g1 @ (g1 + g2), g2 @ (g1 + g2)]).double()
    torch.testing.assert_close(s, expected, rtol=1e-4, atol=1e-7)
    assert all(p.grad is None for p in params)  # the optimizer's buffers were not touched


def test_weights_move_toward_the_dominant_objective_when_gradients_conflict(tiny_model_dir):
    model, batch, params = _setup(tiny_model_dir)
    a = torch.tensor([1.0, -1.0, 0.5, -0.5])
    n_tok = float(batch.response_mask.sum())
    w0 = torch.tensor([0.5, 0.5], dtype=torch.float64)
    # conflict: objective 2 pulls the opposite way with half the strength -> g2 = -g1 / 2
    grads = per_objective_gradients(params, [lambda: _losses(model, batch, [a, -0.5 * a], n_tok)], 2)
    s = influence_from_grads(grads)
    assert s[0] > 0 > s[1]
    w = mirror_descent_step(w0, s, eta=1.0, lam=float(s.abs().max()))
    assert w[0] > 0.5 > w[1] and abs(float(w.sum()) - 1) < 1e-12
    # aligned and equal: influences equal, weights stay equal
    grads = per_objective_gradients(params, [lambda: _losses(model, batch, [a, a], n_tok)], 2)
    s2 = influence_from_grads(grads)
    torch.testing.assert_close(s2[0], s2[1])
    torch.testing.assert_close(mirror_descent_step(w0, s2, eta=1.0, lam=1.0), w0)


def test_gradient_weighting_is_registered_and_uses_state():
    r = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    g = torch.tensor([0, 0, 1, 1])
    w = torch.tensor([0.8, 0.2], dtype=torch.float64)
    weighting = build_weighting("gradient", 2)
    weighting.load_state_dict({"weights": w.tolist()})
    adv, info = compute_advantages(r, g, estimator="grpo", weighting=weighting, reward_min=[0, 0])
    torch.testing.assert_close(info["weights"], w)
    ref, _ = compute_advantages(r, g, estimator="grpo", weights=w)
    torch.testing.assert_close(adv, ref)
    _, info_gdpo = compute_advantages(r, g, estimator="gdpo", weighting=weighting, reward_min=[0, 0])
    torch.testing.assert_close(info_gdpo["weights"], 2 * w)  # K * w on the GDPO host, as SAW
    assert build_weighting("gradient", 2).state_dict() == {"weights": [0.5, 0.5]}  # starts equal
    with pytest.raises(ValueError, match="3 rewards"):
        build_weighting("gradient", 3).load_state_dict({"weights": w.tolist()})


class _FakeProbe:
    """Hands fixed per-objective gradients to the weighting (what the trainer computes)."""

    def __init__(self, rewards, group_ids, grads, lr):
        self.rewards, self.group_ids, self._grads, self.lr = rewards, group_ids, grads, lr
        self.seen = None

    def objective_gradients(self, advantages, *, layer_span=None):
        self.seen = (advantages.clone(), layer_span)
        return self._grads, self.full_norms


def test_update_is_one_mirror_descent_step_on_clipped_gradients():
    r = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    groups = torch.tensor([0, 0, 1, 1])
    g1 = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)  # norm 5 -> clipped to norm 1: [0.6, 0.8, 0]
    g2 = torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64)  # norm 0.5 -> unchanged
    probe = _FakeProbe(r, groups, torch.stack([g1, g2]), lr=0.1)
    probe.full_norms = torch.stack([g1.norm(), g2.norm()])  # the subset is the whole vector here
    weighting = build_weighting("gradient", 2, lam=0.5, clip_norm=1.0, layer_span=[0.25, 0.75])
    diag = weighting.update(probe)
    # hand computation: s_k = g_k . (g_1 + g_2) on the clipped rows
    c1, c2 = [0.6, 0.8, 0.0], [0.0, 0.5, 0.0]
    total = [a + b for a, b in zip(c1, c2)]
    s = [sum(a * b for a, b in zip(c1, total)), sum(a * b for a, b in zip(c2, total))]  # [1.4, 0.65]
    logits = [math.log(0.5) + 0.1 * s_k / 0.5 for s_k in s]
    z = sum(math.exp(x) for x in logits)
    expected = [math.exp(x) / z for x in logits]
    torch.testing.assert_close(diag["influence"], torch.tensor(s, dtype=torch.float64))
    assert weighting.state_dict()["weights"] == pytest.approx(expected, abs=1e-12)
    # the probe saw the group-normalised per-reward advantages and the configured span
    adv, span = probe.seen
    assert span == (0.25, 0.75)
    # group [1, 0]: centred +-0.5, unbiased std sqrt(0.5) -> +-0.5 / (sqrt(0.5) + eps)
    expected_adv = torch.tensor([0.5, -0.5, 0.5, -0.5], dtype=torch.float64) / (0.5 ** 0.5 + 1e-6)
    torch.testing.assert_close(adv[:, 0], expected_adv)


@pytest.mark.parametrize("bad, match", [(dict(lam=0), "lam must be > 0"), (dict(clip_norm=-1), "clip_norm"),
                                        (dict(layer_span=[0.8, 0.2]), "layer_span")])
def test_bad_gradient_options_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        build_weighting("gradient", 2, **bad)


def test_clipping_uses_the_norm_over_all_parameters():
    """Lu et al. clip each objective's full gradient to norm 1, then take the layer subset: a
    subset row is scaled by 1 / (its full norm), not by its own norm."""
    r = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    groups = torch.tensor([0, 0, 1, 1])
    sub = torch.tensor([[0.3, 0.4], [0.1, 0.0]], dtype=torch.float64)  # subset norms 0.5 and 0.1
    probe = _FakeProbe(r, groups, sub, lr=1.0)
    probe.full_norms = torch.tensor([5.0, 0.5], dtype=torch.float64)  # full norms: clip row 0 by 5, row 1 not
    weighting = build_weighting("gradient", 2, lam=1.0, clip_norm=1.0, layer_span=[0.25, 0.75])
    diag = weighting.update(probe)
    c1, c2 = [0.06, 0.08], [0.1, 0.0]
    total = [c1[0] + c2[0], c1[1] + c2[1]]
    expected = [c1[0] * total[0] + c1[1] * total[1], c2[0] * total[0] + c2[1] * total[1]]
    torch.testing.assert_close(diag["influence"], torch.tensor(expected, dtype=torch.float64))


def test_config_defaults_are_lu_et_al():
    """conf/algorithm/grpo_gradient.yaml carries Lu et al.'s Qwen3-8B script values (lambda 1e-5,
    eta = lr, clip 1.0, layers 10-25 of 36), and the span picks exactly those layers of 36."""
    from pathlib import Path

    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[2] / "conf" / "algorithm" / "grpo_gradient.yaml"
    g = OmegaConf.load(conf).gradient
    w = build_weighting("gradient", 2, **OmegaConf.to_container(g))
    assert (w.lam, w.eta, w.clip_norm) == (1e-5, None, 1.0)
    lo, hi = w.layer_span
    assert [i for i in range(36) if lo * 36 <= i < hi * 36] == list(range(10, 26))
