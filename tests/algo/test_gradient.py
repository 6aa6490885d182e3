"""The "+Gradient" weighting (Lu et al.): influence vs direct autograd, direction of the update."""

import torch

from saw.algo.advantages import compute_advantages
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
    adv, info = compute_advantages(r, g, estimator="grpo", weighting="gradient", reward_min=[0, 0],
                                   weighting_state={"weights": w})
    torch.testing.assert_close(info["weights"], w)
    ref, _ = compute_advantages(r, g, estimator="grpo", weights=w)
    torch.testing.assert_close(adv, ref)
    _, info_gdpo = compute_advantages(r, g, estimator="gdpo", weighting="gradient", reward_min=[0, 0],
                                      weighting_state={"weights": w})
    torch.testing.assert_close(info_gdpo["weights"], 2 * w)  # K * w on the GDPO host, as SAW
