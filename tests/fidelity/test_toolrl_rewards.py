"""Fidelity of ``rules="toolrl"`` to ToolRL's reward code, rule by rule.

Reference: github.com/qiancheng0/ToolRL, ``verl/utils/reward_score/rlla.py`` at commit
8cee13ec0ca72f0461da372a93a6fd8140dbb840 ("rlla.py" below; line numbers are that file's).
Its environment switches (REFINEDREWARD, COARSEREWARD, INTERMEDIATEREWARD, SCHEDULEREWARD,
MAX1STEP30MAX3, CORRECTMAX1) are off, as in its default runs; format range [0, 1] and
correctness range [-3, 3] (rlla.py lines 282-286).

Every expected value below was worked out by hand from those lines (the arithmetic is in the
comments); none was produced by running either implementation. Where ``strict`` differs, its
value is given too.
"""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards import build_reward
from rewards.toolcall import correctness_reward, format_reward, parse_ground_truth


def line(name, **params):
    return json.dumps({"name": name, "parameters": params})


def calls_text(*lines, think="t", response=None):
    text = f"<think>{think}</think>\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"
    return text if response is None else text + f"\n<response>{response}</response>"


F_A1 = line("f", a=1)
GT_F_A1 = calls_text(F_A1)
GT_RESPONSE = "<think>t</think>\n<response>Hello there</response>"
GT_BOTH = calls_text(F_A1, response="Done")
GT_THINK = "<think>t</think>"


def both(completion, ground_truth, reward=correctness_reward):
    return reward(completion, ground_truth, rules="toolrl"), reward(completion, ground_truth, rules="strict")


# ============================================================================ format (lines 73-92)
@pytest.mark.parametrize(
    "completion, ground_truth, toolrl, strict",
    [
        # --- ground truth with <response> and no <tool_call>: lines 75-78, pattern
        #     ^<think>.*?</think>\n<response>.*?</response>$ and one <response>, one </response>
        ("<think>a</think>\n<response>hi</response>", GT_RESPONSE, 1.0, 1.0),
        # <tool_call> tags are not counted on this branch (line 77 counts only response tags)
        ("<think>a</think>\n<response>wrap calls in <tool_call></tool_call></response>", GT_RESPONSE, 1.0, 0.0),
        # two response blocks: the pattern matches (.*? spans "x</response>\n<response>y") but
        # response.count("<response>") == 2 (line 77)
        ("<think>a</think>\n<response>x</response>\n<response>y</response>", GT_RESPONSE, 0.0, 0.0),
        # a tool-call block before the response: "</think>\n<response>" never occurs -> no match
        (f"<think>a</think>\n<tool_call>\n{F_A1}\n</tool_call>\n<response>x</response>", GT_RESPONSE, 0.0, 0.0),
        # --- ground truth with <tool_call> and no <response>: lines 79-82, pattern
        #     ^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>$ and one of each tool_call tag
        (f"<think>a</think>\n<tool_call>\n{F_A1}\n</tool_call>", GT_F_A1, 1.0, 1.0),
        # a non-JSON line inside the block: lines 80-81 never parse the block
        ("<think>a</think>\n<tool_call>\nplease call f with a=1\n</tool_call>", GT_F_A1, 1.0, 0.0),
        # an empty block: "\n.*?\n" matches the two new lines; strict wants a JSON object per line
        ("<think>a</think>\n<tool_call>\n\n</tool_call>", GT_F_A1, 1.0, 0.0),
        # a second think block: <think> is never counted; the first .*? spans "a</think><think>b"
        (f"<think>a</think><think>b</think>\n<tool_call>\n{F_A1}\n</tool_call>", GT_F_A1, 1.0, 0.0),
        # a stray <think> inside think: not counted (strict counts <think> == 2 -> 0)
        (f"<think>a <think> b</think>\n<tool_call>\n{F_A1}\n</tool_call>", GT_F_A1, 1.0, 0.0),
        # a stray <response> inside think: response tags are not counted on this branch
        (f"<think>no <response> yet</think>\n<tool_call>\n{F_A1}\n</tool_call>", GT_F_A1, 1.0, 0.0),
        # a stray <tool_call> inside think: response.count("<tool_call>") == 2 (line 81)
        (f"<think>use <tool_call></think>\n<tool_call>\n{F_A1}\n</tool_call>", GT_F_A1, 0.0, 0.0),
        # a response after the block: the text must end with </tool_call> ($, line 80)
        (f"<think>a</think>\n<tool_call>\n{F_A1}\n</tool_call>\n<response>x</response>", GT_F_A1, 0.0, 0.0),
        # text before <think>: ^ (line 80)
        (f"ok <think>a</think>\n<tool_call>\n{F_A1}\n</tool_call>", GT_F_A1, 0.0, 0.0),
        # no new line between </think> and <tool_call>
        (f"<think>a</think><tool_call>\n{F_A1}\n</tool_call>", GT_F_A1, 0.0, 0.0),
        # --- ground truth with both: lines 83-86, the two patterns joined, all four tags once
        (calls_text(F_A1, response="ok"), GT_BOTH, 1.0, 1.0),
        (calls_text("not json", think="a<think>b", response="ok"), GT_BOTH, 1.0, 0.0),
        (f"<think>a</think>\n<tool_call>\n{F_A1}\n</tool_call>", GT_BOTH, 0.0, 0.0),  # no response block
        (f"<think>a</think>\n<response>ok</response>\n<tool_call>\n{F_A1}\n</tool_call>", GT_BOTH, 0.0, 0.0),  # order
        # --- ground truth with neither: lines 87-90, ^<think>.*?</think>$ and no count at all
        ("<think>a</think>", GT_THINK, 1.0, 1.0),
        ("<think>a</think><think>b</think>", GT_THINK, 1.0, 0.0),
        ("<think>a</think>\n<response>x</response></think>", GT_THINK, 1.0, 0.0),
        ("<think>a</think>\n<response>x</response>", GT_THINK, 0.0, 0.0),
        ("<think>a", GT_THINK, 0.0, 0.0),
        # the reward compares the completion after strip_chat_markup (ToolRL strips it too, line 273)
        ("<|im_start|>assistant\n<think>a</think><|im_end|>\n", GT_THINK, 1.0, 1.0),
    ],
)
def test_format_rules(completion, ground_truth, toolrl, strict):
    assert both(completion, ground_truth, format_reward) == (toolrl, strict)
    assert format_reward(completion, ground_truth) == toolrl  # toolrl is the default


# ============================================================================ correctness
def test_ground_truth_without_tool_call_scores_zero():
    # lines 225-233: reward stays 0.0 whatever the completion, for a response-only or think-only truth
    for completion in ("", "garbage", GT_F_A1, "<tool_call>\nnot json\n</tool_call>"):
        assert both(completion, GT_RESPONSE) == (0.0, 0.0)
        assert both(completion, GT_THINK) == (0.0, 0.0)


def test_ground_truth_with_tool_call_and_response():
    # lines 83-86 for the format; lines 235-237 read only the ground truth's tool-call block
    completion = calls_text(F_A1, response="anything else")
    assert both(completion, GT_BOTH, format_reward) == (1.0, 1.0)
    assert both(completion, GT_BOTH) == (3.0, 3.0)  # line 132: [f(a=1)] == [f(a=1)]
    # the format rule wants the response; correctness does not look at it
    assert both(GT_F_A1, GT_BOTH, format_reward) == (0.0, 0.0)
    assert both(GT_F_A1, GT_BOTH) == (3.0, 3.0)


def test_missing_closing_tag_scores_min():
    # line 242: assert "</tool_call>" in response fails -> except (line 246) -> -3
    assert both(f"<think>a</think>\n<tool_call>\n{F_A1}", GT_F_A1) == (-3.0, -3.0)
    # line 241: no opening tag
    assert both(f"<think>a</think>\n{F_A1}\n</tool_call>", GT_F_A1) == (-3.0, -3.0)


def test_closing_tag_before_opening_tag_reads_to_the_end():
    # lines 241-243: both tags occur; split("<tool_call>")[1] is "\n{f(a=1)}" which has no
    # "</tool_call>", so split("</tool_call>")[0] keeps it all: [f(a=1)] == ground truth -> 3
    completion = f"<think>a</think>\n</tool_call>\n<tool_call>\n{F_A1}"
    assert both(completion, GT_F_A1) == (3.0, -3.0)
    # the same with trailing text that is not JSON: line 244 json.loads fails -> -3
    assert both(completion + "\nbye", GT_F_A1) == (-3.0, -3.0)


def test_second_opening_tag_ends_the_block():
    # line 243: split("<tool_call>")[1] stops at the second <tool_call>: the block is f(a=1) alone
    completion = f"<think>a</think>\n<tool_call>\n{F_A1}\n<tool_call>\n{line('g')}\n</tool_call>"
    # strict reads up to the first </tool_call>: the line "<tool_call>" is not JSON -> -3
    assert both(completion, GT_F_A1) == (3.0, -3.0)


def test_true_equals_one():
    gt = calls_text(line("f", a=True))
    # line 132: [{"name": "f", "parameters": {"a": 1}}] == [{..., {"a": True}}] is True in Python
    # strict: key sim 1, value wrong: S = 1 + 1 = 2 of S_max = 1 + (1 + 1) = 3 -> 6 * 2/3 - 3 = 1
    toolrl, strict = both(calls_text(line("f", a=1)), gt)
    assert toolrl == 3.0 and strict == pytest.approx(1.0, abs=1e-12)
    # line 181 inside the partial score: gt f(a=True, b=2), predicted f(a=1, b=3):
    # names 1 (line 23); keys [a, b] == [a, b] -> 1; values: 1 == True counts, 3 != 2 -> 1
    # S = 1 + (1 + 1) = 3; S_max = 1 + (1 + 2) = 4 (line 157) -> 6 * 3/4 - 3 = 1.5 (line 198)
    # strict: 0 values -> S = 2 -> 6 * 2/4 - 3 = 0
    assert both(calls_text(line("f", a=1, b=3)), calls_text(line("f", a=True, b=2))) == (1.5, 0.0)
    # 0 == False as well
    assert both(calls_text(line("f", a=0)), calls_text(line("f", a=False)))[0] == 3.0


def test_nan_matches_only_inside_containers():
    # json returns one shared NaN object; list/dict equality compares items by identity first
    nan_gt = calls_text('{"name": "f", "parameters": {"a": NaN, "b": 1}}')
    # line 132: the call lists are equal (identity of the NaN) -> 3
    assert both('<think>x</think>\n<tool_call>\n{"name": "f", "parameters": {"a": NaN, "b": 1}}\n</tool_call>', nan_gt)[0] == 3.0
    # with b wrong: line 181 compares NaN == NaN directly -> False; keys 1; S = 1 + 1 = 2 of 4 -> 0
    pred = '<think>x</think>\n<tool_call>\n{"name": "f", "parameters": {"a": NaN, "b": 2}}\n</tool_call>'
    assert both(pred, nan_gt) == (0.0, 0.0)
    # a NaN inside a list value: [NaN] == [NaN] -> True; S = 1 + (1 + 1) = 3 of 4 -> 1.5; strict 0
    list_gt = calls_text('{"name": "f", "parameters": {"a": [NaN], "b": 1}}')
    pred = '<think>x</think>\n<tool_call>\n{"name": "f", "parameters": {"a": [NaN], "b": 2}}\n</tool_call>'
    assert both(pred, list_gt) == (1.5, 0.0)


def test_non_json_or_malformed_lines_fall_into_the_catch_all():
    # line 244 json.loads raises / line 143 tool["name"] raises / line 177 KeyError /
    # line 178 .keys() on a non-object -> bare except (line 246) -> -3 under both rules
    for lines in (["not json"], [""], [F_A1, "", F_A1], ['"f"'], ["[1]"], ['{"parameters": {"a": 1}}'],
                  ['{"name": "f"}'], ['{"name": "f", "parameters": [1]}'], ["[" * 5000 + "]" * 5000]):
        assert both(calls_text(*lines), GT_F_A1) == (-3.0, -3.0), lines
    # an empty block: "" after strip(), json.loads("") raises (line 244)
    assert both("<think>a</think>\n<tool_call>\n\n</tool_call>", GT_F_A1) == (-3.0, -3.0)


def test_calls_toolrl_never_looks_at_only_lower_the_score():
    # gt [f(a=1)], predicted [f(a=1), X] where X is no {"name": str, "parameters": {...}} call:
    # names [f] vs [f, X]: 1 / (1 + 2 - 1) = 0.5 (lines 37-40); gt f takes predicted f: keys 1 +
    # values 1 = 2; X's name is not "f" so line 165 skips it before line 177 reads its parameters.
    # S = 0.5 + 2 = 2.5, S_max = 1 + (1 + 1) = 3 -> 6 * 2.5/3 - 3 = 2; strict: -3
    for extra in ('{"name": "g"}', '{"name": 3, "parameters": {}}', '{"name": "g", "parameters": [1]}',
                  '{"name": null, "parameters": "x"}'):
        toolrl, strict = both(calls_text(F_A1, extra), GT_F_A1)
        assert toolrl == pytest.approx(2.0, abs=1e-12) and strict == -3.0, extra


def test_calls_toolrl_breaks_on_score_min():
    # a same-name call without parameters: gt f examines every unused f (line 165), so
    # pd_tool["parameters"] (line 177) raises KeyError after f(a=1) scored -> -3
    assert both(calls_text(F_A1, '{"name": "f"}'), GT_F_A1) == (-3.0, -3.0)
    # an unhashable name: Counter(list2) in match_score (line 35) raises TypeError -> -3
    assert both(calls_text(F_A1, '{"name": ["g"], "parameters": {}}'), GT_F_A1) == (-3.0, -3.0)


def test_partial_parameter_matches_give_fractional_scores():
    # one call, keys {a, b} vs {a, b, d}: 2 / (2 + 3 - 2) = 2/3 (lines 37-40); values: a -> 1
    # S = 1 + 2/3 + 1 = 8/3; S_max = 1 + (1 + 2) = 4 -> 6 * (8/3) / 4 - 3 = 1
    gt = calls_text(line("f", a=1, b=2))
    assert correctness_reward(calls_text(line("f", a=1, b=5, d=0)), gt) == pytest.approx(1.0, abs=1e-12)
    # gt [f(a=1), g(x="u", y="v")], predicted [g(x="u", y="w")]: names [f, g] vs [g] -> 1/2;
    # gt f: no f; gt g: keys 1 + values 1 (x) = 2. S = 2.5; S_max = 1 + 2 + 3 = 6 -> -0.5
    gt = calls_text(F_A1, line("g", x="u", y="v"))
    assert correctness_reward(calls_text(line("g", x="u", y="w")), gt) == pytest.approx(-0.5, abs=1e-12)
    # gt [f(a=1), g()], predicted [f(a=1), f(a=1)]: names [f, g] vs [f, f]: common 1 -> 1/3;
    # gt f: both predictions score 2, the first is kept (line 185: strictly greater);
    # gt g: none. S = 1/3 + 2 = 7/3; S_max = 1 + 2 + 1 = 4 -> 6 * (7/3) / 4 - 3 = 0.5
    gt = calls_text(F_A1, line("g"))
    assert correctness_reward(calls_text(F_A1, F_A1), gt) == pytest.approx(0.5, abs=1e-12)
    # gt g(), predicted g(x=1): keys [] vs [x] -> 0 (line 31); no values -> 0, not > 0 (line 185):
    # unmatched. S = 1 (names); S_max = 1 + 1 = 2 -> 0
    assert correctness_reward(calls_text(line("g", x=1)), calls_text(line("g"))) == 0.0


def test_equal_empty_parameter_lists_and_extra_call_keys():
    # gt [g()], predicted [{"name": "g", "parameters": {}, "id": 1}]: not equal (line 132, extra key);
    # names 1; keys [] == [] -> 1.0 (line 23); S = 1 + 1 = 2 = S_max -> 3
    assert both(calls_text('{"name": "g", "parameters": {}, "id": 1}'), calls_text(line("g"))) == (3.0, 3.0)


def test_order_of_calls_and_scaling():
    # line 132 compares lists in order: [g, f] != [f, g]; the partial score still reaches S_max:
    # names 1; f: 1 + 1; g: 1 + 1 -> S = 5 = S_max = 1 + 2 + 2 -> 3 (line 198)
    gt = calls_text(line("f", a=1), line("g", b=2))
    assert correctness_reward(calls_text(line("g", b=2), line("f", a=1)), gt) == 3.0
    # a wrong name only: S = 0 -> 6 * 0 / S_max - 3 = -3
    assert correctness_reward(calls_text(line("h", a=1)), gt) == -3.0


def test_ground_truth_block_is_cut_like_a_completion():
    # line 235: the ground truth's block runs to the end when its closing tag is missing
    gt = "<think>t</think>\n<tool_call>\n" + F_A1
    assert correctness_reward(calls_text(F_A1), gt) == 3.0
    with pytest.raises(ValueError, match="not a complete block"):
        correctness_reward(calls_text(F_A1), gt, rules="strict")
    # line 237 raises outside the try for a non-JSON ground-truth line: here a ValueError (dataset error)
    with pytest.raises(ValueError, match="fix the dataset record"):
        parse_ground_truth("<think>t</think>\n<tool_call>\nnot json\n</tool_call>")


# ============================================================================ properties
TAGS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<response>", "</response>", "\n", " "]
LINES = [F_A1, line("f", a=True), line("g"), line("f", a=1, b=[1, 2]), '{"name": "f"}', '{"name": 3, "parameters": {}}',
         '{"name": ["f"], "parameters": {}}', '{"name": "f", "parameters": [1]}', "[1]", "NaN", "not json", ""]
text = st.lists(st.one_of(st.sampled_from(TAGS), st.sampled_from(LINES), st.text(max_size=6)), max_size=15).map("".join)
value = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.floats(allow_nan=False), st.text(max_size=3),
                  st.lists(st.integers(-2, 2), max_size=2))
call = st.fixed_dictionaries({"name": st.sampled_from("fgh"), "parameters": st.dictionaries(st.sampled_from("abc"), value, max_size=3)})


@st.composite
def ground_truth(draw):
    gt = "<think>t</think>"
    if draw(st.booleans()):
        gt += "\n<tool_call>\n" + "\n".join(json.dumps(c) for c in draw(st.lists(call, min_size=1, max_size=3))) + "\n</tool_call>"
    if draw(st.booleans()):
        gt += "\n<response>r</response>"
    return gt


@settings(max_examples=300, deadline=None)
@given(st.lists(text, min_size=1, max_size=3), ground_truth(), st.sampled_from(["toolrl", "strict"]))
def test_range_is_respected_for_both_rule_sets(completions, gt, rules):
    records = [{"ground_truth": gt}] * len(completions)
    for name, allowed in (("toolcall_format", {0.0, 1.0}), ("toolcall_correctness", None)):
        reward = build_reward(name, rules=rules)
        values = reward(completions, records)
        assert reward.failures == 0
        for v in values:
            assert isinstance(v, float) and not math.isnan(v) and reward.min <= v <= reward.max
            assert allowed is None or v in allowed


@settings(max_examples=300, deadline=None)
@given(st.lists(call, min_size=1, max_size=3), ground_truth(), st.sampled_from(["toolrl", "strict"]),
       st.sampled_from(["", "x", "<think>", "\n"]))
def test_range_with_well_formed_calls(pred_calls, gt, rules, think):
    completion = calls_text(*(json.dumps(c) for c in pred_calls), think=think)
    value = correctness_reward(completion, gt, rules)
    assert -3.0 <= value <= 3.0
    assert value == 0.0 or "<tool_call>" in gt


@settings(max_examples=300, deadline=None)
@given(text, ground_truth())
def test_strict_format_implies_toolrl_format(completion, gt):
    # strict adds conditions to ToolRL's (tag counts, JSON lines, whole-text match)
    if format_reward(completion, gt, "strict") == 1.0:
        assert format_reward(completion, gt, "toolrl") == 1.0


@settings(max_examples=300, deadline=None)
@given(st.lists(call, min_size=1, max_size=3), st.lists(call, min_size=1, max_size=3))
def test_rules_agree_on_well_formed_calls_without_booleans(pred_calls, gt_calls):
    # without booleans (and NaN) Python == and JSON equality agree, so the scores must too
    def no_bool(c):
        return not any(isinstance(v, bool) or (isinstance(v, list) and any(isinstance(x, bool) for x in v))
                       for v in c["parameters"].values())

    pred_calls = [c for c in pred_calls if no_bool(c)] or [{"name": "h", "parameters": {}}]
    gt_calls = [c for c in gt_calls if no_bool(c)] or [{"name": "f", "parameters": {}}]
    completion = calls_text(*(json.dumps(c) for c in pred_calls))
    gt = calls_text(*(json.dumps(c) for c in gt_calls))
    toolrl, strict = both(completion, gt)
    assert toolrl == strict
