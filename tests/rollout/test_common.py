"""Shared rollout conventions: completion finishing (EOS, stop strings, length), logit filtering,
seeds, settings and the engine registry / config files. No engine is started here."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollout import ENGINES, SamplingConfig, build_engine
from rollout.common import derive_call_seed, finish_completion, length_caps, settings_from_mapping
from rollout.hf_engine import HFSettings, filter_logits
from rollout.vllm_engine import VLLMSettings

CONF = Path(__file__).resolve().parents[2] / "conf" / "rollout"


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def ids_of(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# ------------------------------------------------------------------ filter_logits (hand values)
def test_filter_logits_hand_computed():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    probs = [math.exp(x) for x in (2.0, 1.0, 0.0, -1.0)]
    z = sum(probs)
    # greedy: raw log-softmax
    assert filter_logits(logits, 0.0, 0, 1.0).log_softmax(-1)[0, 0].item() == pytest.approx(math.log(probs[0] / z))
    # top_p 0.8: p = [.644, .237, .087, .032]; mass before token 2 is .881 >= .8 -> tokens 0, 1 kept
    lp = filter_logits(logits, 1.0, 0, 0.8).log_softmax(-1)[0]
    assert lp[0].item() == pytest.approx(math.log(probs[0] / (probs[0] + probs[1])), abs=1e-6)
    assert torch.isinf(lp[2:]).all()
    # top_k 1: only the argmax, logprob 0
    lp = filter_logits(logits, 1.0, 1, 1.0).log_softmax(-1)[0]
    assert lp[0].item() == pytest.approx(0.0) and torch.isinf(lp[1:]).all()
    # temperature 2: logits halved
    lp = filter_logits(logits, 2.0, 0, 1.0).log_softmax(-1)[0]
    half = [math.exp(x / 2) for x in (2.0, 1.0, 0.0, -1.0)]
    assert lp[3].item() == pytest.approx(math.log(half[3] / sum(half)), abs=1e-6)
    # ties with the k-th largest logit are kept (vLLM's rule)
    tied = filter_logits(torch.tensor([[3.0, 1.0, 1.0, 0.0]]), 1.0, 2, 1.0)
    assert torch.isfinite(tied[0, :3]).all() and torch.isinf(tied[0, 3])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.2, 2.0), st.integers(-1, 12), st.floats(0.05, 1.0))
def test_filter_logits_matches_reference(kit, seed, temperature, top_k, top_p):
    logits = torch.randn(3, 16, generator=torch.Generator().manual_seed(seed)) * 3
    ours = filter_logits(logits, temperature, max(top_k, 0), top_p).log_softmax(-1).double()
    ref = kit.reference_logprobs(logits, temperature, max(top_k, 0), top_p)
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    finite = torch.isfinite(ref)
    assert torch.allclose(ours[finite], ref[finite], atol=1e-5)


# ------------------------------------------------------------------ finish_completion
def test_finish_completion_eos_is_kept_in_ids_not_in_text(tokenizer):
    eos = tokenizer.eos_token_id
    body = ids_of(tokenizer, "get weather")
    ids = body + [eos] + ids_of(tokenizer, " city")
    lps = [-0.5] * len(ids)
    out_ids, out_lp, text, reason = finish_completion(ids, lps, tokenizer=tokenizer, eos_ids=[eos], stop=[],
                                                      length_cap=50)
    assert out_ids == body + [eos] and len(out_lp) == len(body) + 1
    assert text == "get weather" and reason == "stop"


def test_finish_completion_stop_string(tokenizer):
    ids = ids_of(tokenizer, "the tool call result value")
    lps = [-float(i) for i in range(len(ids))]
    out_ids, out_lp, text, reason = finish_completion(ids, lps, tokenizer=tokenizer, eos_ids=[2],
                                                      stop=["result", "tool"], length_cap=50)
    assert text == "the " and reason == "stop"  # "tool" starts first
    k = next(k for k in range(1, len(ids) + 1) if "tool" in tokenizer.decode(ids[:k]))
    assert out_ids == ids[:k] and out_lp == lps[:k]


def test_finish_completion_stop_before_eos_and_length(tokenizer):
    eos = tokenizer.eos_token_id
    ids = ids_of(tokenizer, "a b c d") + [eos]
    out = finish_completion(ids, [0.0] * len(ids), tokenizer=tokenizer, eos_ids=[eos], stop=["c"], length_cap=50)
    assert out[2] == "a b " and eos not in out[0] and out[3] == "stop"
    body = ids_of(tokenizer, "a b c d")
    assert finish_completion(body, [0.0] * len(body), tokenizer=tokenizer, eos_ids=[eos], stop=[],
                             length_cap=len(body))[3] == "length"
    # neither EOS, stop nor cap: the engine's own reason is kept
    assert finish_completion(body, [0.0] * len(body), tokenizer=tokenizer, eos_ids=[eos], stop=[],
                             length_cap=99, fallback_reason="stop")[3] == "stop"
    with pytest.raises(RuntimeError, match="logprobs"):
        finish_completion(body, [0.0], tokenizer=tokenizer, eos_ids=[eos], stop=[], length_cap=9)


_WORDS = ["the", " tool", " call", " name", "{", "}", " 42", ":", "\n", " result", "é", " value"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=12), st.data())
def test_finish_completion_stop_is_the_shortest_prefix(tokenizer, words, data):
    """Reference: scan prefixes one by one for the first that contains a stop string."""
    text = "".join(words)
    ids = ids_of(tokenizer, text)
    start = data.draw(st.integers(0, len(text) - 1))
    stop = text[start:start + data.draw(st.integers(1, 4))]
    out_ids, out_lp, out_text, reason = finish_completion(ids, list(range(len(ids))), tokenizer=tokenizer,
                                                          eos_ids=[2], stop=[stop], length_cap=99)
    k = next(k for k in range(1, len(ids) + 1) if stop in tokenizer.decode(ids[:k], skip_special_tokens=True))
    assert out_ids == ids[:k] and out_lp == list(range(k))
    assert out_text == text[:text.find(stop)] and reason == "stop"


def test_length_caps_and_call_seeds():
    assert length_caps([[1] * 10, [1] * 250], 128, 256) == [128, 6]
    assert derive_call_seed(0, 3) == derive_call_seed(0, 3) != derive_call_seed(0, 4)
    assert derive_call_seed(1, 0) != derive_call_seed(0, 1)
    assert derive_call_seed(5, 9, explicit=77) == 77


# ------------------------------------------------------------------ settings, registry, configs
def test_unknown_engine_lists_the_valid_ones(tiny_model_dir):
    with pytest.raises(ValueError, match=r"unknown rollout engine 'sglang'; valid names: hf \(transformers generate.*\), vllm \(vLLM"):
        build_engine({"engine": "sglang"}, tiny_model_dir)
    assert set(ENGINES.names()) == {"hf", "vllm"} and "transformers" in ENGINES


def test_unknown_or_bad_settings_are_rejected(tiny_model_dir):
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['gpu_mem'\] for rollout engine 'vllm'; valid"):
        build_engine({"engine": "vllm", "gpu_mem": 0.5}, tiny_model_dir)
    with pytest.raises(ValueError, match="cpu_kvcache_gib must be a whole number"):
        settings_from_mapping(VLLMSettings, {"cpu_kvcache_gib": 0.5}, "vllm")
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        settings_from_mapping(VLLMSettings, {"gpu_memory_utilization": 1.5}, "vllm")
    with pytest.raises(ValueError, match="unsupported rollout dtype"):
        settings_from_mapping(HFSettings, {"dtype": "int8"}, "hf")
    with pytest.raises(ValueError, match="batch_size"):
        build_engine({"engine": "hf", "batch_size": 0}, tiny_model_dir)


@pytest.mark.parametrize("name,cls", [("vllm", VLLMSettings), ("hf", HFSettings)])
def test_config_files_parse(name, cls):
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"), resolve=True)
    assert cfg.pop("engine") == name
    settings = settings_from_mapping(cls, cfg, name)
    assert settings.max_model_len == 2048 and settings.seed == 0


def test_hf_engine_from_config_file(tiny_model_dir, kit):
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF / "hf.yaml")
    cfg.max_model_len = 128
    engine = build_engine(cfg, tiny_model_dir)
    assert type(engine).__name__ == "HFEngine" and engine.max_model_len == 128
    batch = engine.generate(kit.prompts[:1], SamplingConfig(temperature=0, max_new_tokens=3))
    assert len(batch.samples[0].completion_ids) == 3
