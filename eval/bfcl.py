"""BFCL v4 scoring with the ``bfcl-eval`` package's own checkers, and BFCL's aggregation.

Pipeline (single-turn): a completion -> a decoder (:data:`DECODERS`) -> BFCL's ``model_output``
structure (a list of ``{function_name: {param: value}}`` dicts) -> BFCL's format check
(``is_function_calling_format_output``) -> ``bfcl_eval.eval_checker.ast_eval.ast_checker`` with
the entry's function docs, possible answers and language (Python, or Java / JavaScript for
simple_java / simple_javascript, whose values are Java/JS literals in strings, as BFCL expects)
-> valid / invalid per sample -> per-category accuracy -> Non-Live, Live, Multi-Turn and Overall.
Multi-turn dialogues are run and scored in :mod:`eval.multiturn` (BFCL's executors and
``multi_turn_checker``); their verdicts join the aggregation here.

Decoders (``eval.bfcl.decoder``):

- ``toolrl`` (:func:`decode_tool_calls_toolrl`): ToolRL's BFCL handler (``decode_ast`` /
  ``decode_execute`` of ``benchmarks/BFCL/rlla_qwen.py``): only the LAST ``<tool_call>`` block
  counts; one JSON object per line; a line that does not parse (or lacks ``name`` /
  ``parameters``) is skipped; a call named "None" (any case) is dropped; no ``<tool_call>`` ->
  no call. Never fails.
- ``strict`` (:func:`decode_tool_calls`): every block is read, any bad line makes the whole
  answer undecodable (BFCL's ``ast_decoder:decoder_failed``).

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
  where "simple" is itself the unweighted mean of simple_python, simple_java and
  simple_javascript (1150 entries: 400 + 100 + 50 + 200 + 200 + 200).
- Live = mean of live_simple, live_multiple, live_parallel, live_parallel_multiple weighted by
  the number of entries of each category (``calculate_weighted_accuracy``; 258 + 1053 + 16 + 24
  = 1351 entries, BFCL v4's "Live Overall"). BFCL always scores whole categories; when fewer
  records are evaluated (``max_records``) the weights stay the full category sizes
  (:func:`bfcl_category_sizes`), so a subsample estimates the same quantity.
- Multi-Turn = unweighted mean of the four multi_turn categories (base, miss_func, miss_param,
  long_context; 200 each).
- Overall (the SAW paper's) = mean of Non-Live, Live and Multi-Turn; ``overall_without_multi_turn``
  = mean of Non-Live and Live is reported beside it, clearly named.
- Relevance detection (live_relevance, irrelevance, live_irrelevance) is reported per category
  only (extra columns), outside these groups, as in the SAW paper's table.

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
from saw.tasks.toolcall import (  # noqa: F401 - the one definition of the category lists (re-exported)
    ALL_CATEGORIES,
    AST_CATEGORIES,
    IRRELEVANCE_CATEGORIES,
    LIVE_CATEGORIES,
    MULTI_TURN_CATEGORIES,
    NO_CALL_ANSWER,
    NON_LIVE_CATEGORIES,
    NON_LIVE_PYTHON_CATEGORIES,
    RELEVANCE_CATEGORIES,
    SIMPLE_LANGUAGE_CATEGORIES,
    SINGLE_TURN_CATEGORIES,
    bfcl_data_dir,
    bfcl_ground_truth_calls,
    format_tool_calls,
)

# single-turn categories scored by check_completion
SUPPORTED_CATEGORIES = SINGLE_TURN_CATEGORIES
DECODERS = ("toolrl", "strict")

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


def category_language(category: str):
    """BFCL's checker language of a category (``Language.JAVA`` / ``JAVASCRIPT`` / ``PYTHON``)."""
    from bfcl_eval.constants.enums import Language

    if category == "simple_java":
        return Language.JAVA
    if category == "simple_javascript":
        return Language.JAVASCRIPT
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


def decode_tool_calls_toolrl(text: str) -> list[dict[str, Any]]:
    """ToolRL's ``decode_ast``: completion -> ``[{name: parameters}, ...]`` (see the module docstring).

    Only the text between the last ``<tool_call>`` and the ``</tool_call>`` after it counts; each
    line is ``json.loads``-ed and needs ``"name"`` and ``"parameters"``; lines that fail are
    skipped; calls named "None" are dropped. Never raises.
    """
    if "<tool_call>" not in text:
        return []
    lines = text.split("<tool_call>")[-1].split("</tool_call>")[0].strip().split("\n")
    calls = []
    for line in lines:
        try:
            obj = json.loads(line)
            name = obj["name"]
            if name.strip().lower() == "none":
                continue
            calls.append({name: obj["parameters"]})
        except Exception:  # noqa: BLE001 - ToolRL's handler skips any line it cannot read
            continue
    return calls


def decode(text: str, decoder: str = "strict") -> list[dict[str, Any]]:
    """Decode with the named decoder (:data:`DECODERS`); ``strict`` may raise ToolCallDecodeError."""
    if decoder == "toolrl":
        return decode_tool_calls_toolrl(text)
    if decoder == "strict":
        return decode_tool_calls(text)
    raise ValueError(f"unknown tool-call decoder {decoder!r}; valid: {', '.join(DECODERS)}")


def call_to_python(name: str, arguments: Mapping[str, Any]) -> str:
    """``name(k=repr(v), ...)``: a call as BFCL's executors take it (ToolRL's
    ``xlam_json_to_python_tool_calls``)."""
    if not isinstance(arguments, Mapping):
        raise ToolCallDecodeError(f"tool call {name!r}: parameters must be an object, got {arguments!r:.200}")
    args = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    return f"{name}({args})"


def decode_execute(text: str, decoder: str = "strict") -> list[str]:
    """Completion -> executable call strings for BFCL's multi-turn executors.

    ``toolrl``: ToolRL's ``decode_execute`` (last block, unreadable lines skipped, "None" calls
    dropped; a line whose ``parameters`` is not an object makes the whole step undecodable, as
    in the handler). ``strict``: :func:`decode_tool_calls`. Raises ToolCallDecodeError when
    the step cannot be decoded (BFCL then ends the turn).
    """
    if decoder == "toolrl":
        if "<tool_call>" not in text:
            return []
        out = []
        for line in text.split("<tool_call>")[-1].split("</tool_call>")[0].strip().split("\n"):
            try:
                obj = json.loads(line)
            except Exception:  # noqa: BLE001
                continue
            if not isinstance(obj, dict):
                continue
            name = obj.get("name", "")
            if not isinstance(name, str):
                raise ToolCallDecodeError(f"tool-call name is not a string: {name!r:.100}")
            if name.strip().lower() == "none":
                continue
            out.append(call_to_python(name, obj.get("parameters", {})))
        return out
    return [call_to_python(name, params) for call in decode(text, decoder) for name, params in call.items()]


# ----------------------------------------------------------------------------- checking
@dataclass
class CheckResult:
    """Verdict for one completion: ``valid`` and, when invalid, BFCL's error type and messages."""

    valid: bool
    error_type: str | None = None
    errors: list[Any] = field(default_factory=list)
    decoded: list[dict] | None = None


def _is_function_calling_format(decoded: Any) -> bool:
    from bfcl_eval.utils import is_function_calling_format_output

    return is_function_calling_format_output(decoded)


def check_relevance(completion: str, category: str, decoder: str = "strict") -> CheckResult:
    """BFCL's relevance / irrelevance check (``_evaluate_single_relevance_entry``): irrelevance
    entries are right when the answer holds no call (or cannot be decoded), live_relevance
    entries when it holds one."""
    from bfcl_eval.utils import is_empty_output

    decoded = None
    try:
        decoded = decode(completion, decoder)
        has_call = not is_empty_output(decoded)
    except ToolCallDecodeError:
        has_call = False
    if category in IRRELEVANCE_CATEGORIES:
        if has_call:
            return CheckResult(False, "irrelevance_error:decoder_success",
                               ["Valid syntax. Successfully decode AST when it should not."], decoded)
        return CheckResult(True, None, [], decoded)
    if not has_call:
        return CheckResult(False, "relevance_error:decoder_failed", ["No function call decoded."], decoded)
    return CheckResult(True, None, [], decoded)


def check_completion(completion: str, functions: Sequence[Mapping[str, Any]],
                     possible_answer: Sequence[Mapping[str, Any]], category: str,
                     decoder: str = "strict") -> CheckResult:
    """Score one completion with BFCL's checkers.

    Args:
        completion: model text.
        functions: the entry's function docs (BFCL ``function``; record ``extra_info["functions"]``).
        possible_answer: BFCL ``ground_truth`` (a list of {function: {param: [acceptable values]}});
            ignored for the relevance categories.
        category: BFCL category, one of :data:`SUPPORTED_CATEGORIES`.
        decoder: one of :data:`DECODERS`.

    Undecodable text is invalid with error type ``ast_decoder:decoder_failed`` and a decoded
    value that is not a list of ``{name: {params}}`` with ``ast_decoder:decoder_wrong_output_format``
    (BFCL's own types). An exception inside the checker (it assumes well-typed inputs in a few
    places) makes the sample invalid with error type ``checker_exception`` instead of stopping
    the evaluation.
    """
    if category not in SUPPORTED_CATEGORIES:
        raise ValueError(f"BFCL category {category!r} is not scored by check_completion; "
                         f"valid: {', '.join(SUPPORTED_CATEGORIES)} (multi-turn: eval.multiturn)")
    if decoder not in DECODERS:
        raise ValueError(f"unknown tool-call decoder {decoder!r}; valid: {', '.join(DECODERS)}")
    if category in RELEVANCE_CATEGORIES + IRRELEVANCE_CATEGORIES:
        return check_relevance(completion, category, decoder)
    checker = load_ast_checker()
    try:
        decoded = decode(completion, decoder)
    except ToolCallDecodeError as exc:
        return CheckResult(False, "ast_decoder:decoder_failed", [str(exc)])
    if not _is_function_calling_format(decoded):
        return CheckResult(False, "ast_decoder:decoder_wrong_output_format",
                           ["Did not output in the specified format."], decoded)
    try:
        out = checker.ast_checker(list(functions), decoded, list(possible_answer), category_language(category),
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


def check_records(completions: Sequence[str], records: Sequence[Mapping[str, Any]],
                  decoder: str = "strict") -> list[CheckResult]:
    """:func:`check_completion` of ``completions[i]`` against BFCL record ``records[i]``."""
    if len(completions) != len(records):
        raise ValueError(f"{len(completions)} completions for {len(records)} records")
    out = []
    for text, record in zip(completions, records):
        category, functions, answer = record_bfcl_fields(record)
        out.append(check_completion(text, functions, answer, category, decoder))
    return out


# ----------------------------------------------------------------------------- aggregation
def bfcl_category_sizes(categories: Iterable[str] = ALL_CATEGORIES,
                        data_dir: str | Path | None = None) -> dict[str, int]:
    """Number of entries of each BFCL v4 category, counted in the package's data files."""
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

    mean(simple, multiple, parallel, parallel_multiple) with simple = mean of simple_python,
    simple_java and simple_javascript. None if one of the six categories is missing.
    """
    if any(c not in accuracy for c in NON_LIVE_CATEGORIES):
        return None
    simple = sum(accuracy[c] for c in SIMPLE_LANGUAGE_CATEGORIES) / len(SIMPLE_LANGUAGE_CATEGORIES)
    groups = [simple, accuracy["multiple"], accuracy["parallel"], accuracy["parallel_multiple"]]
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


def multi_turn_accuracy(accuracy: Mapping[str, float]) -> float | None:
    """BFCL's Multi-Turn accuracy: unweighted mean of the four multi-turn categories (None if one
    is missing)."""
    if any(c not in accuracy for c in MULTI_TURN_CATEGORIES):
        return None
    return sum(accuracy[c] for c in MULTI_TURN_CATEGORIES) / len(MULTI_TURN_CATEGORIES)


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
        mt = multi_turn_accuracy(acc)
        run = {"non_live": nl, "live": lv, "multi_turn": mt, "overall": overall_accuracy(nl, lv, mt),
               "overall_without_multi_turn": None if nl is None or lv is None else (nl + lv) / 2}
        for cat in RELEVANCE_CATEGORIES + IRRELEVANCE_CATEGORIES:  # extra columns, outside the groups
            if cat in acc:
                run[cat] = acc[cat]
        run["per_category"] = acc
        runs.append(run)
    keys = ("non_live", "live", "multi_turn", "overall", "overall_without_multi_turn") + tuple(
        c for c in RELEVANCE_CATEGORIES + IRRELEVANCE_CATEGORIES if c in valid)
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


# ----------------------------------------------------------------------------- oracle answers
def _java_literal(value: Any, kind: str, item_kind: str | None = None) -> str:
    """A value as the Java source text BFCL's Java checker converts back to it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "long" and isinstance(value, int):
        return f"{value}L"
    if kind == "float" and isinstance(value, (int, float)):
        return f"{float(value)}f"
    if kind == "double" and isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        # ArrayList's parser strips the quotes of String elements, Array's parser keeps them
        quote = item_kind == "String" and kind != "Array"
        inner = ", ".join(f'"{v}"' if quote and isinstance(v, str) else _java_literal(v, item_kind or "any")
                          for v in value)
        if kind == "Array":
            return f"new {item_kind or 'Object'}[]{{{inner}}}"
        return f"new ArrayList<>(Arrays.asList({inner}))"
    if isinstance(value, dict):
        puts = " ".join(f'put("{k}", {_java_elem(v)});' for k, v in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return str(value)


def _java_elem(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return _java_literal(value, "any")


def _js_literal(value: Any, kind: str) -> str:
    """A value as the JavaScript source text BFCL's JS checker converts back to it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "Bigint" and isinstance(value, int):
        return f"{value}n"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else _js_literal(v, "any") for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}": ' + (f'"{v}"' if isinstance(v, str) else _js_literal(v, "any"))
                               for k, v in value.items()) + "}"
    return str(value)


def oracle_completion(record: Mapping[str, Any]) -> str:
    """The ground truth of a single-turn BFCL record as a model would write it (the oracle).

    AST categories: the record's calls (:func:`saw.tasks.toolcall.bfcl_ground_truth_calls`), for
    Java / JavaScript with every value written as the Java / JS literal string BFCL's checker
    expects; irrelevance: an answer without a call; live_relevance (no ground truth in BFCL):
    a call of the first offered function without parameters (any call is right there).
    """
    category, functions, answer = record_bfcl_fields(record)
    if category in IRRELEVANCE_CATEGORIES:
        return NO_CALL_ANSWER
    if category in RELEVANCE_CATEGORIES:
        return format_tool_calls([{"name": functions[0]["name"], "parameters": {}}])
    calls = bfcl_ground_truth_calls(answer, functions)
    if category in ("simple_java", "simple_javascript"):
        docs = {f["name"]: (f.get("parameters") or {}).get("properties") or {} for f in functions}
        for call in calls:
            props = docs.get(call["name"], {})
            for key, value in call["parameters"].items():
                spec = props.get(key) or {}
                kind = str(spec.get("type", "any"))
                item = (spec.get("items") or {}).get("type")
                call["parameters"][key] = (_java_literal(value, kind, item) if category == "simple_java"
                                           else _js_literal(value, kind))
    return format_tool_calls(calls)
