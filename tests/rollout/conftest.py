"""Fixtures for the rollout tests: a reference (teacher-forced transformers forward) that the
engines' tokens and logprobs are checked against, and weight sets for the sync tests."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

MAX_MODEL_LEN = 256
# prompts of plain vocabulary tokens (ids above the 3 special tokens)
PROMPTS = [[1, 5, 6, 7, 8], [1, 9, 10], [1, 40, 41, 42, 43, 44, 45, 46]]


def reference_logprobs(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Log-probabilities [T, V] of the distribution a token is drawn from, written independently of
    the engines: greedy -> log_softmax(logits); otherwise temperature, then keep the k largest
    logits (ties with the k-th kept), then the nucleus: keep a token when the (renormalised) mass of
    the tokens ranked strictly before it is < top_p."""
    logits = logits.double()
    if temperature == 0:
        return torch.log_softmax(logits, dim=-1)
    out = torch.empty_like(logits)
    for t in range(logits.shape[0]):
        x = logits[t] / temperature
        keep = torch.ones_like(x, dtype=torch.bool)
        if top_k > 0:
            kth = sorted(x.tolist(), reverse=True)[top_k - 1]
            keep &= x >= kth
        if top_p < 1.0:
            probs = torch.softmax(x.masked_fill(~keep, -math.inf), dim=-1)
            order = sorted(range(len(x)), key=lambda i: -float(probs[i]))
            mass_before = 0.0
            nucleus = torch.zeros_like(keep)
            for i in order:
                if mass_before < top_p:
                    nucleus[i] = True
                mass_before += float(probs[i])
            keep &= nucleus
        out[t] = torch.log_softmax(x.masked_fill(~keep, -math.inf), dim=-1)
    return out


class Reference:
    """A float32 transformers copy of the tiny model, evaluated with teacher forcing."""

    def __init__(self, model_dir):
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.original = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    @torch.no_grad()
    def completion_logits(self, prompt_ids, completion_ids) -> torch.Tensor:
        """[len(completion), V] logits that predicted each completion token."""
        ids = torch.tensor([list(prompt_ids) + list(completion_ids)])
        logits = self.model(ids).logits[0].float()
        return logits[len(prompt_ids) - 1: len(prompt_ids) - 1 + len(completion_ids)]

    @torch.no_grad()
    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state, strict=False)


@pytest.fixture(scope="session")
def reference(tiny_model_dir):
    return Reference(tiny_model_dir)


def checkpoint_weights(model_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def perturbed(weights: dict[str, torch.Tensor], scale: float = 0.05, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in weights.items()}


def eos_first_weights(weights: dict[str, torch.Tensor], eos_id: int) -> dict[str, torch.Tensor]:
    """Weights under which EOS is the most likely next token after any prompt: attention and MLP
    outputs are zeroed (the residual stream is the token embedding), the final norm keeps only
    dimension 0, every embedding has 1 in dimension 0 and EOS has 2. With tied embeddings the
    logits are h0 * E[:, 0] with h0 > 0, so EOS leads every other token by h0."""
    out = {k: v.clone() for k, v in weights.items()}
    for k in out:
        if k.endswith("o_proj.weight") or k.endswith("down_proj.weight"):
            out[k].zero_()
    norm = out["model.norm.weight"]
    norm.zero_()
    norm[0] = 1.0
    emb = out["model.embed_tokens.weight"]
    emb[:, 0] = 1.0
    emb[eos_id, 0] = 2.0
    return out


@pytest.fixture(scope="session")
def kit():
    """Constants and reference functions shared by the rollout test modules."""
    return SimpleNamespace(prompts=PROMPTS, max_model_len=MAX_MODEL_LEN, reference_logprobs=reference_logprobs)


@pytest.fixture(scope="session")
def weights(tiny_model_dir):
    original = checkpoint_weights(tiny_model_dir)
    return SimpleNamespace(original=original, perturbed=perturbed(original),
                           eos_first=lambda eos_id: eos_first_weights(original, eos_id))
