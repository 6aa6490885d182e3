"""Tool-calling rewards with ToolRL's rules (the rules the SAW and GDPO papers trained with).

Text format (ground truth and completions)::

    <think> ... </think>
    <tool_call>
    {"name": "f", "parameters": {"a": 1}}
    {"name": "g", "parameters": {}}
    </tool_call>
    <response> ... </response>

The ``<tool_call>`` and ``<response>`` blocks are each optional; the ground truth decides which
ones a completion must have. Completions are compared after :func:`rewards.text.strip_chat_markup`
(role header, end-of-turn token and outer whitespace removed).

- :func:`format_reward` in {0, 1}: the completion has the block structure the ground truth implies.
- :func:`correctness_reward` in [-3, 3]: how well the predicted calls match the ground truth's
  (function names, parameter names, parameter values).

Both take ``rules`` (the rewards take it as a config option, e.g.
``{"name": "toolcall_format", "rules": "strict"}``):

- ``"toolrl"`` (default): exactly the rules of ToolRL's reward code
  (github.com/qiancheng0/ToolRL, ``verl/utils/reward_score/rlla.py``, commit 8cee13e;
  ``customize_format_reward_func``, ``customize_correctness_reward_tool``,
  ``compute_tool_call_reward``, ``match_score``) with its environment switches (REFINEDREWARD,
  COARSEREWARD, INTERMEDIATEREWARD, MAX1STEP30MAX3, SCHEDULEREWARD, CORRECTMAX1) off, as in its
  default runs, and without its printing. A completion ToolRL's code would crash on inside its
  ``try`` scores -3, as its bare ``except`` gives.
- ``"strict"``: a stricter variant. Where it differs from ``"toolrl"`` (numbered so that reports
  can cite them):

  1. Calls: every line of the tool-call block must be a JSON object with a string "name" and an
     object "parameters", or the prediction scores -3. ToolRL only needs every line to be JSON,
     and fails (-3) only where its code breaks on a call: a line that is not an object, a call
     without "name", a list/object "name", or a call named like one of the ground truth's calls
     but without an object "parameters". So under ``toolrl`` an extra ``{"name": "g"}`` or
     ``{"name": 3, "parameters": {}}`` only lowers the score.
  2. Values: compared as JSON values (``true`` differs from ``1``, ``0`` from ``false``; NaN
     equals nothing). ToolRL uses Python's ``==`` (so ``True == 1``), in its exact-match test of
     the two call lists as well as per parameter value. As ``json`` returns one shared NaN
     object and containers compare items by identity first, a NaN matches a NaN inside a
     container (the call lists, a list or object value) but not as a bare parameter value.
  3. Block: the text between the first ``<tool_call>`` and the first ``</tool_call>`` after it
     (-3 when there is none). ToolRL requires both tags anywhere in the text (-3 when either is
     missing) and takes the text after the first ``<tool_call>`` up to the first ``</tool_call>``
     or second ``<tool_call>``, whichever comes first, or else up to the end: a closing tag
     before the opening tag makes it read to the end of the text, and a second opening tag
     ends the block.
  4. Format: the tool-call block's lines must each be a JSON object. ToolRL does not look at them.
  5. Format: ``<think>`` and ``</think>`` must each occur exactly once, and the tags of blocks
     the ground truth does not have must not occur at all. ToolRL counts only the tags of the
     required ``<tool_call>``/``<response>`` blocks (none for a think-only ground truth), so a
     second think block, a stray tag inside the think text or a ``<tool_call>`` mentioned inside
     a response can still score 1 as long as the anchored pattern matches.
  6. Format: the pattern must match the whole text. ToolRL's ``$`` also accepts one trailing
     newline (never present after :func:`strip_chat_markup`, which strips outer whitespace).
  7. Ground truth: needs a complete ``<tool_call> ... </tool_call>`` block; under ``toolrl`` it
     is cut out as in 3. Under both rules a ground truth whose calls are not
     ``{"name": str, "parameters": {...}}`` JSON lines raises ValueError (a dataset error; ToolRL
     crashes on non-JSON lines and scores almost everything -3 for the rest).

Both rule sets share the completion clean-up (:func:`strip_chat_markup`; ToolRL cuts the text
after the last assistant header and before the first ``<|im_end|>``/``<|eot_id|>``, then strips).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Hashable, Iterable, Sequence

from rewards.base import REWARDS, Reward
from rewards.text import strip_chat_markup

FORMAT_MIN, FORMAT_MAX = 0.0, 1.0
CORRECTNESS_MIN, CORRECTNESS_MAX = -3.0, 3.0

_TAGS = ("think", "tool_call", "response")

RULES = ("toolrl", "strict")
DEFAULT_RULES = "toolrl"


def check_rules(rules: Any, owner: str = "toolcall rewards") -> str:
    """``rules`` if it is one of :data:`RULES`, else a ValueError naming the option."""
    if not isinstance(rules, str) or rules not in RULES:
        raise ValueError(f"{owner}: option 'rules' must be one of {', '.join(map(repr, RULES))}; got {rules!r}")
    return rules


# ---------------------------------------------------------------------------------- parsing
def _first_block(text: str, tag: str) -> str | None:
    """Content between the first ``<tag>`` and the first ``</tag>`` after it (None if absent)."""
    start = text.find(f"<{tag}>")
    if start < 0:
        return None
    start += len(tag) + 2
    end = text.find(f"</{tag}>", start)
    if end < 0:
        return None
    return text[start:end]


def _load_json_object(line: str) -> dict | None:
    """``json.loads(line)`` if it is a JSON object, else None (never raises)."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError, MemoryError):  # bad JSON, too-long ints, deep nesting
        return None
    return value if isinstance(value, dict) else None


def parse_tool_calls(block: str) -> list[dict] | None:
    """Parse the content of a ``<tool_call>`` block: one call per line.

    Returns a list of calls (dicts with a str "name" and a dict "parameters") or None when any
    line is not such an object (blank lines included).
    """
    calls = []
    for line in block.strip().split("\n"):
        call = _load_json_object(line)
        if call is None or not isinstance(call.get("name"), str) or not isinstance(call.get("parameters"), dict):
            return None
        calls.append(call)
    return calls


def _toolrl_cut(text: str) -> str:
    """ToolRL's ``text.split("<tool_call>")[1].split("</tool_call>")[0]`` (rlla.py lines 235, 243),
    for a text that contains ``<tool_call>``: what follows the first opening tag, up to the next
    opening tag or the first closing tag after it, whichever comes first, else up to the end."""
    start = text.index("<tool_call>") + len("<tool_call>")
    next_open = text.find("<tool_call>", start)
    segment = text[start:] if next_open < 0 else text[start:next_open]
    close = segment.find("</tool_call>")
    return segment if close < 0 else segment[:close]


def toolrl_block(text: str) -> str | None:
    """The tool-call block ToolRL scores (rlla.py lines 241-243): None unless ``<tool_call>`` and
    ``</tool_call>`` both occur somewhere in ``text``; else :func:`_toolrl_cut` of it."""
    if "<tool_call>" not in text or "</tool_call>" not in text:
        return None
    return _toolrl_cut(text)


def toolrl_parse_lines(block: str) -> list[Any]:
    """``json.loads`` of each ``\\n``-separated line of ``block.strip()`` (rlla.py lines 236-237,
    243-244): any JSON values; raises what ``json.loads`` raises (blank lines included)."""
    return [json.loads(line) for line in block.strip().split("\n")]


def _is_call(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("name"), str) and isinstance(value.get("parameters"), dict)


@dataclass(frozen=True)
class ToolCallTarget:
    """What a ground truth asks for: which blocks, and the calls (None without a tool call)."""

    has_tool_call: bool
    has_response: bool
    calls: tuple[dict, ...] | None


def parse_ground_truth(ground_truth: str, rules: str = DEFAULT_RULES) -> ToolCallTarget:
    """Parse a ToolRL-format ground truth (cached; do not mutate the returned calls).

    ``strict``: the calls are the lines between the first ``<tool_call>`` and the first
    ``</tool_call>`` after it. ``toolrl``: they are cut out as ToolRL does (rlla.py line 235; a
    missing closing tag means up to the end). Raises ValueError when the ground truth has a
    ``<tool_call>`` tag but no such block of ``{"name": str, "parameters": {...}}`` JSON lines:
    that is a dataset error, not a model error.
    """
    return _parse_ground_truth(ground_truth, check_rules(rules, "parse_ground_truth"))


@lru_cache(maxsize=65536)
def _parse_ground_truth(ground_truth: str, rules: str) -> ToolCallTarget:
    if not isinstance(ground_truth, str):
        raise ValueError(f"ground truth must be a string, got {type(ground_truth).__name__}")
    has_tool_call = "<tool_call>" in ground_truth
    has_response = "<response>" in ground_truth
    calls = None
    if has_tool_call:
        if rules == "toolrl":
            try:
                parsed = toolrl_parse_lines(_toolrl_cut(ground_truth))
            except (ValueError, RecursionError, MemoryError):
                parsed = None
            if parsed is not None and not all(_is_call(call) for call in parsed):
                parsed = None
        else:
            block = _first_block(ground_truth, "tool_call")
            parsed = None if block is None else parse_tool_calls(block)
        if parsed is None:
            what = "a block" if rules == "toolrl" else "a complete block"
            raise ValueError(
                f"ground truth has a <tool_call> tag but not {what} of JSON calls "
                '({"name": str, "parameters": {...}} one per line): '
                f"{ground_truth[:200]!r}; fix the dataset record"
            )
        calls = tuple(parsed)
    return ToolCallTarget(has_tool_call, has_response, calls)


def _required_tags(ground_truth: str) -> tuple[bool, bool]:
    """(needs a tool-call block, needs a response block) for a ground truth."""
    return "<tool_call>" in ground_truth, "<response>" in ground_truth


# ---------------------------------------------------------------------------------- comparison
def json_equal(a: Any, b: Any) -> bool:
    """Equality of two parsed JSON values, without recursion (deep nesting is fine).

    Booleans only equal booleans; numbers compare by value (``1 == 1.0``); NaN equals nothing.
    """
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, bool) or isinstance(y, bool):
            if not (isinstance(x, bool) and isinstance(y, bool) and x == y):
                return False
        elif isinstance(x, (int, float)) and isinstance(y, (int, float)):
            if x != y:
                return False
        elif isinstance(x, str) or isinstance(y, str):
            if not (isinstance(x, str) and isinstance(y, str) and x == y):
                return False
        elif x is None or y is None:
            if not (x is None and y is None):
                return False
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif isinstance(x, dict) and isinstance(y, dict):
            if x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        else:
            return False
    return True


def multiset_similarity(a: Iterable[Hashable], b: Iterable[Hashable]) -> float:
    """|A and B| / (|A| + |B| - |A and B|) for multisets A, B: 1 if equal, 0 if one is empty."""
    ca, cb = Counter(a), Counter(b)
    if ca == cb:
        return 1.0
    size_a, size_b = sum(ca.values()), sum(cb.values())
    if size_a == 0 or size_b == 0:
        return 0.0
    common = sum((ca & cb).values())
    return common / (size_a + size_b - common)


def _parameter_match_score(predicted: Sequence[Any], target: Sequence[dict],
                           key_similarity, values_equal) -> tuple[float, float]:
    """The per-call part of ToolRL's partial-match score (rlla.py lines 146-192), shared by both
    rule sets: for each target call, the best unused predicted call with the same name, scored as
    key similarity + number of target parameters whose value it matches (used only when it scores
    above 0; ties go to the earliest). Returns (sum of the chosen scores, sum of (1 + #params))."""
    score, score_max = 0.0, 0.0
    used: set[int] = set()
    for want in target:
        want_params = want["parameters"]
        score_max += 1.0 + len(want_params)
        best_score, best_index = 0.0, -1
        for index, got in enumerate(predicted):
            if index in used or got["name"] != want["name"]:
                continue
            got_params = got["parameters"]
            value_matches = sum(1 for key, value in want_params.items()
                                if key in got_params and values_equal(got_params[key], value))
            candidate = key_similarity(list(want_params.keys()), list(got_params.keys())) + value_matches
            if candidate > best_score:
                best_score, best_index = candidate, index
        # ToolRL tests the chosen call's truthiness (line 190): a dict with "name" is always truthy
        if best_index >= 0:
            used.add(best_index)
            score += best_score
    return score, score_max


def tool_call_score(predicted: Sequence[dict], target: Sequence[dict]) -> tuple[float, float]:
    """The strict rules' partial-match score (S, S_max) of predicted calls against target calls.

    S = name similarity + sum over target calls of the best unused predicted call with the same
    name, scored as key-set similarity + number of target parameters whose value it matches
    (JSON equality; a predicted call is only used when it scores above 0; ties go to the earliest);
    S_max = 1 + sum over target calls of (1 + number of its parameters).
    """
    names = multiset_similarity([c["name"] for c in predicted], [c["name"] for c in target])
    score, score_max = _parameter_match_score(predicted, target, multiset_similarity, json_equal)
    return names + score, 1.0 + score_max


def toolrl_match_score(a: Sequence[Any], b: Sequence[Any]) -> float:
    """ToolRL's ``match_score`` (rlla.py lines 21-40, REFINEDREWARD off): 1 if the lists are equal
    (``==``, order included); 0 if either is empty; else |A and B| / (|A| + |B| - |A and B|) of
    the multisets (raises TypeError for unhashable items, as ``Counter`` does)."""
    if a == b:
        return 1.0
    if len(a) == 0 or len(b) == 0:
        return 0.0
    common = sum((Counter(a) & Counter(b)).values())
    return common / (len(a) + len(b) - common)  # > 0: both lists are non-empty


def toolrl_tool_call_score(predicted: Sequence[Any], target: Sequence[dict]) -> tuple[float, float]:
    """ToolRL's partial-match score (S, S_max) (rlla.py lines 142-192, INTERMEDIATEREWARD off).

    Same arithmetic as :func:`tool_call_score` but on ToolRL's terms: ``predicted`` are any JSON
    values, values match by Python ``==``, and whatever ToolRL's code would raise on (a call that
    is not an object or has no "name", an unhashable name, a same-name call whose "parameters" is
    missing or not an object) raises here too.
    """
    names = toolrl_match_score([want["name"] for want in target], [got["name"] for got in predicted])
    score, score_max = _parameter_match_score(predicted, target, toolrl_match_score, lambda a, b: a == b)
    return names + score, 1.0 + score_max


# ---------------------------------------------------------------------------------- rewards
def format_reward(completion: str, ground_truth: str, rules: str = DEFAULT_RULES) -> float:
    """1.0 if the completion has the structure the ground truth implies, else 0.0.

    ``toolrl`` (rlla.py lines 73-92): which tags the ground truth contains (``<tool_call>``,
    ``<response>``) picks the pattern ``^<think>.*?</think>`` + ``\\n<tool_call>\\n.*?\\n</tool_call>``
    (if a tool call) + ``\\n<response>.*?</response>`` (if a response) + ``$`` (``.`` matching new
    lines, ``re.search``), and the opening and closing tags of exactly those blocks must each
    occur once; nothing else is checked. ``strict``: see below. A completion that is not a
    string scores 0.
    """
    if check_rules(rules, "format_reward") == "toolrl":
        if not isinstance(completion, str):
            return FORMAT_MIN
        return _toolrl_format(strip_chat_markup(completion), *_required_tags(ground_truth))
    return _strict_format_reward(completion, ground_truth)


def _toolrl_format(text: str, needs_call: bool, needs_response: bool) -> float:
    counted = [tag for tag, needed in (("tool_call", needs_call), ("response", needs_response)) if needed]
    if any(text.count(f"<{tag}>") != 1 or text.count(f"</{tag}>") != 1 for tag in counted):
        return FORMAT_MIN
    return FORMAT_MAX if _TOOLRL_FORMAT_PATTERNS[needs_call, needs_response].search(text) else FORMAT_MIN


def _strict_format_reward(completion: str, ground_truth: str) -> float:
    """``strict``: 1.0 if the completion has exactly the structure the ground truth implies.

    The structure: ``<think>...</think>``, then on new lines a ``<tool_call>`` block (content on
    its own lines, one JSON object per line) if the ground truth has a tool call, then a
    ``<response>...</response>`` block if the ground truth has one; each tag exactly once, the
    tags the ground truth does not have never, and nothing else around (the completion is
    compared after :func:`strip_chat_markup`). A completion that is not a string scores 0.
    """
    if not isinstance(completion, str):
        return FORMAT_MIN
    needs_call, needs_response = _required_tags(ground_truth)
    text = strip_chat_markup(completion)
    required = {"think": True, "tool_call": needs_call, "response": needs_response}
    for tag in _TAGS:
        expected = 1 if required[tag] else 0
        if text.count(f"<{tag}>") != expected or text.count(f"</{tag}>") != expected:
            return FORMAT_MIN
    match = _FORMAT_PATTERNS[needs_call, needs_response].fullmatch(text)
    if match is None:
        return FORMAT_MIN
    if needs_call and any(_load_json_object(line) is None for line in match.group("calls").split("\n")):
        return FORMAT_MIN
    return FORMAT_MAX


def _format_pattern(with_call: bool, with_response: bool) -> re.Pattern:
    pattern = r"<think>.*?</think>"
    if with_call:
        pattern += r"\n<tool_call>\n(?P<calls>.*?)\n</tool_call>"
    if with_response:
        pattern += r"\n<response>.*?</response>"
    return re.compile(pattern, re.DOTALL)


_FORMAT_PATTERNS = {(c, r): _format_pattern(c, r) for c in (False, True) for r in (False, True)}
# ToolRL's anchored patterns: "^" only at the start (no MULTILINE), "$" at the end or before a final "\n"
_TOOLRL_FORMAT_PATTERNS = {key: re.compile("^" + pattern.pattern + "$", re.DOTALL) for key, pattern in _FORMAT_PATTERNS.items()}


def correctness_reward(completion: str, ground_truth: str, rules: str = DEFAULT_RULES) -> float:
    """Tool-call correctness in [-3, 3].

    ``toolrl`` (rlla.py lines 224-249, 131-198): ground truth without ``<tool_call>``: 0; a
    completion without both ``<tool_call>`` and ``</tool_call>``: -3; else the block
    :func:`toolrl_block` is split into lines, each ``json.loads``-ed; the list equal (``==``) to
    the ground truth's: 3; else 6 * S / S_max - 3 with (S, S_max) from
    :func:`toolrl_tool_call_score`; anything raising on the way: -3.

    ``strict``:

    - ground truth without a tool call: 0;
    - completion without a complete ``<tool_call>...</tool_call>`` block (the first one counts),
      or with a line in it that is not ``{"name": str, "parameters": {...}}``: -3;
    - predicted call list equal to the ground truth's (order included): 3;
    - otherwise 6 * S / S_max - 3 with (S, S_max) from :func:`tool_call_score`.

    Raises ValueError only for a malformed ground truth (see :func:`parse_ground_truth`).
    """
    target = parse_ground_truth(ground_truth, rules)
    if target.calls is None:
        return 0.0
    if rules == "toolrl":
        if not isinstance(completion, str):
            return CORRECTNESS_MIN
        return _toolrl_correctness(strip_chat_markup(completion), list(target.calls))
    return _strict_correctness(completion, target)


def _toolrl_correctness(text: str, target: list[dict]) -> float:
    try:  # ToolRL's bare except (line 246) turns every failure into the minimum
        block = toolrl_block(text)
        if block is None:
            return CORRECTNESS_MIN
        predicted = toolrl_parse_lines(block)
        if predicted == target:  # line 132: Python equality of the two lists
            return CORRECTNESS_MAX
        score, score_max = toolrl_tool_call_score(predicted, target)
    except Exception:  # noqa: BLE001  (KeyError, TypeError, AttributeError, ValueError, RecursionError, ...)
        return CORRECTNESS_MIN
    return (CORRECTNESS_MAX - CORRECTNESS_MIN) * score / score_max + CORRECTNESS_MIN  # line 198


def _strict_correctness(completion: str, target: ToolCallTarget) -> float:
    if target.calls is None:
        return 0.0
    if not isinstance(completion, str):
        return CORRECTNESS_MIN
    block = _first_block(strip_chat_markup(completion), "tool_call")
    predicted = None if block is None else parse_tool_calls(block)
    if predicted is None:
        return CORRECTNESS_MIN
    if json_equal(predicted, list(target.calls)):
        return CORRECTNESS_MAX
    score, score_max = tool_call_score(predicted, target.calls)
    return (CORRECTNESS_MAX - CORRECTNESS_MIN) * score / score_max + CORRECTNESS_MIN


# ---------------------------------------------------------------------------------- registry
def ground_truth_of(record: Any, index: int, reward_name: str) -> str:
    """``record["ground_truth"]`` as a string, or a ValueError that says what is wrong."""
    if not isinstance(record, dict) or not isinstance(record.get("ground_truth"), str):
        got = type(record).__name__ if not isinstance(record, dict) else f"keys {sorted(record)}"
        raise ValueError(
            f"reward {reward_name!r}: record {index} has no string 'ground_truth' (got {got}); "
            "every dataset record must carry the target text under 'ground_truth'"
        )
    return record["ground_truth"]


class GroundTruthReward(Reward):
    """A reward of (completion, record["ground_truth"]); checks the records before scoring."""

    def _check_records(self, records: Sequence[Any]) -> None:
        for index, record in enumerate(records):
            ground_truth_of(record, index, self.name)

    def check_record(self, record: Any) -> None:
        ground_truth_of(record, 0, self.name)

    def __call__(self, completions: Sequence[str], records: Sequence[dict]) -> list[float]:
        """Score completions[i] against records[i]["ground_truth"]; len(completions) floats.

        Raises ValueError for records without a string ground truth (a data error)."""
        self._check_records(records)
        return super().__call__(completions, records)


def _rules_option(reward_name: str, config: dict) -> str:
    """The ``rules`` option of a tool-call reward (default ``toolrl``); no other option exists."""
    options = dict(config)
    rules = options.pop("rules", DEFAULT_RULES)
    if options:
        raise ValueError(
            f"{reward_name} takes only the option 'rules' ({' or '.join(map(repr, RULES))}), got unknown options {sorted(options)}"
        )
    return check_rules(rules, reward_name)


class _ToolCallReward(GroundTruthReward):
    """A tool-call reward: the ``rules`` option, and records whose ground truth must parse."""

    def __init__(self, **config: Any):
        self.rules = _rules_option(self.name, config)
        super().__init__(rules=self.rules)

    def check_record(self, record: Any) -> None:
        parse_ground_truth(ground_truth_of(record, 0, self.name), self.rules)


@REWARDS.register("toolcall_format", aliases=("toolrl_format",))
class ToolCallFormatReward(_ToolCallReward):
    """:func:`format_reward` of each completion against record["ground_truth"]; {0, 1}."""

    name = "toolcall_format"
    min = FORMAT_MIN
    max = FORMAT_MAX

    def _score_one(self, completion: str, record: dict) -> float:
        return format_reward(completion, record["ground_truth"], self.rules)


@REWARDS.register("toolcall_correctness", aliases=("toolrl_correctness",))
class ToolCallCorrectnessReward(_ToolCallReward):
    """:func:`correctness_reward` of each completion against record["ground_truth"]; [-3, 3]."""

    name = "toolcall_correctness"
    min = CORRECTNESS_MIN
    max = CORRECTNESS_MAX

    def _check_records(self, records: Sequence[Any]) -> None:
        for index, record in enumerate(records):
            ground_truth = ground_truth_of(record, index, self.name)
            try:
                parse_ground_truth(ground_truth, self.rules)
            except ValueError as exc:
                raise ValueError(f"reward {self.name!r}: record {index} (id={record.get('id')!r}): {exc}") from None

    def _score_one(self, completion: str, record: dict) -> float:
        return correctness_reward(completion, record["ground_truth"], self.rules)
