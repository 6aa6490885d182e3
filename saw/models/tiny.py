"""Tiny random models for tests: a Llama-architecture causal LM (the architecture of SmolLM2)
with a byte-level BPE tokenizer trained locally by ``tokenizers`` and a ChatML chat template.
Builds in a few seconds, needs no network, loads in transformers and vLLM alike.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_WORDS = ("the a tool call function name parameters think response summary abstract paper "
          "model reward weather city unit celsius get set search query result value true false "
          "json list number string of to in and is for with on").split()


def _corpus(n_lines: int = 2000, seed: int = 0) -> list[str]:
    rnd = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rnd.choice(_WORDS) for _ in range(rnd.randint(3, 16))]
        lines.append(" ".join(words))
        lines.append(json.dumps({"name": rnd.choice(_WORDS), "parameters": {rnd.choice(_WORDS): rnd.randint(0, 99)}}))
        lines.append("<think> " + " ".join(words[:4]) + " </think>\n<tool_call>\n</tool_call>\n<response> ok </response>")
    return lines


def build_tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE PreTrainedTokenizerFast with ChatML special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # heavy: only when a model is built
    from transformers import PreTrainedTokenizerFast  # heavy: only when a model is built

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | os.PathLike, *, seed: int = 0, hidden_size: int = 128,
                     num_layers: int = 2, vocab_size: int = 512, max_position_embeddings: int = 1024,
                     dtype: str = "float32") -> Path:
    """Write a tiny random LlamaForCausalLM + tokenizer to ``out_dir`` (atomically). Returns the path."""
    import torch  # heavy: only when a model is built
    from transformers import LlamaConfig, LlamaForCausalLM  # heavy: only when a model is built

    out = Path(out_dir)
    if (out / "config.json").exists() and (out / "tokenizer.json").exists():
        return out
    tokenizer = build_tiny_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers, num_attention_heads=2, num_key_value_heads=1, head_dim=hidden_size // 2,
        max_position_embeddings=max_position_embeddings, rms_norm_eps=1e-5, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, torch_dtype=dtype,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, out)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return out
