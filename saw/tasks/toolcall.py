"""Tool calling in the ToolRL output format, from BFCL v4 (embedded) or ToolRL parquet files.

The model sees a system prompt listing the tools and the answer format, then the user's
request, and must answer with::

    <think> reasoning </think>
    <tool_call>
    {"name": "tool_a", "parameters": {"x": 1}}
    {"name": "tool_b", "parameters": {}}
    </tool_call>
    <response> optional reply to the user </response>

Sources (config ``source``):

- ``bfcl`` (embedded default): BFCL v4 as shipped in the ``bfcl-eval`` package (its JSON
  files are read directly; no ``bfcl_eval`` module is imported). The Live categories
  (live_simple, live_multiple, live_parallel, live_parallel_multiple) are split into train
  and a small validation split; the Non-Live categories (simple_python, multiple, parallel,
  parallel_multiple) form the test split, used for evaluation only. Train/validation records
  whose user question also occurs in the test split are dropped, and validation never shares
  a question with train. Live entries whose possible answer disagrees with their own function
  docs (undefined parameter, required parameter without a value: three in v4) are not
  trained on; the test split keeps every entry.
- ``toolrl``: the ToolRL/verl parquet format the SAW authors trained on (columns ``prompt``
  = chat messages, ``reward_model.ground_truth`` = target text, ``data_source``,
  ``extra_info``), from local files (``paths``) or a hub id (``hub_id``). Prompts are used as
  they are.

Ground truth built from BFCL's possible answers (one convention, used for SFT targets and
for the rule-based rewards that compare against ``ground_truth``):

1. Each call becomes ``{"name": function, "parameters": {...}}``, one JSON object per line,
   in BFCL's order.
2. A parameter whose acceptable values include ``""`` is optional: it is omitted, unless the
   function doc lists it as required (BFCL's checker then insists on it): the first
   acceptable value other than ``""`` is used.
3. Otherwise the first acceptable value is used. An empty list of acceptable values (BFCL
   writes ``[]`` for a required array that should stay empty) gives the value ``[]``.
4. The rule applies recursively: a dict value maps each key to its own list of acceptable
   values (rules 2-3 again), a list value applies the rule to each element; plain values are
   kept as they are.
5. The think text is a fixed sentence naming the tools: ``<think> I should call NAME. </think>``
   (``A and B`` / ``A, B and C`` for several tools). No ``<response>`` block.

A BFCL record's prompt is [system, user]: our system prompt (tools + format), with BFCL's own
system message, when an entry has one, appended to it; then the user question as BFCL gives
it. ``extra_info`` keeps ``bfcl_id``, ``category``, ``functions`` (BFCL's function docs),
``possible_answer`` (BFCL's acceptable values) and ``question`` for the BFCL checker.

Tool rendering (config ``tool_render``): ``compact`` (default; one line per tool with a
JSON sketch of its parameters, short rules, one worked example), ``full`` (ToolRL-like:
numbered tools with name, description and the whole JSON parameter schema, and longer
instructions) or ``toolrl`` (exactly the prompt of ToolRL's BFCL handler, see
:mod:`saw.tasks.toolrl_prompt`: ToolRL's system prompt, BFCL's system messages dropped, the
user turn wrapped in ``<user> ... </user>`` with ToolRL's instruction). Prompt length sets the
step cost on CPU, hence the compact default; evaluation uses the run's own rendering
(eval/harness.py). The prompt shows the function docs after BFCL's language-specific
pre-processing for Java/JavaScript (values as Java/JS literals in strings) and, in the
``toolrl`` rendering, for every category (BFCL's inference pipeline does so for every model);
``extra_info["functions"]`` keeps BFCL's original docs for the checker.

The BFCL category lists (Non-Live, Live, Multi-Turn, relevance) are defined here, once; eval/
imports them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from saw.tasks.base import (
    TASKS,
    Task,
    TaskDataError,
    assemble_task,
    check_config_keys,
    check_messages,
    load_source,
    load_split_rows,
    normalise_text,
    package_data_dir,
    require,
)
from saw.tasks.toolrl_prompt import toolrl_messages, toolrl_system_prompt

log = logging.getLogger(__name__)

# ---- BFCL v4 categories (the one definition; eval/ imports them from here)
# BFCL's "simple" group: the three languages' simple categories (unweighted mean)
SIMPLE_LANGUAGE_CATEGORIES = ("simple_python", "simple_java", "simple_javascript")
# Non-Live AST: simple (3 languages) + multiple + parallel + parallel_multiple = 1150 entries
NON_LIVE_CATEGORIES = ("simple_python", "simple_java", "simple_javascript", "multiple", "parallel",
                       "parallel_multiple")
# the Python ones (the embedded task's test split)
NON_LIVE_PYTHON_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")
# Live AST (BFCL's Live Overall, weighted by size) = 1351 entries
LIVE_CATEGORIES = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
MULTI_TURN_CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                         "multi_turn_long_context")
# relevance detection (no possible answer: a call is expected, or none is)
RELEVANCE_CATEGORIES = ("live_relevance",)
IRRELEVANCE_CATEGORIES = ("irrelevance", "live_irrelevance")
AST_CATEGORIES = NON_LIVE_CATEGORIES + LIVE_CATEGORIES
SINGLE_TURN_CATEGORIES = AST_CATEGORIES + RELEVANCE_CATEGORIES + IRRELEVANCE_CATEGORIES
ALL_CATEGORIES = SINGLE_TURN_CATEGORIES + MULTI_TURN_CATEGORIES
TOOL_RENDERS = ("compact", "full", "toolrl")
BFCL_DATA_SOURCE = "bfcl_v4"
DEFAULT_REWARDS = ["toolcall_format", "toolcall_correctness"]
_ALLOWED_KEYS = frozenset({
    "train_categories", "test_categories", "tool_render", "bfcl_data_dir",
    "paths", "hub_id", "hub_subset", "hub_splits", "drop_test_questions",
})


# ============================================================================ BFCL files
def bfcl_data_dir(override: str | Path | None = None) -> Path:
    """The ``data`` folder of the installed ``bfcl-eval`` package (found without importing it)."""
    return package_data_dir("bfcl-eval", "data", "bfcl_data_dir", override)


def _read_json_lines(path: Path) -> list[dict]:
    if not path.is_file():
        raise TaskDataError(f"BFCL file {str(path)!r} does not exist (is the category name right? "
                            f"valid: {', '.join(ALL_CATEGORIES)})")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TaskDataError(f"{path}: line {line_no} is not valid JSON ({exc})") from exc
    if not rows:
        raise TaskDataError(f"BFCL file {str(path)!r} is empty")
    return rows


def load_bfcl_category(category: str, data_dir: str | Path | None = None) -> list[tuple[dict, dict]]:
    """(question entry, possible-answer entry) pairs of one BFCL v4 category, matched by id."""
    root = bfcl_data_dir(data_dir)
    questions = _read_json_lines(root / f"BFCL_v4_{category}.json")
    answer_path = root / "possible_answer" / f"BFCL_v4_{category}.json"
    if category in RELEVANCE_CATEGORIES + IRRELEVANCE_CATEGORIES:  # BFCL has no possible answers for them
        answers = {q.get("id"): {"id": q.get("id"), "ground_truth": []} for q in questions}
    else:
        answers = {row.get("id"): row for row in _read_json_lines(answer_path)}
    pairs = []
    for line_no, q in enumerate(questions, start=1):
        where = f"{root / f'BFCL_v4_{category}.json'}: line {line_no}"
        for key in ("id", "question", "function"):
            if key not in q:
                raise TaskDataError(f"{where}: entry lacks {key!r}")
        if q["id"] not in answers:
            raise TaskDataError(f"{where}: id {q['id']!r} has no entry in {answer_path}")
        pairs.append((q, answers[q["id"]]))
    return pairs


# ============================================================================ ground truth
def resolve_value(value: Any) -> Any:
    """Apply the first-value rule inside a chosen value (rule 4 of the module docstring)."""
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            if isinstance(sub, list):  # a list of acceptable values
                picked = pick_acceptable(sub)
                if picked is not _OMIT:
                    out[key] = picked
            else:  # a plain value (BFCL is not always consistent inside nested dicts)
                out[key] = resolve_value(sub)
        return out
    if isinstance(value, list):
        return [resolve_value(v) for v in value]
    return value


class _Omit:
    def __repr__(self) -> str:
        return "<omit>"


_OMIT = _Omit()


def pick_acceptable(acceptable: list) -> Any:
    """The ground-truth value for a list of acceptable values, or ``_OMIT`` for an optional one."""
    if len(acceptable) == 0:
        return []
    if any(isinstance(v, str) and v == "" for v in acceptable):
        return _OMIT
    return resolve_value(acceptable[0])


def bfcl_ground_truth_calls(possible_answer: Sequence[Mapping[str, Mapping[str, list]]],
                            functions: Sequence[Mapping[str, Any]] | None = None) -> list[dict]:
    """BFCL ``ground_truth`` (a list of {function: {param: [acceptable values]}}) -> list of
    ``{"name": function, "parameters": {...}}`` following the module's convention. ``functions``
    (BFCL's docs) tells which top-level parameters are required (rule 2's exception)."""
    required_by_name = {
        f.get("name"): set((f.get("parameters") or {}).get("required") or []) for f in (functions or [])
    }
    calls = []
    for i, call in enumerate(possible_answer):
        if not isinstance(call, Mapping) or len(call) != 1:
            raise TaskDataError(f"possible answer {i} must map one function name to its parameters, got {call!r:.200}")
        (name, params), = call.items()
        if not isinstance(params, Mapping):
            raise TaskDataError(f"possible answer for {name!r} must map parameters to acceptable values")
        required = required_by_name.get(name, set())
        chosen = {}
        for param, acceptable in params.items():
            if not isinstance(acceptable, list):
                chosen[param] = resolve_value(acceptable)
                continue
            if param in required and acceptable:  # BFCL's checker insists on required parameters
                acceptable = [v for v in acceptable if not (isinstance(v, str) and v == "")]
                if not acceptable:  # nothing but "": no value to give
                    continue
            picked = pick_acceptable(acceptable)
            if picked is not _OMIT:
                chosen[param] = picked
        calls.append({"name": name, "parameters": chosen})
    return calls


def _join_names(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def format_tool_calls(calls: Sequence[Mapping[str, Any]]) -> str:
    """Ground-truth text: a fixed think sentence and one JSON object per call line."""
    if not calls:
        raise ValueError("a tool-call ground truth needs at least one call")
    names = list(dict.fromkeys(c["name"] for c in calls))
    lines = [json.dumps({"name": c["name"], "parameters": c["parameters"]}, ensure_ascii=False) for c in calls]
    return f"<think> I should call {_join_names(names)}. </think>\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"


# ============================================================================ prompts
_FULL_INTRO = (
    "You are an assistant that fulfils the user's request by calling tools and, when useful, "
    "replying to the user. Every answer follows the structured format described below."
)
_FULL_STEPS = """# How to answer
1. Think: inside <think> </think>, work out what the user wants and which tools (if any) achieve it.
2. Call tools: if tools are needed, put the calls inside <tool_call> </tool_call>, one JSON object per line with the keys "name" and "parameters". Several calls may be listed at once. A tool without arguments gets "parameters": {}.
3. Reply: if the user should get a message, write it inside <response> </response>.

# Answer format
<think> your reasoning </think>
<tool_call>
{"name": "first tool", "parameters": {"argument name": "argument value"}}
{"name": "second tool", "parameters": {"argument name": "argument value"}}
</tool_call>
<response> your reply to the user </response>

# Rules
1. Always start with a <think> block, then give a <tool_call> block, a <response> block, or both.
2. Call only the tools listed above, with their exact names and parameter names, and include every required parameter.
3. Earlier turns of the dialogue may contain your previous <tool_call> and <response> blocks and tool results marked <obs> </obs>; take them into account."""

_COMPACT_RULES = (
    "Reply with <think> reasoning </think>, then <tool_call>, one JSON object "
    "{\"name\": tool, \"parameters\": {...}} per line, then </tool_call>. Add <response> text </response> "
    "only if needed. Use the exact tool and parameter names and give all required parameters."
)
_COMPACT_EXAMPLE = (
    "Example for a request \"What's the weather in Paris in celsius?\":\n"
    "<think> I should call get_weather. </think>\n<tool_call>\n"
    "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>"
)


def _first_sentence(text: str, max_words: int = 40) -> str:
    text = " ".join(str(text).split())
    for stop in (". ", ".\n"):
        cut = text.find(stop)
        if cut != -1:
            text = text[: cut + 1]
            break
    words = text.split(" ")
    if len(words) > max_words:
        text = " ".join(words[:max_words]) + " ..."
    return text


def _compact_leaf(kind: str, enum: Any) -> str:
    if isinstance(enum, list) and enum:
        return "|".join(str(v) if not isinstance(v, str) else v for v in enum)
    return kind


def _compact_schema(schema: Any, required: bool) -> Any:
    """A short JSON sketch of a parameter schema. Nested objects stay objects, arrays of
    objects become a one-element list, leaves become type strings: ``"integer"``,
    ``"array of string"``, ``"celsius|fahrenheit"`` (allowed values); a trailing ``?`` marks
    an optional parameter. Parameter descriptions and defaults are left out."""
    if not isinstance(schema, Mapping):
        return "any"
    mark = "" if required else "?"
    kind = str(schema.get("type", "any"))
    props = schema.get("properties")
    if kind in ("dict", "object") and isinstance(props, Mapping) and props:
        req = set(schema.get("required") or [])
        return {name: _compact_schema(sub, name in req) for name, sub in props.items()}
    if kind in ("array", "tuple"):
        items = schema.get("items")
        if isinstance(items, Mapping) and isinstance(items.get("properties"), Mapping) and items["properties"]:
            return [_compact_schema(items, True)]
        if isinstance(items, Mapping):
            return f"array of {_compact_leaf(str(items.get('type', 'any')), items.get('enum'))}{mark}"
        return f"array{mark}"
    return _compact_leaf(kind, schema.get("enum")) + mark


def render_tool_compact(function: Mapping[str, Any]) -> str:
    """One line: ``- name: first sentence of the description Parameters: {json sketch}``."""
    params = function.get("parameters") or {}
    sketch = _compact_schema(params, True) if params.get("properties") else {}
    if not isinstance(sketch, dict):
        sketch = {}
    desc = _first_sentence(function.get("description", ""))
    return f"- {function['name']}: {desc} Parameters: {json.dumps(sketch, ensure_ascii=False)}"


def render_tool_full(index: int, function: Mapping[str, Any]) -> str:
    """ToolRL style: numbered name, full description and the whole JSON parameter schema."""
    params = function.get("parameters") or {}
    return (f"{index}. Name: {function['name']}\nDescription: {function.get('description', '')}\n"
            f"Parameters: {json.dumps(params, ensure_ascii=False)}")


def tool_system_prompt(functions: Sequence[Mapping[str, Any]], tool_render: str = "compact") -> str:
    """The system message: the tools in the chosen rendering plus the answer format."""
    if tool_render == "compact":
        tools = "\n".join(render_tool_compact(f) for f in functions)
        return ("You fulfil the user's request by calling tools. Available tools with their parameters "
                "(a|b = allowed values, ? = optional):\n"
                f"{tools}\n{_COMPACT_RULES}\n{_COMPACT_EXAMPLE}")
    if tool_render == "full":
        tools = "\n".join(render_tool_full(i, f) for i, f in enumerate(functions, start=1))
        return f"{_FULL_INTRO}\n\n# Available tools\nYou may call these tools:\n{tools}\n\n{_FULL_STEPS}"
    if tool_render == "toolrl":
        return toolrl_system_prompt(functions)
    raise ValueError(f"unknown tool_render {tool_render!r}; valid: {', '.join(TOOL_RENDERS)}")


# answer without a tool call (ground truth of the irrelevance categories)
NO_CALL_ANSWER = "<think> None of the tools fits the request. </think>\n<response> I cannot do this with the tools I have. </response>"


def bfcl_prompt_functions(functions: Sequence[Mapping[str, Any]], category: str, tool_render: str) -> list[dict]:
    """The function docs shown in the prompt (the checker always gets BFCL's originals).

    BFCL's inference pipeline shows every model the docs after its language-specific
    pre-processing (``bfcl_eval.utils.add_language_specific_hint_to_function_doc``: a sentence
    naming the language appended to each description; Java/JavaScript parameters turned into
    strings whose description names the Java/JS type). ToolRL's handler got them so, hence the
    ``toolrl`` rendering uses them for every category; ``compact``/``full`` keep the raw docs
    for Python (their training prompts) and use BFCL's pre-processed docs for Java/JavaScript,
    whose answers must be Java/JS literals in strings.
    """
    if tool_render != "toolrl" and category not in ("simple_java", "simple_javascript"):
        return list(functions)
    import copy

    from bfcl_eval.utils import add_language_specific_hint_to_function_doc

    entry = {"id": f"{category}_0", "function": copy.deepcopy(list(functions))}
    return add_language_specific_hint_to_function_doc([entry])[0]["function"]


def bfcl_to_record(question: Mapping[str, Any], answer: Mapping[str, Any], category: str,
                   tool_render: str = "compact", where: str = "") -> dict:
    """One BFCL (question, possible answer) pair -> a record (see saw.tasks.base)."""
    where = where or f"BFCL {category} id {question.get('id')!r}"
    turns = question["question"]
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], list):
        raise TaskDataError(f"{where}: 'question' must be a list of turns (lists of messages)")
    if len(turns) != 1:
        raise TaskDataError(f"{where}: multi-turn entries are not supported (got {len(turns)} turns)")
    messages = check_messages(turns[0], where)
    functions = question["function"]
    if not isinstance(functions, list) or (not functions and category not in IRRELEVANCE_CATEGORIES):
        raise TaskDataError(f"{where}: 'function' must be a non-empty list of function docs")
    if "ground_truth" not in answer:
        raise TaskDataError(f"{where}: possible-answer entry lacks 'ground_truth'")
    if tool_render not in TOOL_RENDERS:
        raise ValueError(f"unknown tool_render {tool_render!r}; valid: {', '.join(TOOL_RENDERS)}")
    shown = bfcl_prompt_functions(functions, category, tool_render)
    chat: list[dict] = []
    if tool_render == "toolrl":  # ToolRL's handler: BFCL's system messages dropped, user turn wrapped
        if not any(m["role"] == "user" for m in messages):
            raise TaskDataError(f"{where}: no user message")
        prompt = toolrl_messages(messages, shown, multi_turn=False)
        chat = [m for m in messages if m["role"] != "system"]
    else:
        system = tool_system_prompt(shown, tool_render)
        for msg in messages:
            if msg["role"] == "system":  # BFCL's own system text goes after ours, in one system message
                system = system + "\n\n" + msg["content"]
            else:
                chat.append({"role": msg["role"], "content": msg["content"]})
        if not any(m["role"] == "user" for m in chat):
            raise TaskDataError(f"{where}: no user message")
        prompt = [{"role": "system", "content": system}] + chat
    if category in RELEVANCE_CATEGORIES + IRRELEVANCE_CATEGORIES:
        ground_truth = NO_CALL_ANSWER if category in IRRELEVANCE_CATEGORIES else ""
    else:
        ground_truth = format_tool_calls(bfcl_ground_truth_calls(answer["ground_truth"], functions))
    return {
        "id": str(question["id"]),
        "prompt": prompt,
        "ground_truth": ground_truth,
        "data_source": BFCL_DATA_SOURCE,
        "extra_info": {
            "bfcl_id": str(question["id"]),
            "category": category,
            "tool_render": tool_render,
            "functions": functions,
            "possible_answer": answer["ground_truth"],
            "question": " ".join(m["content"] for m in chat if m["role"] == "user"),
        },
    }


def answer_matches_docs(record: Mapping[str, Any]) -> bool:
    """True when the ground truth of a BFCL record agrees with its function docs: every call
    names an offered function, uses only parameters the doc defines and gives every required
    one (a few BFCL entries disagree with their own docs; they are not trained on)."""
    functions = record["extra_info"]["functions"]
    docs = {f.get("name"): f for f in functions}
    for call in bfcl_ground_truth_calls(record["extra_info"]["possible_answer"], functions):
        doc = docs.get(call["name"])
        if doc is None:
            return False
        schema = doc.get("parameters") or {}
        defined = set(schema.get("properties") or {})
        if not set(call["parameters"]) <= defined or not set(schema.get("required") or []) <= set(call["parameters"]):
            return False
    return True


def question_key(record: Mapping[str, Any]) -> str:
    """Normalised text of the record's user messages: two records with the same key ask the same question."""
    return normalise_text(" ".join(m["content"] for m in record["prompt"] if m["role"] == "user"))


# ============================================================================ ToolRL parquet
def toolrl_row_to_record(row: Mapping[str, Any], split: str, index: int, where: str) -> dict:
    """One ToolRL/verl row (prompt, reward_model.ground_truth, data_source, extra_info) -> a record."""
    if not isinstance(row, Mapping):
        raise TaskDataError(f"{where}: row is not a mapping")
    if "prompt" not in row:
        raise TaskDataError(f"{where}: missing column 'prompt' (ToolRL format: prompt, reward_model, "
                            "data_source, extra_info)")
    prompt = row["prompt"]
    if hasattr(prompt, "tolist"):
        prompt = prompt.tolist()
    messages = check_messages(prompt, where)
    reward_model = row.get("reward_model")
    gt = reward_model.get("ground_truth") if isinstance(reward_model, Mapping) else None
    if not isinstance(gt, str) or not gt.strip():
        raise TaskDataError(f"{where}: missing or empty 'reward_model.ground_truth'")
    extra = row.get("extra_info")
    extra = dict(extra) if isinstance(extra, Mapping) else {}
    extra.setdefault("source_row", index)
    return {
        "id": f"toolrl-{split}-{index}",
        "prompt": [{"role": m["role"], "content": m["content"]} for m in messages],
        "ground_truth": gt,
        "data_source": str(row.get("data_source") or "toolrl"),
        "extra_info": extra,
    }


def _load_toolrl_split(cfg: Mapping[str, Any], split: str) -> list[dict]:
    rows, origin = load_split_rows(cfg, split, "toolcall")
    return [toolrl_row_to_record(row, split, i, f"{origin}: row {i}") for i, row in enumerate(rows)]


# ============================================================================ the task
def _drop_shared_questions(train: list[dict], test: list[dict], label: str) -> list[dict]:
    test_keys = {question_key(r) for r in test}
    kept = [r for r in train if question_key(r) not in test_keys]
    if len(kept) != len(train):
        log.info("%s: dropped %d training records whose question is also in the test split",
                 label, len(train) - len(kept))
    return kept


def _build_bfcl(cfg: Mapping[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
    tool_render = cfg.get("tool_render", "compact")
    if tool_render not in TOOL_RENDERS:
        raise ValueError(f"toolcall task: unknown tool_render {tool_render!r}; valid: {', '.join(TOOL_RENDERS)}")
    data_dir = cfg.get("bfcl_data_dir")

    def records(categories: Iterable[str]) -> list[dict]:
        out = []
        for cat in categories:
            for q, a in load_bfcl_category(cat, data_dir):
                out.append(bfcl_to_record(q, a, cat, tool_render))
        return out

    train_cats = list(cfg.get("train_categories") or LIVE_CATEGORIES)
    test_cats = list(cfg.get("test_categories") or NON_LIVE_PYTHON_CATEGORIES)
    overlap = set(train_cats) & set(test_cats)
    if overlap:
        raise ValueError(f"toolcall task: categories {sorted(overlap)} are in both train_categories and test_categories")
    pool = records(train_cats)
    test = records(test_cats)
    consistent = [r for r in pool if answer_matches_docs(r)]
    if len(consistent) != len(pool):
        log.info("toolcall/bfcl: dropped %d training records whose answer disagrees with the function docs: %s",
                 len(pool) - len(consistent), [r["id"] for r in pool if not answer_matches_docs(r)])
    pool = _drop_shared_questions(consistent, test, "toolcall/bfcl")
    return pool, [], test


def _build_toolrl(cfg: Mapping[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
    paths = cfg.get("paths") or {}
    if not cfg.get("hub_id"):
        require(paths, "train", "toolcall task (source toolrl), paths")
    train = _load_toolrl_split(cfg, "train")
    if not train:
        raise TaskDataError("toolcall task (source toolrl): no training rows; set task.paths.train or task.hub_id")
    validation = _load_toolrl_split(cfg, "validation")
    test = _load_toolrl_split(cfg, "test")
    if cfg.get("drop_test_questions", True):  # the authors kept every row (their scripts: no such filter)
        train = _drop_shared_questions(train, test, "toolcall/toolrl")
    return train, validation, test


_SOURCES = {"bfcl": _build_bfcl, "toolrl": _build_toolrl}


@TASKS.register("toolcall", aliases=("tool_calling", "tool_call"))
def build_toolcall_task(cfg: Mapping[str, Any]) -> Task:
    """Build the tool-calling task from a plain config dict (see conf/task/toolcall*.yaml)."""
    check_config_keys(cfg, _ALLOWED_KEYS, "toolcall task")
    train, validation, test = load_source(cfg, _SOURCES, "bfcl", "toolcall")
    return assemble_task("toolcall", cfg, train, validation, test, question_key, DEFAULT_REWARDS)
