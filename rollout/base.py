"""The rollout-engine contract: the trainer generates through it without knowing the engine.

Shapes: P prompts, n samples each -> N = P * n samples, returned grouped: samples of prompt i
are ``samples[i*n:(i+1)*n]`` and carry ``group_id == i`` (the position of the prompt in the
list given to ``generate``).
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence, Union

import torch

from saw.core.tokens import chat_template_ids

Message = dict  # {"role": ..., "content": ...}
Prompt = Union[Sequence[int], Sequence[Message]]


@dataclass
class SamplingConfig:
    """Sampling settings of one ``generate`` call (validated before any generation)."""

    n: int = 1
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = -1  # -1 or 0 = off
    max_new_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    seed: int | None = None  # engines seed once per engine; see each engine's docs

    def validate(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"sampling n must be an integer >= 1, got {self.n!r}")
        if self.temperature < 0:
            raise ValueError(f"sampling temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"sampling max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if isinstance(self.stop, str):
            self.stop = [self.stop]


@dataclass
class RolloutSample:
    """One generated completion."""

    group_id: int  # index of its prompt in the generate() call
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str  # decoded completion (stop string excluded)
    logprobs: list[float]  # sampling logprob of each chosen completion token, len == len(completion_ids)
    finish_reason: str  # "stop" (EOS or stop string) or "length"


@dataclass
class RolloutBatch:
    """All samples of one generate() call, grouped by prompt, plus timings/token counts."""

    samples: list[RolloutSample]
    n: int
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def group_ids(self) -> torch.Tensor:
        return torch.tensor([s.group_id for s in self.samples], dtype=torch.long)

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.samples]

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


class RolloutEngine(abc.ABC):
    """Generates n completions per prompt and accepts new policy weights."""

    @abc.abstractmethod
    def _generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> list[RolloutSample]:
        ...

    @abc.abstractmethod
    def _update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        ...

    # engines set ``self._tokenizer`` and ``self._max_len`` (prompt + completion tokens)
    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def max_model_len(self) -> int:
        return self._max_len

    def encode_prompts(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Token ids for each prompt: ids pass through, chat messages get the chat template."""
        out = []
        for i, p in enumerate(prompts):
            if len(p) > 0 and isinstance(p[0], dict):
                out.append(chat_template_ids(self.tokenizer, p))
            elif len(p) > 0 and all(isinstance(t, int) for t in p):
                out.append(list(p))
            else:
                raise ValueError(f"prompt {i} is neither token ids nor chat messages")
        return out

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingConfig) -> RolloutBatch:
        """n samples for each prompt (token ids or chat messages), grouped by prompt."""
        sampling.validate()
        ids = self.encode_prompts(prompts)
        limit = self.max_model_len
        for i, p in enumerate(ids):
            if len(p) + 1 > limit:
                raise ValueError(
                    f"prompt {i} has {len(p)} tokens but the engine's max model length is {limit}: "
                    "truncate prompts (task.max_prompt_length) or raise rollout.max_model_len")
        t0 = time.perf_counter()
        samples = self._generate(ids, sampling)
        dt = time.perf_counter() - t0
        batch = RolloutBatch(samples=samples, n=sampling.n, seconds=dt,
                             prompt_tokens=sum(len(s.prompt_ids) for s in samples),
                             completion_tokens=sum(len(s.completion_ids) for s in samples))
        return batch

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> float:
        """Load new policy weights (HF parameter names); used by the next generate. Returns seconds."""
        t0 = time.perf_counter()
        self._update_weights(named_tensors)
        return time.perf_counter() - t0

    def release_memory(self) -> None:
        """Free what the engine holds on the accelerator between a generation and the next weight
        update (vLLM's sleep mode: KV cache and weights), so the policy update can use it; the next
        ``update_weights`` / ``generate`` take it back. Default: keep everything."""

    def close(self) -> None:
        """Release engine resources (processes, memory)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
