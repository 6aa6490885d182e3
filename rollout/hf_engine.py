"""Rollout with transformers ``generate``: the fallback engine (and the faster one for toy models).

Batched with left padding; every prompt is repeated ``n`` times. Temperature, top-k and top-p are
applied by this module's own logits processor (HF's warpers are switched off) so that the recorded
logprobs are exactly those of the distribution each token was drawn from, with vLLM's filtering
rules (top-k keeps ties with the k-th logit; top-p drops the low tail whose mass is <= 1 - p and
keeps at least one token). See ``rollout/common.py`` for the conventions shared with vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch

from .base import RolloutEngine, RolloutSample, SamplingConfig
from .common import (derive_call_seed, eos_token_ids, finish_completion, length_caps, private_rng,
                     settings_from_mapping, torch_dtype)


@dataclass
class HFSettings:
    """Settings of ``conf/rollout/hf.yaml``."""

    dtype: str = "auto"  # auto (checkpoint dtype) | float32 | bfloat16 | float16
    max_model_len: int | None = None  # None: the model's max_position_embeddings
    seed: int = 0
    batch_size: int = 64  # sequences per generate() call (P * n rows are split into such chunks)
    threads: int | None = None  # torch intra-op threads (None: leave as is)
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:1 ...
    attn_implementation: str | None = "sdpa"

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"rollout.batch_size must be >= 1, got {self.batch_size}")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"rollout.max_model_len must be >= 2, got {self.max_model_len}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"rollout.threads must be >= 1 or null, got {self.threads}")
        torch_dtype(self.dtype)


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """The distribution sampled from, as logits [B, V] (float32): ``logits / temperature`` with
    tokens outside top-k / top-p set to -inf. Temperature 0 (greedy) returns the raw logits."""
    x = logits.float()
    if temperature == 0:
        return x
    x = x / temperature
    if top_k is not None and 0 < top_k < x.shape[-1]:
        kth = torch.topk(x, top_k, dim=-1).values[:, -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p < 1.0:
        sorted_x, order = torch.sort(x, dim=-1, descending=False)
        tail_mass = torch.cumsum(sorted_x.softmax(dim=-1), dim=-1)
        drop = tail_mass <= 1 - top_p
        drop[:, -1] = False  # always keep the most likely token
        x = x.scatter(-1, order, sorted_x.masked_fill(drop, float("-inf")))
    return x


class _SamplingProcessor:
    """Logits processor: filters the logits (``filter_logits``) and records the logprob of the
    token chosen at the previous step from the previous step's filtered distribution."""

    def __init__(self, temperature: float, top_k: int, top_p: float):
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.prev_logprobs: torch.Tensor | None = None  # [B, V] of the last step
        self.chosen: list[torch.Tensor] = []  # per step: [B]

    def _record(self, token_ids: torch.Tensor) -> None:
        self.chosen.append(self.prev_logprobs.gather(1, token_ids[:, None].to(self.prev_logprobs.device))[:, 0])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.prev_logprobs is not None:
            self._record(input_ids[:, -1])
        filtered = filter_logits(scores, self.temperature, self.top_k, self.top_p)
        self.prev_logprobs = filtered.log_softmax(dim=-1)
        return filtered

    def logprobs(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """[B, T] logprobs of the generated tokens ``new_tokens`` [B, T]."""
        if self.prev_logprobs is not None and len(self.chosen) < new_tokens.shape[1]:
            self._record(new_tokens[:, len(self.chosen)])
        if not self.chosen:
            return torch.zeros(new_tokens.shape, dtype=torch.float32)
        return torch.stack(self.chosen, dim=1).float().cpu()


class _RowStop:
    """Stopping criterion per row: the row's length cap, or a stop string in its decoded tail.
    ``ends[row]`` is the number of generated tokens when the row stopped (None: still running)."""

    def __init__(self, prompt_width: int, caps: list[int], stop: list[str], tokenizer):
        self.width, self.caps, self.stop, self.tokenizer = prompt_width, caps, [s for s in stop if s], tokenizer
        self.ends: list[int | None] = [None] * len(caps)
        # a stop string of c characters lies within the last c tokens (+ slack for partial bytes)
        self.window = max((len(s) for s in self.stop), default=0) + 8

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        step = input_ids.shape[1] - self.width
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in range(input_ids.shape[0]):
            if self.ends[row] is not None:
                done[row] = True
                continue
            hit = step >= self.caps[row]
            if not hit and self.stop:
                tail = input_ids[row, max(self.width, input_ids.shape[1] - self.window):].tolist()
                text = self.tokenizer.decode(tail, skip_special_tokens=True)
                hit = any(s in text for s in self.stop)
            if hit:
                self.ends[row] = step
                done[row] = True
        return done


class HFEngine(RolloutEngine):
    """transformers ``generate`` behind the ``RolloutEngine`` interface."""

    def __init__(self, model_path, settings: HFSettings | dict | None = None):
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig  # heavy: with the engine only

        self.settings = settings if isinstance(settings, HFSettings) else settings_from_mapping(HFSettings, settings, "hf")
        s = self.settings
        if s.threads is not None:
            torch.set_num_threads(s.threads)
        device = s.device if s.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(device)
        self.model_path = str(model_path)
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self._tokenizer.padding_side = "left"
        kwargs = {"dtype": torch_dtype(s.dtype)}
        if s.attn_implementation:
            kwargs["attn_implementation"] = s.attn_implementation
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, **kwargs).to(self.device).eval()
        self.eos_ids = eos_token_ids(self._tokenizer, self.model_path)
        pad = self._tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.eos_ids[0]
        # a clean generation config: no sampling defaults inherited from the checkpoint
        self.model.generation_config = GenerationConfig(eos_token_id=self.eos_ids, pad_token_id=self.pad_id)
        self._max_len = int(s.max_model_len or getattr(self.model.config, "max_position_embeddings", 2048))
        self._calls = 0
        self._params = dict(self.model.state_dict(keep_vars=True))

    @torch.inference_mode()
    def _generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> list[RolloutSample]:
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList  # heavy: with the engine only

        rows = [(group, ids) for group, ids in enumerate(prompt_ids) for _ in range(sampling.n)]
        caps = length_caps([ids for _, ids in rows], sampling.max_new_tokens, self._max_len)
        seed = derive_call_seed(self.settings.seed, self._calls, sampling.seed)
        self._calls += 1
        top_k = sampling.top_k if sampling.top_k and sampling.top_k > 0 else 0
        # HF's own warpers stay off: _SamplingProcessor does temperature / top-k / top-p
        sample_kwargs = ({"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
                         if sampling.temperature > 0 else {"do_sample": False})
        samples: list[RolloutSample] = []
        with private_rng(seed):
            for start in range(0, len(rows), self.settings.batch_size):
                chunk = rows[start:start + self.settings.batch_size]
                chunk_caps = caps[start:start + self.settings.batch_size]
                width = max(len(ids) for _, ids in chunk)
                input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for r, (_, ids) in enumerate(chunk):
                    input_ids[r, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
                    mask[r, width - len(ids):] = 1
                proc = _SamplingProcessor(sampling.temperature, top_k, sampling.top_p)
                stopper = _RowStop(width, chunk_caps, list(sampling.stop), self._tokenizer)
                gen_cfg = GenerationConfig(max_new_tokens=max(chunk_caps), eos_token_id=self.eos_ids,
                                           pad_token_id=self.pad_id, **sample_kwargs)
                out = self.model.generate(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                    generation_config=gen_cfg, logits_processor=LogitsProcessorList([proc]),
                    stopping_criteria=StoppingCriteriaList([stopper]))
                new = out[:, width:].cpu()
                logprobs = proc.logprobs(new)
                for r, (group, ids) in enumerate(chunk):
                    stopped_at = stopper.ends[r]
                    end = min(chunk_caps[r], new.shape[1], stopped_at if stopped_at is not None else new.shape[1])
                    fallback = "stop" if stopped_at is not None and stopped_at < chunk_caps[r] else "length"
                    c_ids, c_lp, text, reason = finish_completion(
                        new[r, :end].tolist(), logprobs[r, :end].tolist(), tokenizer=self._tokenizer,
                        eos_ids=self.eos_ids, stop=sampling.stop, length_cap=chunk_caps[r],
                        fallback_reason=fallback)
                    samples.append(RolloutSample(group_id=group, prompt_ids=list(ids), completion_ids=c_ids,
                                                 text=text, logprobs=c_lp, finish_reason=reason))
        return samples

    @torch.no_grad()
    def _update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """All tensors are checked (names, shapes) before any is copied: a bad update changes nothing."""
        staged = []
        for name, tensor in named_tensors:
            target = self._params.get(name)
            if target is None:
                some = ", ".join(list(self._params)[:5])
                raise ValueError(f"weight {name!r} is not a parameter of the rollout model "
                                 f"(expected Hugging Face names such as {some}, ...)")
            if tuple(target.shape) != tuple(tensor.shape):
                raise ValueError(f"weight {name!r} has shape {tuple(tensor.shape)}, "
                                 f"the rollout model expects {tuple(target.shape)}")
            staged.append((target, tensor.detach()))
        for target, tensor in staged:
            target.copy_(tensor.to(device=target.device, dtype=target.dtype))

    def close(self) -> None:
        self.model = None
        self._params = {}
