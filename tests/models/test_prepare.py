"""Model preparation: sources, idempotence, atomic replacement, and the real embedded SmolLM2."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from saw.models import prepare as models
from saw.models.prepare import MARKER, find_smollm2_gguf, is_prepared, prepare_model

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_hf_source_returned_as_is(tmp_path):
    assert prepare_model({"source": "hf", "path": "Qwen/Qwen2.5-1.5B-Instruct"}) == "Qwen/Qwen2.5-1.5B-Instruct"
    assert prepare_model({"source": "hf", "path": str(tmp_path)}) == tmp_path
    with pytest.raises(ValueError, match="set `path`"):
        prepare_model({"source": "hf"})


def test_unknown_source_lists_valid():
    with pytest.raises(ValueError, match="unknown source 'gguf'; valid: embedded_smollm2, tiny, hf"):
        prepare_model({"source": "gguf", "path": "x"})


def test_tiny_source_builds_loadable_model(tmp_path):
    from transformers import AutoConfig

    out = prepare_model({"source": "tiny", "path": str(tmp_path / "tiny"), "dtype": "float32"})
    assert out == tmp_path / "tiny"
    assert AutoConfig.from_pretrained(str(out)).model_type == "llama"


def test_prepared_folder_is_returned_without_rebuilding(tmp_path, monkeypatch):
    out = tmp_path / "SmolLM2"
    out.mkdir()
    (out / MARKER).write_text("{}")

    def boom(*a, **k):
        raise AssertionError("must not rebuild a prepared folder")

    monkeypatch.setattr(models, "find_smollm2_gguf", boom)
    start = time.perf_counter()
    assert prepare_model({"source": "embedded_smollm2", "path": str(out)}) == out
    assert time.perf_counter() - start < 0.5


def test_incomplete_folder_is_replaced_atomically(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "half-written.bin").write_text("x")  # no marker: an interrupted earlier attempt
    new = tmp_path / ".model.tmp-1"
    new.mkdir()
    (new / MARKER).write_text("{}")
    models._move_into_place(new, out)
    assert is_prepared(out) and not (out / "half-written.bin").exists() and not new.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_missing_gguf_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.gguf"):
        models.build_smollm2_from_gguf(tmp_path / "out", gguf_path=tmp_path / "nowhere.gguf")
    assert not (tmp_path / "out").exists()


def test_gguf_file_is_found():
    path = find_smollm2_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_unsupported_dtype():
    with pytest.raises(ValueError, match="unsupported dtype 'int8'"):
        models._torch_dtype("int8")


@pytest.mark.slow
def test_embedded_smollm2_prepares_loads_and_generates():
    """Prepares the real model into the configured cache (once; ~25 s) and checks it."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "smollm2-135m.yaml"), resolve=True)
    path = prepare_model(cfg)
    assert is_prepared(path)
    assert json.loads((path / MARKER).read_text())["dtype"] == "bfloat16"
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)

    # weights equal an independent de-quantisation of the GGUF tensors by the gguf package
    import gguf
    from gguf.quants import dequantize

    tensors = {t.name: t for t in gguf.GGUFReader(str(find_smollm2_gguf())).tensors}
    for gguf_name, hf_param in [("token_embd.weight", model.model.embed_tokens.weight),
                                ("blk.0.ffn_down.weight", model.model.layers[0].mlp.down_proj.weight),
                                ("blk.3.attn_norm.weight", model.model.layers[3].input_layernorm.weight)]:
        t = tensors[gguf_name]
        ref = dequantize(t.data, t.tensor_type).reshape(tuple(hf_param.shape))
        assert np.allclose(hf_param.detach().numpy(), ref, rtol=2 ** -8, atol=1e-6), gguf_name

    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}],
                                        add_generation_prompt=True, tokenize=True)["input_ids"]
    out = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)
    text = tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
    assert len(out[0]) > len(ids) and "4" in text
