"""vLLM worker extension: weight sync and sampling seeds, called through ``LLM.collective_rpc``.

vLLM mixes this class into its worker class when the engine is built with
``LLM(..., worker_extension_cls="rollout.vllm_worker.WeightSyncExtension")``, so ``self`` below is
the worker (``self.reload_weights`` is vLLM's ``Worker.reload_weights``, which reloads in place via
``vllm.model_executor.model_loader.reload``). Plain ``model.load_weights`` fails on CPU after the
first load; ``reload_weights`` works on CPU and GPU.

On CPU, tied LM heads need their packed GEMM weight rebuilt after a reload (see
``_rollout_refresh_cpu_gemm``).

Protocol of one sync: ``rollout_begin_weight_update()``, then ``rollout_stage_weights(payload)`` for
each bucket of tensors (``payload`` = ``safetensors.torch.save`` bytes of HF-named tensors), or
``rollout_stage_tensors(dict)`` when the worker runs in the caller's process, then
``rollout_commit_weight_update()``, which loads everything staged in one ``reload_weights`` call
(vLLM's layerwise reload needs every tensor of a layer in the same call).
"""

from __future__ import annotations

import torch


class WeightSyncExtension:
    """Methods added to the vLLM worker (names prefixed to avoid clashes with vLLM's own)."""

    def rollout_begin_weight_update(self) -> None:
        self._rollout_staged = {}

    def rollout_stage_weights(self, payload: bytes) -> int:
        """Decode one bucket of tensors and keep it until commit. Returns tensors staged so far."""
        from safetensors.torch import load  # inside the vLLM worker process

        staged = getattr(self, "_rollout_staged", None)
        if staged is None:
            raise RuntimeError("rollout_stage_weights called before rollout_begin_weight_update")
        staged.update(load(payload))
        return len(staged)

    def rollout_stage_tensors(self, tensors: dict) -> int:
        """Keep a bucket of HF-named tensors until commit (the worker runs in the caller's process:
        the tensors arrive as they are, no copy). Returns tensors staged so far."""
        staged = getattr(self, "_rollout_staged", None)
        if staged is None:
            raise RuntimeError("rollout_stage_tensors called before rollout_begin_weight_update")
        staged.update(tensors)
        return len(staged)

    def rollout_commit_weight_update(self) -> int:
        """Reload all staged tensors into the model in place. Returns the number loaded."""
        staged = getattr(self, "_rollout_staged", None) or {}
        self._rollout_staged = None
        if staged:
            self.reload_weights(weights_iterator=iter(list(staged.items())), is_checkpoint_format=True)
            self._rollout_refresh_cpu_gemm()
        return len(staged)

    def _rollout_refresh_cpu_gemm(self) -> None:
        """Re-pack the CPU GEMM weights of layers that keep their weight (embeddings, LM head).

        On CPU, vLLM packs each linear weight into a kernel-specific copy at load time
        (``dispatch_cpu_unquantized_gemm``). ``reload_weights`` re-packs every layer it loads, but a
        tied LM head receives no tensor of its own: its weight is updated through the shared
        embedding, while its packed copy keeps the old values. Re-packing fixes that.
        """
        from vllm.platforms import current_platform  # inside the vLLM worker process

        if not current_platform.is_cpu():
            return
        from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm  # inside the vLLM worker process

        for module in self.model_runner.get_model().modules():
            weight = getattr(module, "weight", None)
            if (hasattr(module, "cpu_linear") and isinstance(weight, torch.Tensor) and weight.ndim == 2
                    and weight.numel() > 0 and not weight.is_meta):
                dispatch_cpu_unquantized_gemm(module, remove_weight=False)

    def rollout_set_seed(self, seed: int) -> None:
        """Seed the worker's torch RNG (vLLM's samplers draw from it when requests carry no seed)."""
        torch.manual_seed(int(seed))
