"""What the machine computes fast. bf16 on a CPU without native bf16 instructions (AVX512-BF16 or
AMX) is emulated and ~20x slower than fp32 (measured: SmolLM2 backward, AVX2-only EPYC), so
``precision: auto`` and rollout ``dtype: auto`` pick fp32 there."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def fast_bf16() -> bool:
    """True on a CUDA GPU with bf16 support or a CPU with AVX512-BF16 / AMX."""
    import torch  # only when asked: saw.core stays importable without torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if callable(check))
