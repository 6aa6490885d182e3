"""BFCL v4 scoring with the ``bfcl-eval`` package's own AST checker, and BFCL's aggregation.

Pipeline: a completion in the ToolRL format (``<think> ... </think>\\n<tool_call>\\n{json}\\n
...</tool_call>``) -> :func:`decode_tool_calls` -> BFCL's ``model_output`` structure (a list of
``{function_name: {param: value}}`` dicts) -> ``bfcl_eval.eval_checker.ast_eval.ast_checker``
with the entry's function docs and possible answers -> valid / invalid per sample ->
per-category accuracy -> Non-Live and Live accuracy as BFCL computes them.

Importing the checker. ``ast_checker`` imports ``bfcl_eval.constants.model_config``, which
imports every model handler of the leaderboard (anthropic, openai, tree_sitter, ...); bfcl-eval is
installed with --no-deps, so that import fails. The checker reads exactly one thing from that
module: ``MODEL_CONFIG_MAPPING[model_name].underscore_to_dot`` (in ``convert_func_name``, only for
function names with a dot: True means the model was shown ``a_b`` for ``a.b``). Our prompts show
the original names, so the checker is called with the model name :data:`CHECKER_MODEL_NAME`,
whose entry says ``underscore_to_dot=False``. :func:`load_ast_checker` puts a stand-in module with
that single entry into ``sys.modules`` under ``bfcl_eval.constants.model_config`` while it imports
``ast_checker``, then removes it again (nothing else sees the stand-in). When the real module is
already imported, it is used and the entry is added to its mapping. The checker's rules are not
copied or changed; only this one import is replaced.

Aggregation (``bfcl_eval/eval_checker/eval_runner_helper.py``, ``generate_leaderboard_csv``):

- Non-Live = unweighted mean of the AST groups simple, multiple, parallel, parallel_multiple,
  where BFCL's "simple" is itself the unweighted mean of simple_python, simple_java and
  simple_javascript. Only the Python categories are run here (our output format is JSON, BFCL's
  Java/JS checkers expect Java/JS literals), so simple = simple_python: a deviation from the
  leaderboard's Non-Live, stated wherever the number is reported.
- Live = mean of live_simple, live_multiple, live_parallel, live_parallel_multiple weighted by
  the number of entries of each category (``calculate_weighted_accuracy``). BFCL always scores
  whole categories; when fewer records are evaluated (``max_records``) the weights stay the full
  category sizes (:func:`bfcl_category_sizes`), so a subsample estimates the same quantity.
- Multi-Turn = unweighted mean of the four multi_turn categories. It needs the package's
  multi-turn executors and a multi-step dialogue loop, which this harness does not run: it is
  reported as ``None`` ("not run"), never estimated.
- Overall (the SAW paper's) = mean of Non-Live, Live and Multi-Turn; ``None`` while Multi-Turn
  is not run. ``overall_without_multi_turn`` = mean of Non-Live and Live is reported beside it,
  clearly named.

A missing category makes its group ``None`` (BFCL would count it as 0 and print N/A).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from rewards.text import strip_chat_markup

NON_LIVE_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")
LIVE_CATEGORIES = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
MULTI_TURN_CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                         "multi_turn_long_context")
SUPPORTED_CATEGORIES = NON_LIVE_CATEGORIES + LIVE_CATEGORIES
# BFCL's "simple" group: the three languages' simple categories (only Python is run here)
SIMPLE_LANGUAGE_CATEGORIES = ("simple_python", "simple_java", "simple_javascript")

# model name handed to the checker: no underscore (the checker maps "_" to "/" before the lookup)
CHECKER_MODEL_NAME = "saw-policy"
_AST_CHECKER_MODULE = "bfcl_eval.eval_checker.ast_eval.ast_checker"
_MODEL_CONFIG_MODULE = "bfcl_eval.constants.model_config"


# ----------------------------------------------------------------------------- the checker
def _checker_model_entry() -> types.SimpleNamespace:
    """What the checker reads of a model config: ``underscore_to_dot`` (False: dots kept)."""
    return types.SimpleNamespace(model_name=CHECKER_MODEL_NAME, underscore_to_dot=False)


def load_ast_checker() -> types.ModuleType:
    """The ``bfcl_eval...ast_checker`` module, imported without the leaderboard's model handlers.

    See the module docstring. Raises ImportError with the install command when bfcl-eval is
    missing.
    """
    module = sys.modules.get(_AST_CHECKER_MODULE)
    if module is None:
        if importlib.util.find_spec("bfcl_eval") is None:
            raise ImportError("package 'bfcl-eval' is not installed; install it with "
                              "`pip install --no-deps -r requirements/nodeps.txt`")
        installed_stand_in = _MODEL_CONFIG_MODULE not in sys.modules
        if installed_stand_in:
            stand_in = types.ModuleType(_MODEL_CONFIG_MODULE, "Stand-in for bfcl_eval.constants.model_config "
                                        "(eval.bfcl.load_ast_checker): only MODEL_CONFIG_MAPPING.")
            stand_in.MODEL_CONFIG_MAPPING = {CHECKER_MODEL_NAME: _checker_model_entry()}
            sys.modules[_MODEL_CONFIG_MODULE] = stand_in
        try:
            module = importlib.import_module(_AST_CHECKER_MODULE)
        finally:
            if installed_stand_in:
                sys.modules.pop(_MODEL_CONFIG_MODULE, None)
                constants = sys.modules.get("bfcl_eval.constants")
                if constants is not None and getattr(constants, "model_config", None) is stand_in:
                    delattr(constants, "model_config")
    mapping = module.MODEL_CONFIG_MAPPING
    if CHECKER_MODEL_NAME not in mapping:  # the real module was imported before us
        mapping[CHECKER_MODEL_NAME] = _checker_model_entry()
    return module


def _python_language():
    from bfcl_eval.constants.enums import Language

    return Language.PYTHON


# ----------------------------------------------------------------------------- decoding
class ToolCallDecodeError(ValueError):
    """A ``<tool_call>`` block whose lines are not ``{"name": str, "parameters": {...}}`` objects."""


def _tool_call_blocks(text: str) -> list[str]:
    """Contents of every ``<tool_call>`` block, in order; a last block without its closing tag
    runs to the end of the text."""
    blocks, pos = [], 0
    while True:
        start = text.find("<tool_call>", pos)
        if start < 0:
            return blocks
        start += len("<tool_call>")
        end = text.find("</tool_call>", start)
        if end < 0:
            blocks.append(text[start:])
            return blocks
        blocks.append(text[start:end])
        pos = end + len("</tool_call>")


def decode_tool_calls(text: str) -> list[dict[str, dict[str, Any]]]:
    """ToolRL-format completion -> BFCL ``model_output``: ``[{name: {param: value}}, ...]``.

    Rules (the evaluation is lenient about layout; the format rate measures strictness):

    1. Chat markup is stripped (:func:`rewards.text.strip_chat_markup`).
    2. Every ``<tool_call>`` block is read, in order (the ToolRL format has one; Qwen's native
       format writes one block per call); a last block without ``</tool_call>`` runs to the end.
    3. Each non-blank line of a block is one JSON object with a string ``"name"`` and an object
       ``"parameters"`` (``"arguments"`` is accepted when ``"parameters"`` is absent).
    4. No block at all -> ``[]`` (no call; BFCL's checker then reports a wrong count).

    Raises ToolCallDecodeError when a line breaks rule 3 (BFCL's "decoder failed": invalid).
    """
    calls: list[dict[str, dict[str, Any]]] = []
    for block in _tool_call_blocks(strip_chat_markup(text)):
        for line in block.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise ToolCallDecodeError(f"tool-call line is not valid JSON: {line[:200]!r} ({exc})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                raise ToolCallDecodeError(f'tool-call line is not an object with a string "name": {line[:200]!r}')
            params = obj["parameters"] if "parameters" in obj else obj.get("arguments")
            if not isinstance(params, dict):
                raise ToolCallDecodeError(f'tool call {obj["name"]!r} has no "parameters" object: {line[:200]!r}')
            calls.append({obj["name"]: params})
    return calls


# ----------------------------------------------------------------------------- checking
@dataclass
class CheckResult:
    """Verdict for one completion: ``valid`` and, when invalid, BFCL's error type and messages."""

    valid: bool
    error_type: str | None = None
    errors: list[Any] = field(default_factory=list)
    decoded: list[dict] | None = None


def check_completion(completion: str, functions: Sequence[Mapping[str, Any]],
                     possible_answer: Sequence[Mapping[str, Any]], category: str) -> CheckResult:
    """Score one completion with BFCL's ``ast_checker``.

    Args:
        completion: model text in the ToolRL format.
        functions: the entry's function docs (BFCL ``function``; record ``extra_info["functions"]``).
        possible_answer: BFCL ``ground_truth`` (a list of {function: {param: [acceptable values]}}).
        category: BFCL category, one of :data:`SUPPORTED_CATEGORIES`.

    Undecodable text is invalid with error type ``ast_decoder:decoder_failed`` (BFCL's own type
    for that case). An exception inside the checker (it assumes well-typed inputs in a few
    places) makes the sample invalid with error type ``checker_exception`` instead of stopping
    the evaluation.
    """
    if category not in SUPPORTED_CATEGORIES:
        raise ValueError(f"BFCL category {category!r} is not scored by this harness; "
                         f"valid: {', '.join(SUPPORTED_CATEGORIES)}")
    checker = load_ast_checker()
    try:
        decoded = decode_tool_calls(completion)
    except ToolCallDecodeError as exc:
        return CheckResult(False, "ast_decoder:decoder_failed", [str(exc)])
    try:
        out = checker.ast_checker(list(functions), decoded, list(possible_answer), _python_language(),
                                  category, CHECKER_MODEL_NAME)
    except Exception as exc:  # noqa: BLE001 - a model output the checker cannot digest is wrong
        return CheckResult(False, "checker_exception", [f"{type(exc).__name__}: {exc}"], decoded)
    if out.get("valid"):
        return CheckResult(True, None, [], decoded)
    return CheckResult(False, out.get("error_type"), list(out.get("error") or []), decoded)


def record_bfcl_fields(record: Mapping[str, Any]) -> tuple[str, list, list]:
    """(category, function docs, possible answer) of a BFCL record (see saw.tasks.toolcall)."""
    extra = record.get("extra_info") if isinstance(record, Mapping) else None
    if not isinstance(extra, Mapping) or not all(k in extra for k in ("category", "functions", "possible_answer")):
        raise ValueError(
            f"record {record.get('id') if isinstance(record, Mapping) else record!r} is not a BFCL record: "
            "extra_info needs 'category', 'functions' and 'possible_answer' (records built by "
            "saw.tasks.toolcall from BFCL v4 carry them)")
    return str(extra["category"]), list(extra["functions"]), list(extra["possible_answer"])


def check_records(completions: Sequence[str], records: Sequence[Mapping[str, Any]]) -> list[CheckResult]:
    """:func:`check_completion` of ``completions[i]`` against BFCL record ``records[i]``."""
    if len(completions) != len(records):
        raise ValueError(f"{len(completions)} completions for {len(records)} records")
    out = []
    for text, record in zip(completions, records):
        category, functions, answer = record_bfcl_fields(record)
        out.append(check_completion(text, functions, answer, category))
    return out


# ----------------------------------------------------------------------------- aggregation
def bfcl_category_sizes(categories: Iterable[str] = SUPPORTED_CATEGORIES,
                        data_dir: str | Path | None = None) -> dict[str, int]:
    """Number of entries of each BFCL v4 category, counted in the package's data files."""
    from saw.tasks.toolcall import bfcl_data_dir

    root = bfcl_data_dir(data_dir)
    sizes = {}
    for cat in categories:
        path = root / f"BFCL_v4_{cat}.json"
        if not path.is_file():
            raise FileNotFoundError(f"BFCL file {path} does not exist (unknown category {cat!r}?)")
        with path.open(encoding="utf-8") as fh:
            sizes[cat] = sum(1 for line in fh if line.strip())
    return sizes


def non_live_accuracy(accuracy: Mapping[str, float]) -> float | None:
    """BFCL's Non-Live (AST) accuracy from per-category accuracies (fractions).

    mean(simple, multiple, parallel, parallel_multiple) with simple = mean of the simple_*
    categories present (simple_python required). None if a group is missing.
    """
    simple = [accuracy[c] for c in SIMPLE_LANGUAGE_CATEGORIES if c in accuracy]
    if "simple_python" not in accuracy or any(c not in accuracy for c in NON_LIVE_CATEGORIES[1:]):
        return None
    groups = [sum(simple) / len(simple)] + [accuracy[c] for c in NON_LIVE_CATEGORIES[1:]]
    return sum(groups) / len(groups)


def live_accuracy(accuracy: Mapping[str, float], sizes: Mapping[str, int]) -> float | None:
    """BFCL's Live (AST) accuracy: per-category accuracies weighted by category sizes.

    None if a live category is missing from ``accuracy``.
    """
    if any(c not in accuracy for c in LIVE_CATEGORIES):
        return None
    missing = [c for c in LIVE_CATEGORIES if c not in sizes]
    if missing:
        raise ValueError(f"live_accuracy needs the sizes of {missing}")
    total = sum(sizes[c] for c in LIVE_CATEGORIES)
    return sum(accuracy[c] * sizes[c] for c in LIVE_CATEGORIES) / total


def overall_accuracy(non_live: float | None, live: float | None, multi_turn: float | None) -> float | None:
    """The SAW paper's Overall: mean of Non-Live, Live and Multi-Turn (None if one is missing)."""
    parts = (non_live, live, multi_turn)
    if any(p is None for p in parts):
        return None
    return sum(parts) / 3.0


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _std(xs: Sequence[float | None]) -> float | None:
    """Sample standard deviation (ddof=1); 0 for one value; None if any value is None."""
    if not xs or any(x is None for x in xs):
        return None
    if len(xs) == 1:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _mean_or_none(xs: Sequence[float | None]) -> float | None:
    return None if not xs or any(x is None for x in xs) else _mean(xs)


def aggregate_runs(valid: Mapping[str, Sequence[Sequence[bool]]], sizes: Mapping[str, int],
                   formatted: Sequence[float] | None = None) -> dict[str, Any]:
    """Metrics of k runs over the evaluated categories.

    Args:
        valid: category -> per-run lists of per-record verdicts, shape [k][n_category]
            (run r holds the r-th sample of every record).
        sizes: full BFCL category sizes (Live weights).
        formatted: optional per-sample format scores in {0, 1} over all samples (format rate).

    Returns ``{"metrics": {...}, "metrics_std": {...}, "runs": [per-run metrics],
    "per_category": {cat: {"accuracy", "accuracy_std", "accuracy_runs", "n"}}}``; accuracies are
    fractions in [0, 1]; std is over runs (ddof=1; 0 for a single run).
    """
    if not valid:
        raise ValueError("no categories to aggregate")
    ks = {len(v) for v in valid.values()}
    if len(ks) != 1 or 0 in ks:
        raise ValueError(f"every category needs the same number (>= 1) of runs, got {sorted(ks)}")
    k = ks.pop()
    runs = []
    for r in range(k):
        acc = {}
        for cat, per_run in valid.items():
            verdicts = list(per_run[r])
            if not verdicts:
                raise ValueError(f"category {cat!r} has no records in run {r}")
            acc[cat] = sum(bool(v) for v in verdicts) / len(verdicts)
        nl = non_live_accuracy(acc)
        lv = live_accuracy(acc, sizes) if all(c in acc for c in LIVE_CATEGORIES) else None
        runs.append({"non_live": nl, "live": lv, "multi_turn": None, "overall": overall_accuracy(nl, lv, None),
                     "overall_without_multi_turn": None if nl is None or lv is None else (nl + lv) / 2,
                     "per_category": acc})
    keys = ("non_live", "live", "multi_turn", "overall", "overall_without_multi_turn")
    metrics = {key: _mean_or_none([run[key] for run in runs]) for key in keys}
    metrics_std = {key: _std([run[key] for run in runs]) for key in keys}
    if formatted is not None:
        metrics["format_rate"] = _mean([float(f) for f in formatted]) if formatted else None
    per_category = {}
    for cat in valid:
        values = [run["per_category"][cat] for run in runs]
        per_category[cat] = {"accuracy": _mean(values), "accuracy_std": _std(values), "accuracy_runs": values,
                             "n": len(valid[cat][0])}
    return {"metrics": metrics, "metrics_std": metrics_std, "runs": runs, "per_category": per_category}
