"""Tokenizer helpers shared by tasks and rollout engines (duck-typed: no transformers import)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def chat_template_ids(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """Token ids of ``messages`` rendered by the tokenizer's chat template with the generation prompt.

    Handles both return types of ``apply_chat_template(tokenize=True)``: a list of ids
    (transformers 4) and a ``BatchEncoding`` (transformers 5).
    """
    out = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    if isinstance(out, Mapping) or hasattr(out, "keys"):
        out = out["input_ids"]
    if hasattr(out, "tolist"):
        out = out.tolist()
    if out and isinstance(out[0], (list, tuple)):  # batched form of a single conversation
        if len(out) != 1:
            raise ValueError(f"expected one tokenised conversation, got {len(out)}")
        out = out[0]
    return [int(t) for t in out]
