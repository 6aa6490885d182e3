"""Turning rollout samples into padded tensors, and token logprobs of a causal LM on them.

Layout of a batch of B sequences: prompts are left-padded to P columns and completions
right-padded to T columns, so every completion starts at column P::

    [pad pad p p p | c c c pad]        input_ids  Tensor[B, P + T]
    [ 0   0  1 1 1 | 1 1 1  0 ]        attention_mask
                     ^ response_mask Tensor[B, T] marks real completion tokens

Logits are only computed for the T + 1 last positions (``logits_to_keep``), which is where the
completion tokens are predicted: with SmolLM2's 49,152-token vocabulary this skips the largest
matrix product for every prompt token.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor

from saw.algo.policy_loss import entropy_from_logits


@dataclass
class TokenBatch:
    input_ids: Tensor  # [B, P + T]
    attention_mask: Tensor  # [B, P + T]
    position_ids: Tensor  # [B, P + T]
    response_ids: Tensor  # [B, T]
    response_mask: Tensor  # [B, T] float
    prompt_len: int  # P

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def slice(self, idx) -> "TokenBatch":
        """Rows ``idx`` (a slice or index tensor), trimmed to the columns they use."""
        sub_mask = self.attention_mask[idx]
        resp_mask = self.response_mask[idx]
        # trim left prompt padding shared by all rows and right completion padding
        used_prompt = sub_mask[:, : self.prompt_len].sum(1).max().item() if self.prompt_len else 0
        left = self.prompt_len - int(used_prompt)
        t_used = int(resp_mask.sum(1).max().item()) if resp_mask.numel() else 0
        t_used = max(t_used, 1)
        end = self.prompt_len + t_used
        return TokenBatch(
            input_ids=self.input_ids[idx][:, left:end],
            attention_mask=sub_mask[:, left:end],
            position_ids=self.position_ids[idx][:, left:end],
            response_ids=self.response_ids[idx][:, :t_used],
            response_mask=resp_mask[:, :t_used],
            prompt_len=self.prompt_len - left,
        )


def build_token_batch(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int) -> TokenBatch:
    """Pad B (prompt, completion) pairs into the layout above."""
    if len(prompt_ids) != len(completion_ids):
        raise ValueError("prompt_ids and completion_ids differ in length")
    b = len(prompt_ids)
    p = max((len(x) for x in prompt_ids), default=0)
    t = max(max((len(x) for x in completion_ids), default=0), 1)
    input_ids = torch.full((b, p + t), pad_id, dtype=torch.long)
    attn = torch.zeros((b, p + t), dtype=torch.long)
    resp = torch.full((b, t), pad_id, dtype=torch.long)
    resp_mask = torch.zeros((b, t), dtype=torch.float32)
    for i, (pr, co) in enumerate(zip(prompt_ids, completion_ids)):
        if pr:
            input_ids[i, p - len(pr): p] = torch.as_tensor(pr, dtype=torch.long)
            attn[i, p - len(pr): p] = 1
        if co:
            input_ids[i, p: p + len(co)] = torch.as_tensor(co, dtype=torch.long)
            attn[i, p: p + len(co)] = 1
            resp[i, : len(co)] = torch.as_tensor(co, dtype=torch.long)
            resp_mask[i, : len(co)] = 1.0
    position_ids = (attn.cumsum(1) - 1).clamp(min=0)
    return TokenBatch(input_ids, attn, position_ids, resp, resp_mask, p)


def response_logprobs(model, batch: TokenBatch, *, temperature: float = 1.0, with_entropy: bool = False,
                      autocast_dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor | None]:
    """Logprobs Tensor[B, T] (float32) of the response tokens under ``model`` (and entropy [B, T]).

    Logits are divided by the sampling temperature (as verl does) so that the logprobs are those
    of the distribution the rollout sampled from (before top-p/top-k truncation).
    """
    t = batch.response_ids.shape[1]
    device = next(model.parameters()).device if hasattr(model, "parameters") else torch.device("cpu")
    kwargs = dict(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device),
                  position_ids=batch.position_ids.to(device), logits_to_keep=t + 1, use_cache=False)
    if autocast_dtype is not None:
        with torch.autocast(device_type=device.type, dtype=autocast_dtype):
            out = model(**kwargs)
    else:
        out = model(**kwargs)
    logits = out.logits[:, -(t + 1): -1, :].float()  # position j predicts token j + 1
    if temperature and temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1)
    token_logp = logp.gather(-1, batch.response_ids.to(device).unsqueeze(-1)).squeeze(-1)
    entropy = entropy_from_logits(logits) if with_entropy else None
    return token_logp, entropy


def _pad(seqs: list[list[int]], pad_id: int, left: bool) -> tuple[Tensor, Tensor]:
    """(ids Tensor[B, W], mask Tensor[B, W]) with W the longest length (at least 1), padded on the
    left (prompts) or on the right (completions)."""
    width = max(max((len(s) for s in seqs), default=0), 1)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            cols = slice(width - len(s), width) if left else slice(0, len(s))
            ids[i, cols] = torch.as_tensor(s, dtype=torch.long)
            mask[i, cols] = 1
    return ids, mask


def shared_prefix_logprobs(model, prompt_ids: list[list[int]], completion_ids: list[list[int]], n: int,
                           pad_id: int, *, temperature: float = 1.0, with_entropy: bool = False,
                           autocast_dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
    """Response logprobs with each prompt computed once for its group of ``n`` completions.

    prompt_ids: G prompts; completion_ids: G * n completions, grouped (rows g*n .. g*n+n-1 belong
    to prompt g). The prompt pass returns its key/value cache, which is repeated n times and
    attended to by the completion pass; gradients flow back through the cache into the prompt
    computation, so the result (values and gradients) equals the padded full-sequence forward
    while the prompt tokens are processed G instead of G * n times (the "Prefix Grouper" idea).
    Needs a model whose forward accepts ``past_key_values`` (every HF causal LM) and no gradient
    checkpointing (HF turns the cache off under checkpointing).

    Returns (logprobs Tensor[G*n, T], entropy Tensor[G*n, T] or None, response_mask Tensor[G*n, T]).
    """
    if len(completion_ids) != len(prompt_ids) * n:
        raise ValueError(f"{len(completion_ids)} completions for {len(prompt_ids)} prompts x n={n}")
    device = next(model.parameters()).device
    p_ids, p_mask = _pad(prompt_ids, pad_id, left=True)
    p_pos = (p_mask.cumsum(1) - 1).clamp(min=0)
    c_ids, c_mask = _pad(completion_ids, pad_id, left=False)
    t = c_ids.shape[1]
    prompt_len = p_mask.sum(1).repeat_interleave(n)  # [B] real prompt tokens per row
    c_pos = prompt_len.unsqueeze(1) + torch.arange(t).unsqueeze(0)
    attn = torch.cat([p_mask.repeat_interleave(n, dim=0), c_mask], dim=1)
    ctx = torch.autocast(device_type=device.type, dtype=autocast_dtype) if autocast_dtype is not None \
        else contextlib.nullcontext()
    with ctx:
        out = model(input_ids=p_ids.to(device), attention_mask=p_mask.to(device), position_ids=p_pos.to(device),
                    use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        if cache is None:
            raise RuntimeError("the model returned no cache: disable gradient checkpointing for shared-prefix forwards")
        cache.batch_repeat_interleave(n)
        first = out.logits[:, -1:, :].repeat_interleave(n, dim=0)
        out2 = model(input_ids=c_ids.to(device), attention_mask=attn.to(device), position_ids=c_pos.to(device),
                     past_key_values=cache, use_cache=True, logits_to_keep=t)
    logits = torch.cat([first.float(), out2.logits[:, :-1, :].float()], dim=1)  # [B, T, V]
    if temperature and temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1)
    token_logp = logp.gather(-1, c_ids.to(device).unsqueeze(-1)).squeeze(-1)
    entropy = entropy_from_logits(logits) if with_entropy else None
    return token_logp, entropy, c_mask.to(torch.float32).to(device)
