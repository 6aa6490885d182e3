"""Our advantages against an independent, plain-Python transcription of the SAW authors' code.

The authors' four methods (Zhaolutuan/SAW @119951f, verl/trainer/ppo/ray_trainer.py
``compute_advantage``; the README selects them with algorithm.adv_estimator):
- grpo    (l.150-160): R = format + correctness (- beta * sum_t kld, kl in reward), then
          core_algos.py:111-155 per group (R - mean) / (std + 1e-6), std unbiased.
- gdpo    (l.165-186): the same group normalisation per reward, summed, then verl's masked_whiten
          over the [N, T] token broadcast (torch_functional.py:107-136: token-weighted mean,
          unbiased variance over tokens, (x - mean) * rsqrt(var + 1e-8)).
- grpo-h  (l.190-217): sequence scores, correctness shifted by +3, format by 0; cv = std /
          (|mean| + 1e-8) (unbiased std, whole batch); w = cv / (cv_c + cv_f + 1e-8) * 2;
          R = w_c * correctness + w_f * format, then the GRPO group normalisation.
- gdpo-h  (l.220-249): the same weights on the per-reward group advantages, then masked_whiten.
Ours: reward_min = [0, -3] (format {0,1}, correctness [-3,3]), delta = 1e-8, eps = 1e-6,
GDPO whitening per token (the default). The only differences are where the 1e-8 sits in the CV
and the factor K = 2 on GRPO+SAW (ours applies w' without K; the group normalisation cancels
it up to eps), hence the 1e-5 tolerance.
"""

import math
import random

import pytest
import torch

from saw.algo.advantages import compute_advantages, whiten_advantages

N_GROUPS, N_PER = 6, 4


def std(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def group_norm(values, groups):
    out = []
    for i, v in enumerate(values):
        g = [values[j] for j in range(len(values)) if groups[j] == groups[i]]
        m = sum(g) / len(g)
        out.append((v - m) / (std(g) + 1e-6))
    return out


def masked_whiten(values, lengths):
    tokens = [v for v, n in zip(values, lengths) for _ in range(n)]
    m = sum(tokens) / len(tokens)
    var = sum((t - m) ** 2 for t in tokens) / len(tokens) * len(tokens) / (len(tokens) - 1)
    return [(v - m) / math.sqrt(var + 1e-8) for v in values]


def authors_weights(fmt, corr):
    def cv(xs):
        return std(xs) / (abs(sum(xs) / len(xs)) + 1e-8)

    cv_c, cv_f = cv([c + 3.0 for c in corr]), cv(list(fmt))
    total = cv_c + cv_f + 1e-8
    return cv_f / total * 2.0, cv_c / total * 2.0  # (w_fmt, w_corr)


def authors_advantages(method, fmt, corr, groups, lengths, kld=None):
    if method == "grpo":
        total = [f + c - (0.0 if kld is None else 0.001 * k) for f, c, k in zip(fmt, corr, kld or [0] * len(fmt))]
        return group_norm(total, groups)
    if method == "grpo-h":
        w_f, w_c = authors_weights(fmt, corr)
        return group_norm([w_c * c + w_f * f for f, c in zip(fmt, corr)], groups)
    a_f, a_c = group_norm(fmt, groups), group_norm(corr, groups)
    if method == "gdpo":
        return masked_whiten([x + y for x, y in zip(a_c, a_f)], lengths)
    w_f, w_c = authors_weights(fmt, corr)  # gdpo-h
    return masked_whiten([w_c * y + w_f * x for x, y in zip(a_f, a_c)], lengths)


def batch(seed):
    rnd = random.Random(seed)
    n = N_GROUPS * N_PER
    fmt = [float(rnd.random() < 0.8) for _ in range(n)]  # mostly mastered
    corr = [round(rnd.uniform(-3, 3), 2) for _ in range(n)]
    for g in range(N_GROUPS):  # no flat groups: the authors' std + 1e-6 and ours agree there too
        fmt[g * N_PER], fmt[g * N_PER + 1] = 0.0, 1.0
    groups = [i // N_PER for i in range(n)]
    lengths = [rnd.randint(3, 40) for _ in range(n)]
    return fmt, corr, groups, lengths


OURS = {"grpo": ("grpo", "static"), "gdpo": ("gdpo", "static"), "grpo-h": ("grpo", "saw"), "gdpo-h": ("gdpo", "saw")}


@pytest.mark.parametrize("method", list(OURS))
@pytest.mark.parametrize("seed", range(5))
def test_advantages_match_the_authors(method, seed):
    fmt, corr, groups, lengths = batch(seed)
    expected = authors_advantages(method, fmt, corr, groups, lengths)
    estimator, weighting = OURS[method]
    rewards = torch.tensor(list(zip(fmt, corr)), dtype=torch.float64)
    got, _ = compute_advantages(rewards, torch.tensor(groups), estimator=estimator, weighting=weighting,
                                reward_min=[0.0, -3.0], token_counts=torch.tensor(lengths))
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    # the authors' own alias names select the same computation
    alias, _ = compute_advantages(rewards, torch.tensor(groups), estimator=method, reward_min=[0.0, -3.0],
                                  token_counts=torch.tensor(lengths))
    torch.testing.assert_close(alias, got)


def test_kl_in_reward_of_plain_grpo_matches_the_authors():
    fmt, corr, groups, lengths = batch(7)
    kld = [0.5 * (i % 5) for i in range(len(fmt))]  # sum_t (old_logp - ref_logp) per response
    expected = authors_advantages("grpo", fmt, corr, groups, lengths, kld)
    rewards = torch.tensor(list(zip(fmt, corr)), dtype=torch.float64)
    got, info = compute_advantages(rewards, torch.tensor(groups), estimator="grpo",
                                   penalty=0.001 * torch.tensor(kld, dtype=torch.float64))
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="takes no reward penalty"):
        compute_advantages(rewards, torch.tensor(groups), estimator="gdpo", penalty=torch.zeros(len(fmt)))


def test_token_and_sequence_whitening_differ_on_a_hand_batch():
    """A = [1, -1, 2, 0] with lengths [1, 1, 1, 5]: per sequence the mean is 0.5; per token the
    last response counts 5 times, the mean is (1 - 1 + 2 + 0) / 8 = 0.25 and the variance (unbiased
    over 8 tokens) = (0.5625 + 1.5625 + 3.0625 + 5 * 0.0625) / 7 = 5.5 / 7."""
    adv = torch.tensor([1.0, -1.0, 2.0, 0.0], dtype=torch.float64)
    lengths = torch.tensor([1, 1, 1, 5])
    token = whiten_advantages(adv, mode="token", token_counts=lengths)
    expected = [(a - 0.25) / math.sqrt(5.5 / 7 + 1e-8) for a in adv.tolist()]
    torch.testing.assert_close(token, torch.tensor(expected, dtype=torch.float64))
    seq = whiten_advantages(adv, mode="sequence", eps=0.0)
    s = std(adv.tolist())
    torch.testing.assert_close(seq, torch.tensor([(a - 0.5) / s for a in adv.tolist()], dtype=torch.float64))
    assert (token - seq).abs().max() > 0.1  # the choice matters: up to 0.12 on the toy batch
