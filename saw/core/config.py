"""Config helpers shared by every package (no torch at import).

``to_plain`` turns a Hydra/OmegaConf node or any mapping into a plain, resolved ``dict``;
``dtype_name`` maps the dtype spellings configs use (bf16, fp16, fp32, ...) to torch's names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
DTYPES = ("bfloat16", "float16", "float32")


def to_plain(cfg: Any, *, what: str = "config", allow_none: bool = False) -> dict[str, Any]:
    """A DictConfig or mapping -> a plain, resolved ``dict`` (None -> {} when ``allow_none``).

    Raises TypeError naming ``what`` for anything else.
    """
    if cfg is None and allow_none:
        return {}
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(cfg).__name__}")
    return dict(cfg)


def to_plain_value(value: Any) -> Any:
    """Like ``to_plain`` for any node (lists too); plain Python values pass through unchanged."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def dtype_name(name: Any) -> str:
    """Canonical torch dtype name ("bfloat16", "float16" or "float32") for a config spelling."""
    key = DTYPE_ALIASES.get(str(name).lower(), str(name).lower())
    if key not in DTYPES:
        raise ValueError(f"unsupported dtype {name!r}; use one of {', '.join(DTYPES)} "
                         f"(or {', '.join(DTYPE_ALIASES)})")
    return key
