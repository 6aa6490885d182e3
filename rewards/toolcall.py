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

- :func:`format_reward` in {0, 1}: the completion has exactly the block structure the ground truth
  implies.
- :func:`correctness_reward` in [-3, 3]: how well the predicted calls match the ground truth's
  (function names, parameter names, parameter values).

Where this differs from ToolRL's code (numbered so that reports can cite them):

1. A call must be a JSON object whose "name" is a string and whose "parameters" is an object;
   anything else makes the whole prediction invalid (-3). ToolRL crashes into its catch-all
   with the same result for most such cases.
2. Parameter values are compared as JSON values: ``true`` differs from ``1`` (Python's ``==``,
   which ToolRL uses, says ``True == 1``); ``1`` equals ``1.0``.
3. The correctness reward needs a complete ``<tool_call> ... </tool_call>`` block; ToolRL reads
   to the end of the text when the closing tag is missing.
4. The format reward also requires every line of the tool-call block to be a JSON object.
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


@dataclass(frozen=True)
class ToolCallTarget:
    """What a ground truth asks for: which blocks, and the calls (None without a tool call)."""

    has_tool_call: bool
    has_response: bool
    calls: tuple[dict, ...] | None


@lru_cache(maxsize=65536)
def parse_ground_truth(ground_truth: str) -> ToolCallTarget:
    """Parse a ToolRL-format ground truth (cached; do not mutate the returned calls).

    Raises ValueError when the ground truth has a ``<tool_call>`` tag but no well-formed block
    of calls: that is a dataset error, not a model error.
    """
    if not isinstance(ground_truth, str):
        raise ValueError(f"ground truth must be a string, got {type(ground_truth).__name__}")
    has_tool_call = "<tool_call>" in ground_truth
    has_response = "<response>" in ground_truth
    calls = None
    if has_tool_call:
        block = _first_block(ground_truth, "tool_call")
        parsed = None if block is None else parse_tool_calls(block)
        if parsed is None:
            raise ValueError(
                "ground truth has a <tool_call> tag but not a complete block of JSON calls "
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


def tool_call_score(predicted: Sequence[dict], target: Sequence[dict]) -> tuple[float, float]:
    """ToolRL's partial-match score (S, S_max) of predicted calls against target calls.

    S = name similarity + sum over target calls of the best unused predicted call with the same
    name, scored as key-set similarity + number of target parameters whose value it matches
    (a predicted call is only used when it scores above 0; ties go to the earliest);
    S_max = 1 + sum over target calls of (1 + number of its parameters).
    """
    score = multiset_similarity([c["name"] for c in predicted], [c["name"] for c in target])
    score_max = 1.0
    used: set[int] = set()
    for want in target:
        want_params = want["parameters"]
        score_max += 1.0 + len(want_params)
        best_score, best_index = 0.0, -1
        for index, got in enumerate(predicted):
            if index in used or got["name"] != want["name"]:
                continue
            got_params = got["parameters"]
            value_matches = sum(
                1 for key, value in want_params.items() if key in got_params and json_equal(got_params[key], value)
            )
            candidate = multiset_similarity(want_params.keys(), got_params.keys()) + value_matches
            if candidate > best_score:
                best_score, best_index = candidate, index
        if best_index >= 0:
            used.add(best_index)
            score += best_score
    return score, score_max


# ---------------------------------------------------------------------------------- rewards
def format_reward(completion: str, ground_truth: str) -> float:
    """1.0 if the completion has exactly the structure the ground truth implies, else 0.0.

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


def correctness_reward(completion: str, ground_truth: str) -> float:
    """ToolRL's tool-call correctness in [-3, 3].

    - ground truth without a tool call: 0;
    - completion without a complete ``<tool_call>...</tool_call>`` block (the first one counts),
      or with a line in it that is not ``{"name": str, "parameters": {...}}``: -3;
    - predicted call list equal to the ground truth's (order included): 3;
    - otherwise 6 * S / S_max - 3 with (S, S_max) from :func:`tool_call_score`.

    Raises ValueError only for a malformed ground truth (see :func:`parse_ground_truth`).
    """
    target = parse_ground_truth(ground_truth)
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

    def __call__(self, completions: Sequence[str], records: Sequence[dict]) -> list[float]:
        """Score completions[i] against records[i]["ground_truth"]; len(completions) floats.

        Raises ValueError for records without a string ground truth (a data error)."""
        self._check_records(records)
        return super().__call__(completions, records)


@REWARDS.register("toolcall_format", aliases=("toolrl_format",), task="toolcall")
class ToolCallFormatReward(GroundTruthReward):
    """:func:`format_reward` of each completion against record["ground_truth"]; {0, 1}."""

    name = "toolcall_format"
    min = FORMAT_MIN
    max = FORMAT_MAX

    def __init__(self, **config: Any):
        if config:
            raise ValueError(f"toolcall_format takes no options, got {sorted(config)}")
        super().__init__()

    def _score_one(self, completion: str, record: dict) -> float:
        return format_reward(completion, record["ground_truth"])


@REWARDS.register("toolcall_correctness", aliases=("toolrl_correctness",), task="toolcall")
class ToolCallCorrectnessReward(GroundTruthReward):
    """:func:`correctness_reward` of each completion against record["ground_truth"]; [-3, 3]."""

    name = "toolcall_correctness"
    min = CORRECTNESS_MIN
    max = CORRECTNESS_MAX

    def __init__(self, **config: Any):
        if config:
            raise ValueError(f"toolcall_correctness takes no options, got {sorted(config)}")
        super().__init__()

    def _check_records(self, records: Sequence[Any]) -> None:
        for index, record in enumerate(records):
            ground_truth = ground_truth_of(record, index, self.name)
            try:
                parse_ground_truth(ground_truth)
            except ValueError as exc:
                raise ValueError(f"reward {self.name!r}: record {index} (id={record.get('id')!r}): {exc}") from None

    def _score_one(self, completion: str, record: dict) -> float:
        return correctness_reward(completion, record["ground_truth"])
