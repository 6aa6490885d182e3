"""Tool-call rewards: hand-computed values, for both rule sets where they agree and for ``strict``
where it is stricter (ToolRL's own rules, case by case: tests/fidelity/test_toolrl_rewards.py)."""

import json

import pytest

from rewards import build_reward
from rewards.toolcall import (
    ToolCallCorrectnessReward,
    ToolCallFormatReward,
    correctness_reward,
    format_reward,
    json_equal,
    multiset_similarity,
    parse_ground_truth,
    tool_call_score,
)


def call(name, **params):
    return {"name": name, "parameters": params}


def tool_text(calls, think="reasoning", response=None, raw_lines=None):
    """A ToolRL-format text with the given calls (dicts) or raw lines in the tool-call block."""
    lines = raw_lines if raw_lines is not None else [json.dumps(c) for c in calls]
    text = f"<think>{think}</think>"
    if lines is not None and (calls or raw_lines is not None):
        text += "\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"
    if response is not None:
        text += f"\n<response>{response}</response>"
    return text


GT_ONE = tool_text([call("f", a=1, b=2)])
BOTH_RULES = pytest.mark.parametrize("rules", ["toolrl", "strict"])


# ------------------------------------------------------------------------------ similarity
@pytest.mark.parametrize(
    "a, b, expected",
    [
        (["f"], ["f"], 1.0),
        ([], [], 1.0),
        (["f"], [], 0.0),
        ([], ["f"], 0.0),
        (["f"], ["g"], 0.0),
        (["f", "g"], ["f"], 1 / 2),  # |A&B| = 1, |A| + |B| - 1 = 2
        (["f", "f", "g"], ["f", "g", "g"], 2 / 4),  # common {f, g} = 2; 3 + 3 - 2 = 4
        (["a", "b"], ["a", "c"], 1 / 3),
        (["f", "g"], ["g", "f"], 1.0),  # order does not matter
    ],
)
def test_multiset_similarity(a, b, expected):
    assert multiset_similarity(a, b) == expected


def test_json_equal_rules():
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal(True, 1) and not json_equal(1, True) and not json_equal(0, False)
    assert not json_equal("1", 1)
    assert not json_equal([1, 2], [2, 1])
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal(float("nan"), float("nan"))
    deep_a = deep_b = 1
    for _ in range(50_000):  # far deeper than Python's recursion limit
        deep_a, deep_b = [deep_a], [deep_b]
    assert json_equal(deep_a, deep_b)


# ------------------------------------------------------------------------------ correctness
@BOTH_RULES
def test_issue_example_name_right_one_of_two_values_right(rules):
    # name score 1, key-set sim 1, 1 value match -> S = 1 + (1 + 1) = 3; S_max = 1 + (1 + 2) = 4
    completion = tool_text([call("f", a=1, b=3)])
    assert tool_call_score([call("f", a=1, b=3)], [call("f", a=1, b=2)]) == (3.0, 4.0)
    assert correctness_reward(completion, GT_ONE, rules=rules) == 6 * 3 / 4 - 3 == 1.5


@BOTH_RULES
def test_exact_match_is_max_even_with_other_key_order_and_think(rules):
    completion = '<think>other thoughts</think>\n<tool_call>\n{"parameters": {"b": 2, "a": 1}, "name": "f"}\n</tool_call>'
    assert correctness_reward(completion, GT_ONE, rules=rules) == 3.0
    assert correctness_reward(GT_ONE, GT_ONE, rules=rules) == 3.0


@BOTH_RULES
def test_same_calls_in_other_order_reach_max_through_partial_score(rules):
    gt = tool_text([call("f", a=1), call("g", b=2)])
    # not equal as lists; S = 1 + (1 + 1) + (1 + 1) = 5 = S_max -> 3
    assert correctness_reward(tool_text([call("g", b=2), call("f", a=1)]), gt, rules=rules) == 3.0


@BOTH_RULES
def test_wrong_function_name_is_min(rules):
    # name sim 0, no same-name call -> S = 0 -> -3
    assert correctness_reward(tool_text([call("h", a=1, b=2)]), GT_ONE, rules=rules) == -3.0


@BOTH_RULES
def test_extra_call_lowers_name_score(rules):
    gt = tool_text([call("f", a=1)])
    # name sim {f,g} vs {f} = 1/2; f matches fully: 1 + 1; S = 2.5, S_max = 1 + (1 + 1) = 3
    assert correctness_reward(tool_text([call("f", a=1), call("g")]), gt, rules=rules) == pytest.approx(6 * 2.5 / 3 - 3, abs=1e-12)
    assert 6 * 2.5 / 3 - 3 == 2.0


@BOTH_RULES
def test_missing_and_extra_parameter(rules):
    # key sim {a,b} vs {a,c} = 1/3; 1 value right -> S = 1 + 1/3 + 1 = 7/3; S_max = 4 -> 0.5
    value = correctness_reward(tool_text([call("f", a=1, c=5)]), GT_ONE, rules=rules)
    assert value == pytest.approx(0.5, abs=1e-12)


@BOTH_RULES
def test_duplicate_names_are_matched_greedily_in_ground_truth_order(rules):
    gt = tool_text([call("f", a=1), call("f", a=2)])
    # names {f,f} vs {f}: 1 / (2 + 1 - 1) = 0.5. gt f(a=1) takes the only f (key sim 1, 0 values);
    # gt f(a=2) finds no unused call. S = 0.5 + 1 = 1.5; S_max = 1 + 2 + 2 = 5 -> 6*1.5/5 - 3
    assert correctness_reward(tool_text([call("f", a=2)]), gt, rules=rules) == pytest.approx(-1.2, abs=1e-12)


@BOTH_RULES
def test_each_predicted_call_is_used_once_and_best_is_chosen(rules):
    gt = tool_text([call("f", a=1, b=2), call("f", a=3, b=4)])
    pred = tool_text([call("f", a=3, b=4), call("f", a=1, b=0)])
    # gt1 best: pred1 (1 + 1 = 2) over pred0 (1 + 0); gt2 takes pred0 (1 + 2 = 3)
    # S = 1 + 2 + 3 = 6; S_max = 1 + 3 + 3 = 7
    assert correctness_reward(pred, gt, rules=rules) == pytest.approx(6 * 6 / 7 - 3, abs=1e-12)


def test_boolean_does_not_equal_number_under_strict():
    gt = tool_text([call("f", a=True)])
    # key sim 1, value wrong: S = 1 + 1 = 2; S_max = 1 + (1 + 1) = 3 -> 1
    assert correctness_reward(tool_text([call("f", a=1)]), gt, rules="strict") == pytest.approx(1.0, abs=1e-12)
    assert correctness_reward(tool_text([call("f", a=1.0)]), tool_text([call("f", a=1)]), rules="strict") == 3.0
    # ToolRL compares with Python's ==: True == 1, so the lists are equal -> 3
    assert correctness_reward(tool_text([call("f", a=1)]), gt, rules="toolrl") == 3.0
    assert correctness_reward(tool_text([call("f", a=1)]), gt) == 3.0  # toolrl is the default


@BOTH_RULES
def test_parameterless_calls(rules):
    gt = tool_text([call("g")])
    assert correctness_reward(tool_text([call("g")]), gt, rules=rules) == 3.0
    # same name, key sim ({} vs {x}) 0, 0 values: the call scores 0 -> S = 1, S_max = 2 -> 0
    assert correctness_reward(tool_text([call("g", x=1)]), gt, rules=rules) == 0.0


@BOTH_RULES
def test_ground_truth_without_tool_call_gives_zero(rules):
    gt = "<think>just talk</think>\n<response>Hello!</response>"
    assert correctness_reward(tool_text([call("f", a=1)]), gt, rules=rules) == 0.0
    assert correctness_reward("garbage", gt, rules=rules) == 0.0
    assert correctness_reward(gt, gt, rules=rules) == 0.0


@pytest.mark.parametrize(
    "completion",
    [
        "<think>no call</think>\n<response>done</response>",  # no block
        '<think>x</think>\n<tool_call>\n{"name": "f", "parameters": {"a": 1, "b": 2}}',  # unclosed
        '<think>x</think>\n</tool_call>\n{"name": "f", "parameters": {"a": 1, "b": 2}}\n<tool_call>',  # reversed
        tool_text(None, raw_lines=["not json"]),
        tool_text(None, raw_lines=['[{"name": "f", "parameters": {}}]']),  # array, not object
        tool_text(None, raw_lines=['{"name": "f"}']),  # no parameters
        tool_text(None, raw_lines=['{"parameters": {"a": 1}}']),  # no name
        tool_text(None, raw_lines=['{"name": "f", "parameters": [1, 2]}']),  # parameters not an object
        tool_text(None, raw_lines=['{"name": 3, "parameters": {}}']),  # name not a string (toolrl: no name matches, S = 0)
        tool_text(None, raw_lines=[""]),  # empty block
        tool_text(None, raw_lines=['{"name": "f", "parameters": {"a": 1, "b": 2}}', "", '{"name": "g", "parameters": {}}']),
        tool_text(None, raw_lines=['{"name": "f", "parameters": {"a": 1, "b": 2}} trailing']),
        tool_text(None, raw_lines=["[" * 10_000 + "]" * 10_000]),  # RecursionError in json.loads
        tool_text(None, raw_lines=['{"name": "f", "parameters": {"a": ' + "[" * 10_000 + "]" * 10_000 + "}}"]),
        tool_text(None, raw_lines=['{"name": "f", "parameters": {"a": ' + "9" * 5_000 + "}}"]),  # int too long
    ],
)
@BOTH_RULES
def test_invalid_predictions_are_min(completion, rules):
    assert correctness_reward(completion, GT_ONE, rules=rules) == -3.0


@BOTH_RULES
def test_first_complete_block_counts_and_chat_markup_is_ignored(rules):
    good = tool_text([call("f", a=1, b=2)])
    assert correctness_reward("<|im_start|>assistant\n" + good + "<|im_end|>", GT_ONE, rules=rules) == 3.0
    assert correctness_reward(good + "\n<tool_call>\nnot json\n</tool_call>", GT_ONE, rules=rules) == 3.0


@BOTH_RULES
def test_malformed_ground_truth_raises_clear_error(rules):
    with pytest.raises(ValueError, match="ground truth has a <tool_call> tag"):
        correctness_reward(GT_ONE, "<think></think>\n<tool_call>\nnot json\n</tool_call>", rules=rules)
    with pytest.raises(ValueError, match="fix the dataset"):
        parse_ground_truth("<think></think>\n<tool_call>\n" + '{"name": "f"}\n</tool_call>', rules)


def test_ground_truth_without_closing_tag():
    unclosed = "<think></think>\n<tool_call>\n" + '{"name": "f", "parameters": {}}'
    with pytest.raises(ValueError, match="not a complete block"):
        parse_ground_truth(unclosed, "strict")
    # ToolRL cuts the ground truth's block up to the end of the text when the closing tag is missing
    assert parse_ground_truth(unclosed, "toolrl").calls == (call("f"),)
    assert parse_ground_truth(unclosed).calls == (call("f"),)


# ------------------------------------------------------------------------------ format
GT_CALL = GT_ONE
GT_RESPONSE = "<think>t</think>\n<response>Hi</response>"
GT_BOTH = GT_ONE + "\n<response>Done</response>"
GT_THINK = "<think>only thinking</think>"
LINE = json.dumps(call("anything", z=[1, 2]))


@pytest.mark.parametrize(
    "completion, ground_truth, strict_expected, toolrl_expected",
    [
        # tool call only
        (f"<think>a</think>\n<tool_call>\n{LINE}\n</tool_call>", GT_CALL, 1.0, 1.0),
        (f"<think></think>\n<tool_call>\n{LINE}\n{LINE}\n</tool_call>", GT_CALL, 1.0, 1.0),
        (f"\n  <think>a</think>\n<tool_call>\n{LINE}\n</tool_call>\n\n", GT_CALL, 1.0, 1.0),  # outer whitespace
        (f"<|im_start|>assistant\n<think>a</think>\n<tool_call>\n{LINE}\n</tool_call><|im_end|>", GT_CALL, 1.0, 1.0),
        (f"<think>a</think>\n<tool_call>\n{LINE}\n</tool_call>\n<response>x</response>", GT_CALL, 0.0, 0.0),
        (f"<tool_call>\n{LINE}\n</tool_call>", GT_CALL, 0.0, 0.0),  # no think
        (f"<think>a</think><tool_call>\n{LINE}\n</tool_call>", GT_CALL, 0.0, 0.0),  # no new line
        (f"<think>a</think>\n<tool_call>{LINE}</tool_call>", GT_CALL, 0.0, 0.0),  # calls not on own lines
        (f"hi <think>a</think>\n<tool_call>\n{LINE}\n</tool_call>", GT_CALL, 0.0, 0.0),  # text before
        (f"<think>a</think>\n<tool_call>\n{LINE}\n</tool_call>\nbye", GT_CALL, 0.0, 0.0),  # text after
        (f"<think>a</think>\n<tool_call>\n{LINE}\n</tool_call>\n<tool_call>\n{LINE}\n</tool_call>", GT_CALL, 0.0, 0.0),
        ("<think>a</think>\n<tool_call>\nnot json\n</tool_call>", GT_CALL, 0.0, 1.0),
        ("<think>a</think>\n<tool_call>\n[1, 2]\n</tool_call>", GT_CALL, 0.0, 1.0),  # not an object
        ("<think>a</think>\n<tool_call>\n" + "[" * 10_000 + "]" * 10_000 + "\n</tool_call>", GT_CALL, 0.0, 1.0),  # RecursionError
        (f"<think>a</think>\n<tool_call>\n{LINE}\n\n{LINE}\n</tool_call>", GT_CALL, 0.0, 1.0),  # blank line
        (f"<think><think>a</think></think>\n<tool_call>\n{LINE}\n</tool_call>", GT_CALL, 0.0, 1.0),  # nested
        ("<think>a</think>", GT_CALL, 0.0, 0.0),
        # response only
        ("<think>a</think>\n<response>Hello</response>", GT_RESPONSE, 1.0, 1.0),
        (f"<think>a</think>\n<tool_call>\n{LINE}\n</tool_call>\n<response>Hello</response>", GT_RESPONSE, 0.0, 0.0),
        ("<think>a</think>\n<response>Hello", GT_RESPONSE, 0.0, 0.0),
        # both
        (f"<think>a</think>\n<tool_call>\n{LINE}\n</tool_call>\n<response>ok</response>", GT_BOTH, 1.0, 1.0),
        (f"<think>a</think>\n<response>ok</response>\n<tool_call>\n{LINE}\n</tool_call>", GT_BOTH, 0.0, 0.0),
        (f"<think>a</think>\n<tool_call>\n{LINE}\n</tool_call>", GT_BOTH, 0.0, 0.0),
        # neither: think only
        ("<think>a</think>", GT_THINK, 1.0, 1.0),
        ("<think>a</think>\nhello", GT_THINK, 0.0, 0.0),
        ("<think>a</think>\n<response>x</response>", GT_THINK, 0.0, 0.0),
        ("", GT_THINK, 0.0, 0.0),
    ],
)
def test_format_reward(completion, ground_truth, strict_expected, toolrl_expected):
    assert format_reward(completion, ground_truth, rules="strict") == strict_expected
    assert format_reward(completion, ground_truth, rules="toolrl") == toolrl_expected
    assert format_reward(completion, ground_truth) == toolrl_expected


# ------------------------------------------------------------------------------ Reward classes
def test_reward_classes_read_ground_truth_and_keep_ranges():
    records = [{"id": "a", "ground_truth": GT_ONE}, {"id": "b", "ground_truth": GT_RESPONSE}]
    completions = [tool_text([call("f", a=1, b=3)]), "<think>a</think>\n<response>x</response>"]
    fmt, corr = ToolCallFormatReward(), ToolCallCorrectnessReward()
    assert (fmt.min, fmt.max, corr.min, corr.max) == (0.0, 1.0, -3.0, 3.0)
    assert fmt(completions, records) == [1.0, 1.0]
    assert corr(completions, records) == [1.5, 0.0]
    assert fmt.failures == corr.failures == 0


def test_reward_classes_reject_bad_records_with_clear_errors():
    with pytest.raises(ValueError, match="record 1 has no string 'ground_truth'"):
        ToolCallFormatReward()(["x", "y"], [{"ground_truth": GT_ONE}, {"prompt": []}])
    with pytest.raises(ValueError, match=r"record 0 \(id='bad'\)"):
        ToolCallCorrectnessReward()(["x"], [{"id": "bad", "ground_truth": "<tool_call>\n{\n</tool_call>"}])
    with pytest.raises(ValueError, match=r"takes only the option 'rules' \('toolrl' or 'strict'\), got unknown options \['strict'\]"):
        ToolCallFormatReward(strict=True)


@pytest.mark.parametrize("name", ["toolcall_format", "toolcall_correctness"])
def test_rules_option(name):
    assert build_reward(name).rules == "toolrl"  # the default: ToolRL's code
    assert build_reward(name, rules="strict").rules == "strict"
    assert build_reward(name, rules="strict").config == {"rules": "strict"}
    for bad in ("ToolRL", "lenient", None, 1):
        with pytest.raises(ValueError, match=rf"{name}: option 'rules' must be one of 'toolrl', 'strict'; got"):
            build_reward(name, rules=bad)
    with pytest.raises(ValueError, match="option 'rules' must be one of 'toolrl', 'strict'; got 'x'"):
        (format_reward if name == "toolcall_format" else correctness_reward)("<think></think>", GT_ONE, rules="x")


def test_rules_option_changes_scores_through_the_reward_classes():
    records = [{"id": "a", "ground_truth": tool_text([call("f", a=True)])}]
    completions = [tool_text(None, raw_lines=['{"name": "f", "parameters": {"a": 1}}', "not json"])]
    # toolrl: the format rule does not parse lines -> 1; strict: a non-JSON line -> 0
    assert ToolCallFormatReward()(completions, records) == [1.0]
    assert ToolCallFormatReward(rules="strict")(completions, records) == [0.0]
    # correctness: "not json" fails json.loads -> -3 under both
    assert ToolCallCorrectnessReward()(completions, records) == [-3.0]
    one = [tool_text([call("f", a=1)])]
    assert ToolCallCorrectnessReward()(one, records) == [3.0]  # True == 1 under toolrl
    assert ToolCallCorrectnessReward(rules="strict")(one, records) == [1.0]  # S = 2 of 3
