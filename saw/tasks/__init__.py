"""Tasks: datasets, prompt construction and reward config for tool calling and summarisation.

All task data is loaded here: ``toolcall`` (BFCL v4 embedded, ToolRL parquet) and
``summarize`` (ACLSum embedded, Reddit TL;DR). ``build_task(cfg)`` selects the builder by the
config's ``name`` (conf/task/*.yaml) and returns a :class:`Task`; see ``saw.tasks.base`` for
the record format.
"""

from __future__ import annotations

from typing import Any

from saw.tasks import summarize as _summarize  # noqa: F401  (registers "summarize")
from saw.tasks import toolcall as _toolcall  # noqa: F401  (registers "toolcall")
from saw.tasks.base import SPLITS, TASKS, Task, TaskDataError, to_plain_config


def build_task(cfg: Any) -> Task:
    """A Task from a task config (Hydra DictConfig or mapping with at least ``name``).

    Unknown task names raise ``ValueError`` listing the valid ones.
    """
    plain = to_plain_config(cfg)
    name = plain.get("name")
    if not name:
        raise ValueError(f"task config needs a 'name'; valid names: {', '.join(TASKS.names())}")
    builder = TASKS.get(name)
    return builder(plain)


__all__ = ["SPLITS", "TASKS", "Task", "TaskDataError", "build_task", "to_plain_config"]
