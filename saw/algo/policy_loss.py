"""PPO-clip policy loss over token logprobs, with loss aggregation modes, KL and entropy.

Shapes: B responses, T response tokens (right-padded); ``mask`` Tensor[B, T] is 1 on real
response tokens. Advantages are per response (Tensor[B]) or per token (Tensor[B, T]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
KL_ESTIMATORS = ("k1", "k2", "k3")


def masked_sum(x: Tensor, mask: Tensor, dim=None) -> Tensor:
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim=None) -> Tensor:
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def aggregate_loss(loss_mat: Tensor, mask: Tensor, mode: str = "token-mean",
                   normalizer: float | None = None, max_response_length: int | None = None) -> Tensor:
    """Reduce a per-token loss Tensor[B, T] to a scalar.

    token-mean: sum over all valid tokens / number of valid tokens (``normalizer`` overrides the
        denominator, for gradient accumulation over micro-batches of one global batch);
    seq-mean-token-mean: mean over tokens per response, then mean over responses
        (``normalizer`` overrides the number of responses);
    seq-mean-token-sum-norm: Dr.GRPO's constant normaliser: token sum / (B * max_response_length)
        (``normalizer`` overrides B).
    """
    mask = mask.to(loss_mat.dtype)
    if mode == "token-mean":
        denom = mask.sum().clamp(min=1) if normalizer is None else normalizer
        return masked_sum(loss_mat, mask) / denom
    if mode == "seq-mean-token-mean":
        per_seq = masked_mean(loss_mat, mask, dim=-1)
        denom = per_seq.numel() if normalizer is None else normalizer
        return per_seq.sum() / denom
    if mode == "seq-mean-token-sum-norm":
        horizon = loss_mat.shape[-1] if max_response_length is None else max_response_length
        denom = loss_mat.shape[0] if normalizer is None else normalizer
        return masked_sum(loss_mat, mask) / (denom * horizon)
    raise ValueError(f"unknown loss aggregation {mode!r}; valid modes: {', '.join(AGG_MODES)}")


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from sampled-token logprobs, Tensor[B, T].

    k1 = log r; k2 = (log r)^2 / 2; k3 = exp(-log r) - 1 + log r (Schulman), r = pi / pi_ref.
    k3 is clamped to [-10, 10] in log space for stability, as verl does.
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.pow(2)
    if estimator == "k3":
        neg = (-log_ratio).clamp(-10.0, 10.0)
        return (neg.exp() - 1.0 - neg).clamp(-10.0, 10.0)
    raise ValueError(f"unknown KL estimator {estimator!r}; valid: {', '.join(KL_ESTIMATORS)}")


def kl_in_reward(rewards: Tensor, logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor,
                 coef: float, estimator: str = "k1") -> Tensor:
    """Subtract coef * sum_t KL_t from every reward column: rewards Tensor[B, K] -> Tensor[B, K]."""
    kl = masked_sum(kl_penalty(logprobs, ref_logprobs, estimator), mask.to(logprobs.dtype), dim=-1)
    return rewards - coef * kl.unsqueeze(-1).to(rewards.dtype)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the categorical distribution for logits Tensor[..., V] -> Tensor[...]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


@dataclass
class PolicyLossConfig:
    clip_ratio_low: float = 0.2
    clip_ratio_high: float | None = None  # None: same as low (symmetric clip)
    dual_clip_c: float | None = None  # dual-clip PPO lower bound for negative advantages
    loss_agg_mode: str = "token-mean"
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    entropy_coef: float = 0.0


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    cfg: PolicyLossConfig = PolicyLossConfig(),
    *,
    ref_logprobs: Tensor | None = None,
    entropy: Tensor | None = None,
    normalizer: float | None = None,
    max_response_length: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate (+ KL loss term, - entropy bonus).

    logprobs, old_logprobs, ref_logprobs, entropy, mask: Tensor[B, T]; advantages: Tensor[B] or
    Tensor[B, T]. Returns (loss scalar, diagnostics: pg_loss, clip_frac, approx_kl (old vs new),
    kl (vs reference, if given), entropy (if given)). Diagnostics are detached.
    """
    if cfg.loss_agg_mode not in AGG_MODES:
        raise ValueError(f"unknown loss aggregation {cfg.loss_agg_mode!r}; valid modes: {', '.join(AGG_MODES)}")
    mask_f = mask.to(logprobs.dtype)
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    adv = adv.to(logprobs.dtype)
    log_ratio = (logprobs - old_logprobs).clamp(-20.0, 20.0)
    ratio = log_ratio.exp()
    high = cfg.clip_ratio_low if cfg.clip_ratio_high is None else cfg.clip_ratio_high
    loss_unclipped = -adv * ratio
    loss_clipped = -adv * ratio.clamp(1.0 - cfg.clip_ratio_low, 1.0 + high)
    pg = torch.maximum(loss_unclipped, loss_clipped)
    if cfg.dual_clip_c is not None:
        pg = torch.where(adv < 0, torch.minimum(pg, -adv * cfg.dual_clip_c), pg)
    agg = dict(mode=cfg.loss_agg_mode, normalizer=normalizer, max_response_length=max_response_length)
    pg_loss = aggregate_loss(pg, mask_f, **agg)
    loss = pg_loss
    info: dict[str, Tensor] = {}
    with torch.no_grad():
        clipped = (loss_clipped > loss_unclipped).to(logprobs.dtype)
        info["pg_loss"] = pg_loss.detach()
        info["clip_frac"] = masked_mean(clipped, mask_f)
        info["approx_kl"] = masked_mean(0.5 * log_ratio.pow(2), mask_f)
    if ref_logprobs is not None and cfg.kl_coef != 0.0:
        kl_mat = kl_penalty(logprobs, ref_logprobs, cfg.kl_estimator)
        kl = aggregate_loss(kl_mat, mask_f, **agg)
        loss = loss + cfg.kl_coef * kl
        info["kl"] = masked_mean(kl_mat.detach(), mask_f)
    if entropy is not None:
        ent = aggregate_loss(entropy, mask_f, **agg)
        if cfg.entropy_coef != 0.0:
            loss = loss - cfg.entropy_coef * ent
        info["entropy"] = masked_mean(entropy.detach(), mask_f)
    return loss, info
