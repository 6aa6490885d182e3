"""Summarisation: ACLSum (embedded default) or Reddit TL;DR (the paper's data).

Sources (config ``source``):

- ``aclsum`` (embedded default): the ACLSum files shipped in the ``aclsum`` package
  (``dataset/{train,val,test}.jsonl``; read directly, the package itself is not imported).
  Source text = the paper's title and abstract (ACLSum's tokenised sentences joined and
  lightly detokenised). Reference = the paper's aspect summaries joined in the order of
  config ``aspects`` (default challenge, approach, outcome: one sentence each, ~66 words
  in all), i.e. a three-sentence TL;DR of the abstract. ACLSum's own train/val/test splits
  become train/validation/test (100/50/100 papers).
- ``tldr``: Reddit TL;DR as in the paper (post -> summary): the filtered TL;DR set of OpenAI's
  "Learning to summarize from human feedback" (columns ``id``, ``subreddit``, ``title``,
  ``post``, ``summary``; splits train/valid(ation)/test), read with ``datasets`` from local
  files (``paths``: OpenAI's ``train.jsonl``/``valid.jsonl``/``test.jsonl``, or parquet/csv) or
  a hub id (``hub_id``; nothing is downloaded on an offline machine). ``columns`` maps the
  fields: ``source``, ``reference`` (the human TL;DR), ``id``, and optionally ``title`` and
  ``subreddit``. The default, ``trl-lib/tldr``, is that set with the query already laid out
  (``prompt`` = ``SUBREDDIT: r/<subreddit>\n\nTITLE: <title>\n\nPOST: <post>\n\nTL;DR:``,
  ``completion`` = the summary); rows of OpenAI's own files (``post``/``summary``, no
  ``prompt`` column) are recognised and laid out the same way from ``subreddit``, ``title``
  and ``post``, so both give the same records. A trailing ``strip_source_suffix``
  (``TL;DR:``) is cut from the source. Without a validation
  split, ``validation_size`` records are carved out of train; without a test split,
  ``test_size`` records (when set) are carved out of train first. The paper's sizes (2,560
  train prompts, 256 evaluation prompts) are ``max_train_records`` / ``max_eval_records``,
  drawn with the task's ``seed`` (fixed, independent of the run seed), so every run trains and
  is evaluated on the same records.

The prompt is a system message (``system_prompt``, optional) and a user message made from
``prompt_template`` where ``{source}`` and ``{title}`` are replaced by the text.
``extra_info`` keeps ``source`` (the text to summarise, for judges), ``title``,
``source_words`` and ``reference_words``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from saw.tasks.base import (
    TASKS,
    Task,
    TaskDataError,
    assemble_task,
    carve_split,
    check_config_keys,
    load_source,
    load_split_rows,
    normalise_text,
    package_data_dir,
)

ACLSUM_ASPECTS = ("challenge", "approach", "outcome")
ACLSUM_SPLIT_FILES = {"train": "train.jsonl", "validation": "val.jsonl", "test": "test.jsonl"}
DEFAULT_REWARDS = [{"name": "summary_quality"}, {"name": "summary_conciseness"}]
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant who writes short, faithful summaries."
ACLSUM_PROMPT = (
    "Summarize the following paper abstract in two or three sentences: the problem it addresses, "
    "the approach, and the main result.\n\nTitle: {title}\n\nAbstract: {source}"
)
# the columns of OpenAI's filtered TL;DR release (besides id, subreddit, title)
OPENAI_TLDR_COLUMNS = {"source": "post", "reference": "summary"}
TLDR_PROMPT = "Summarize the following Reddit post in one or two sentences.\n\n{source}"
_ALLOWED_KEYS = frozenset({
    "aspects", "aclsum_data_dir", "paths", "hub_id", "hub_subset", "hub_splits", "columns",
    "strip_source_suffix", "prompt_template", "system_prompt", "test_size",
})


# ============================================================================ text helpers
_DETOK_RULES = [
    (re.compile(r"\s+([.,;:!?%)\]}])"), r"\1"),
    (re.compile(r"([(\[{$])\s+"), r"\1"),
    (re.compile(r"\s+(n't|'s|'re|'ve|'m|'ll|'d)\b", re.IGNORECASE), r"\1"),
    (re.compile(r"``\s*|\s*''"), '"'),
    (re.compile(r"\s{2,}"), " "),
]


def detokenize(text: str) -> str:
    """Undo PTB-style token spacing (``word , ( a ) do n't`` -> ``word, (a) don't``)."""
    out = " ".join(str(text).split())
    for pattern, repl in _DETOK_RULES:
        out = pattern.sub(repl, out)
    return out.strip()


def fill_template(template: str, source: str, title: str = "") -> str:
    """Replace ``{source}`` and ``{title}`` (plain replacement: other braces are left alone)."""
    if "{source}" not in template:
        raise ValueError(f"prompt_template must contain '{{source}}', got {template!r}")
    return template.replace("{title}", title).replace("{source}", source)


def make_summary_record(record_id: str, source: str, reference: str, *, title: str, template: str,
                        system_prompt: str | None, data_source: str, split: str) -> dict:
    """A summarisation record (see saw.tasks.base) from its texts."""
    prompt = []
    if system_prompt:
        prompt.append({"role": "system", "content": system_prompt})
    prompt.append({"role": "user", "content": fill_template(template, source, title)})
    return {
        "id": record_id,
        "prompt": prompt,
        "ground_truth": reference,
        "data_source": data_source,
        "extra_info": {
            "source": source, "title": title, "split": split,
            "source_words": len(source.split()), "reference_words": len(reference.split()),
        },
    }


# ============================================================================ ACLSum
def aclsum_data_dir(override: str | Path | None = None) -> Path:
    """The ``dataset`` folder of the installed ``aclsum`` package (found without importing it)."""
    return package_data_dir("aclsum", "dataset", "aclsum_data_dir", override)


def aclsum_row_to_record(row: Any, split: str, aspects: tuple[str, ...], template: str,
                         system_prompt: str | None, where: str) -> dict:
    """One ACLSum document -> a record: abstract (source) -> joined aspect summaries (reference)."""
    if not isinstance(row, Mapping):
        raise TaskDataError(f"{where}: row is not a JSON object")
    doc_id = row.get("id")
    sentences = row.get("sentences")
    summaries = row.get("summary")
    if not isinstance(doc_id, str) or not doc_id:
        raise TaskDataError(f"{where}: missing 'id'")
    if not isinstance(sentences, Mapping) or not isinstance(sentences.get("abstract"), list) or not sentences["abstract"]:
        raise TaskDataError(f"{where}: missing or empty 'sentences.abstract'")
    if not isinstance(summaries, Mapping):
        raise TaskDataError(f"{where}: missing 'summary'")
    parts = []
    for aspect in aspects:
        text = summaries.get(aspect)
        if not isinstance(text, str) or not text.strip():
            raise TaskDataError(f"{where}: missing or empty 'summary.{aspect}'")
        parts.append(" ".join(text.split()))
    source = detokenize(" ".join(sentences["abstract"]))
    title = " ".join(str(row.get("title", "")).split())
    return make_summary_record(doc_id, source, " ".join(parts), title=title, template=template,
                               system_prompt=system_prompt, data_source="aclsum", split=split)


def load_aclsum_split(split: str, cfg: Mapping[str, Any]) -> list[dict]:
    """Records of one ACLSum split ("train", "validation", "test")."""
    path = aclsum_data_dir(cfg.get("aclsum_data_dir")) / ACLSUM_SPLIT_FILES[split]
    if not path.is_file():
        raise TaskDataError(f"ACLSum file {str(path)!r} does not exist")
    aspects = tuple(cfg.get("aspects") or ACLSUM_ASPECTS)
    bad = [a for a in aspects if a not in ACLSUM_ASPECTS]
    if bad:
        raise ValueError(f"summarize task: unknown ACLSum aspect(s) {bad}; valid: {', '.join(ACLSUM_ASPECTS)}")
    template = cfg.get("prompt_template") or ACLSUM_PROMPT
    system_prompt = cfg.get("system_prompt", DEFAULT_SYSTEM_PROMPT)
    records = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskDataError(f"{where}: not valid JSON ({exc})") from exc
            records.append(aclsum_row_to_record(row, split, aspects, template, system_prompt, where))
    if not records:
        raise TaskDataError(f"ACLSum file {str(path)!r} holds no documents")
    return records


def _build_aclsum(cfg: Mapping[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
    return tuple(load_aclsum_split(s, cfg) for s in ("train", "validation", "test"))  # type: ignore[return-value]


# ============================================================================ Reddit TL;DR
def tldr_row_to_record(row: Any, split: str, index: int, cfg: Mapping[str, Any], where: str) -> dict:
    """One TL;DR row -> a record: post (source) -> human summary (reference).

    With ``columns.title`` / ``columns.subreddit`` set and present in the row, the source is
    OpenAI's query layout ``SUBREDDIT: r/<subreddit>\n\nTITLE: <title>\n\nPOST: <post>``."""
    columns = {"source": "prompt", "reference": "completion", "id": "id", **(cfg.get("columns") or {})}
    if not isinstance(row, Mapping):
        raise TaskDataError(f"{where}: row is not a mapping")
    if columns["source"] not in row and all(k in row for k in OPENAI_TLDR_COLUMNS.values()):
        columns.update(OPENAI_TLDR_COLUMNS)  # OpenAI's release (post/summary) given to a prompt/completion config
    source, reference = row.get(columns["source"]), row.get(columns["reference"])
    for field, value in (("source", source), ("reference", reference)):
        if not isinstance(value, str) or not value.strip():
            raise TaskDataError(f"{where}: missing or empty column {columns[field]!r} ({field} text); "
                                f"map the right column with task.columns.{field}=<name>")
    source = source.strip()
    suffix = cfg.get("strip_source_suffix", "TL;DR:")
    if suffix and source.endswith(suffix):
        source = source[: -len(suffix)].rstrip()
    title = row.get(columns["title"]) if columns.get("title") else None
    subreddit = row.get(columns["subreddit"]) if columns.get("subreddit") else None
    if isinstance(title, str) or isinstance(subreddit, str):
        header = []
        if isinstance(subreddit, str) and subreddit.strip():
            name = subreddit.strip()
            header.append(f"SUBREDDIT: {name if name.startswith('r/') else 'r/' + name}")
        if isinstance(title, str) and title.strip():
            header.append(f"TITLE: {title.strip()}")
        source = "\n\n".join(header + [f"POST: {source}"])
    row_id = row.get(columns["id"]) if columns.get("id") else None
    record_id = str(row_id) if row_id not in (None, "") else f"tldr-{split}-{index}"
    return make_summary_record(
        record_id, source, " ".join(reference.split()),
        title=title.strip() if isinstance(title, str) else "",
        template=cfg.get("prompt_template") or TLDR_PROMPT,
        system_prompt=cfg.get("system_prompt", DEFAULT_SYSTEM_PROMPT), data_source="tldr", split=split,
    )


def _load_tldr_split(cfg: Mapping[str, Any], split: str) -> list[dict]:
    rows, origin = load_split_rows(cfg, split, "summarize")
    return [tldr_row_to_record(row, split, i, cfg, f"{origin}: row {i}") for i, row in enumerate(rows)]


def _build_tldr(cfg: Mapping[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
    paths = cfg.get("paths") or {}
    if not cfg.get("hub_id") and (not isinstance(paths, Mapping) or paths.get("train") in (None, "???", "")):
        raise ValueError("summarize task (source tldr): set task.paths.train (local file) or task.hub_id")
    train, validation, test = (_load_tldr_split(cfg, s) for s in ("train", "validation", "test"))
    test_size = int(cfg.get("test_size") or 0)
    if not test and test_size > 0:  # a release with one file: hold the evaluation records out of it
        train, test = carve_split(train, test_size, int(cfg.get("seed", 0)), source_key)
    return train, validation, test


_SOURCES = {"aclsum": _build_aclsum, "tldr": _build_tldr}


def source_key(record: Mapping[str, Any]) -> str:
    """Normalised source text: two records with the same key summarise the same text."""
    return normalise_text(record["extra_info"].get("source", ""))


@TASKS.register("summarize", aliases=("summarization", "summarisation", "summarise"))
def build_summarize_task(cfg: Mapping[str, Any]) -> Task:
    """Build the summarisation task from a plain config dict (see conf/task/summarize*.yaml)."""
    check_config_keys(cfg, _ALLOWED_KEYS, "summarize task")
    train, validation, test = load_source(cfg, _SOURCES, "aclsum", "summarize")
    if not train:
        raise TaskDataError(f"summarize task (source {cfg.get('source', 'aclsum')}): no training records")
    test_keys = {source_key(r) for r in test}
    train = [r for r in train if source_key(r) not in test_keys]
    return assemble_task("summarize", cfg, train, validation, test, source_key, DEFAULT_REWARDS)
