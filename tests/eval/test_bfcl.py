"""BFCL scoring: decoding our tool-call text, the real bfcl-eval checker on real entries,
the stand-in import, and BFCL's aggregation computed by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest

from eval import bfcl
from eval.bfcl import (
    ToolCallDecodeError,
    aggregate_runs,
    check_completion,
    decode_tool_calls,
    live_accuracy,
    non_live_accuracy,
    overall_accuracy,
)
from saw.tasks.toolcall import bfcl_to_record, load_bfcl_category


# ----------------------------------------------------------------------------- decoding
def toolrl(*calls: dict, think: str = "I should call it.") -> str:
    lines = "\n".join(json.dumps(c) for c in calls)
    return f"<think> {think} </think>\n<tool_call>\n{lines}\n</tool_call>"


@pytest.mark.parametrize("text, expected", [
    (toolrl({"name": "f", "parameters": {"a": 1}}), [{"f": {"a": 1}}]),
    (toolrl({"name": "f", "parameters": {"a": 1}}, {"name": "g.h", "parameters": {}}),
     [{"f": {"a": 1}}, {"g.h": {}}]),
    # chat markup around the answer is ignored
    ("<|im_start|>assistant\n" + toolrl({"name": "f", "parameters": {"x": [1, 2]}}) + "<|im_end|>",
     [{"f": {"x": [1, 2]}}]),
    # Qwen's native style: one block per call, "arguments"
    ('<tool_call>\n{"name": "f", "arguments": {"a": "b"}}\n</tool_call>\n'
     '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>', [{"f": {"a": "b"}}, {"g": {}}]),
    # blank lines inside the block are skipped; a missing closing tag reads to the end
    ('<tool_call>\n\n{"name": "f", "parameters": {"a": true}}\n\n', [{"f": {"a": True}}]),
    # no tool call at all: no calls
    ("<think> no tool fits </think>\n<response> sorry </response>", []),
    ("", []),
])
def test_decode_tool_calls(text, expected):
    assert decode_tool_calls(text) == expected


@pytest.mark.parametrize("text", [
    "<tool_call>\nf(a=1)\n</tool_call>",                                   # not JSON
    '<tool_call>\n["f", {"a": 1}]\n</tool_call>',                          # not an object
    '<tool_call>\n{"function": "f", "parameters": {}}\n</tool_call>',      # no "name"
    '<tool_call>\n{"name": 3, "parameters": {}}\n</tool_call>',            # name not a string
    '<tool_call>\n{"name": "f", "parameters": [1]}\n</tool_call>',         # parameters not an object
    '<tool_call>\n{"name": "f"}\n</tool_call>',                            # no parameters
    '<tool_call>\n{"name": "f", "parameters": {"a": 1}\n</tool_call>',     # truncated JSON
])
def test_decode_rejects_bad_lines(text):
    with pytest.raises(ToolCallDecodeError):
        decode_tool_calls(text)
    res = check_completion(text, [{"name": "f", "parameters": {"type": "dict", "properties": {}, "required": []}}],
                           [{"f": {}}], "simple_python")
    assert not res.valid and res.error_type == "ast_decoder:decoder_failed"


# ----------------------------------------------------------------------------- the real checker
CATEGORIES = bfcl.NON_LIVE_PYTHON_CATEGORIES + bfcl.LIVE_CATEGORIES  # Python answers (Java/JS: test_oracle_*)


OMIT = object()


def first_acceptable(values: list):
    """The first acceptable value that is not BFCL's "optional" marker "", resolved recursively;
    OMIT when there is none."""
    for v in values:
        if isinstance(v, str) and v == "":
            continue
        return resolve(v)
    return OMIT


def resolve(value):
    if isinstance(value, dict):
        out = {}
        for k, vs in value.items():
            picked = first_acceptable(vs) if isinstance(vs, list) else resolve(vs)
            if picked is not OMIT:
                out[k] = picked
        return out
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def answer_calls(possible_answer: list[dict], functions: list[dict]) -> list[dict]:
    """Ground-truth calls from BFCL's possible answer (our own reading): a parameter whose
    acceptable values include "" (optional) is left out unless the function doc requires it;
    otherwise it gets its first acceptable value other than ""."""
    required = {f["name"]: set(f["parameters"].get("required", [])) for f in functions}
    calls = []
    for call in possible_answer:
        (name, params), = call.items()
        chosen = {}
        for key, values in params.items():
            optional = any(isinstance(v, str) and v == "" for v in values)
            if optional and key not in required.get(name, set()):
                continue
            value = first_acceptable(values)
            if value is not OMIT:
                chosen[key] = value
        calls.append({"name": name, "parameters": chosen})
    return calls


def is_unsolvable(possible_answer: list[dict], functions: list[dict]) -> bool:
    """A few BFCL entries no output can pass: a parameter with no acceptable value ([]), a
    parameter the function doc requires whose only acceptable value is "" (omitted), or a
    mandatory answer parameter the function doc does not declare."""
    required = {f["name"]: set(f["parameters"].get("required", [])) for f in functions}
    declared = {f["name"]: set(f["parameters"].get("properties", {})) for f in functions}
    for call in possible_answer:
        (name, params), = call.items()
        for key, values in params.items():
            if len(values) == 0:
                return True
            if key not in declared.get(name, set()) and "" not in values:
                return True
            if key in required.get(name, set()) and all(isinstance(v, str) and v == "" for v in values):
                return True
    return False


@pytest.fixture(scope="module")
def bfcl_pairs():
    return {cat: load_bfcl_category(cat) for cat in CATEGORIES}


def test_ground_truth_scores_correct_on_every_entry(bfcl_pairs):
    """The first acceptable values of BFCL's own possible answers pass BFCL's own checker, on all
    entries of the eight categories (except the few with an empty acceptable list, which nothing
    can pass)."""
    checked, unsolvable = 0, []
    for cat, pairs in bfcl_pairs.items():
        for q, a in pairs:
            text = toolrl(*answer_calls(a["ground_truth"], q["function"]))
            res = check_completion(text, q["function"], a["ground_truth"], cat)
            if is_unsolvable(a["ground_truth"], q["function"]):
                unsolvable.append(q["id"])
                assert not res.valid, q["id"]
                continue
            assert res.valid, (q["id"], res.error_type, res.errors)
            checked += 1
    assert checked == 2351 - len(unsolvable)
    assert sorted(unsolvable) == ["live_multiple_507-149-4", "live_multiple_862-181-3", "live_multiple_964-207-0",
                                  "live_simple_106-63-0", "live_simple_112-68-0"]


def _mutate_first_value(calls: list[dict]) -> list[dict] | None:
    """Copy of ``calls`` with one scalar parameter value changed to something no answer accepts."""
    calls = json.loads(json.dumps(calls))
    for call in calls:
        for key, value in call["parameters"].items():
            if isinstance(value, bool):
                call["parameters"][key] = not value
            elif isinstance(value, (int, float)):
                call["parameters"][key] = value + 987654
            elif isinstance(value, str):
                call["parameters"][key] = value + " zzqx wrong"
            else:
                continue
            return calls
    return None


def test_wrong_answers_score_wrong(bfcl_pairs):
    """A changed value, a renamed function, a dropped or an extra call are all rejected."""
    for cat, pairs in bfcl_pairs.items():
        for q, a in pairs[:25]:
            gt = a["ground_truth"]
            if is_unsolvable(gt, q["function"]):
                continue
            calls = answer_calls(gt, q["function"])
            mutated = _mutate_first_value(calls)
            if mutated is not None:
                res = check_completion(toolrl(*mutated), q["function"], gt, cat)
                assert not res.valid, (q["id"], mutated)
            renamed = [dict(c, name=c["name"] + "_x") for c in calls]
            assert not check_completion(toolrl(*renamed), q["function"], gt, cat).valid
            assert not check_completion(toolrl(*calls, calls[0]), q["function"], gt, cat).valid
            if len(calls) > 1:
                assert not check_completion(toolrl(*calls[:-1]), q["function"], gt, cat).valid
            assert not check_completion("<think> hmm </think>", q["function"], gt, cat).valid


def test_known_entry_by_hand():
    """simple_python_0 (hypotenuse of a 5/10 triangle): the exact call is valid, order of
    parameters is free, a wrong number is wrong, an unknown parameter is wrong."""
    q, a = next((q, a) for q, a in load_bfcl_category("simple_python") if q["id"] == "simple_python_0")
    (name, params), = a["ground_truth"][0].items()
    assert name == "calculate_triangle_area" and params["base"] == [10] and params["height"] == [5]
    ok = toolrl({"name": name, "parameters": {"height": 5, "base": 10}})
    assert check_completion(ok, q["function"], a["ground_truth"], "simple_python").valid
    with_unit = toolrl({"name": name, "parameters": {"base": 10, "height": 5, "unit": "units"}})
    assert check_completion(with_unit, q["function"], a["ground_truth"], "simple_python").valid
    bad = toolrl({"name": name, "parameters": {"base": 10, "height": 6}})
    res = check_completion(bad, q["function"], a["ground_truth"], "simple_python")
    assert not res.valid and res.error_type == "value_error:others"
    extra = toolrl({"name": name, "parameters": {"base": 10, "height": 5, "colour": "red"}})
    res = check_completion(extra, q["function"], a["ground_truth"], "simple_python")
    assert not res.valid and res.error_type == "simple_function_checker:unexpected_param"


def test_dotted_function_names_are_kept():
    """With our model entry (underscore_to_dot False) a dotted name must be written with its dot."""
    q, a = next((q, a) for q, a in load_bfcl_category("simple_python")
                if "." in next(iter(a["ground_truth"][0])) and not is_unsolvable(a["ground_truth"], q["function"]))
    calls = answer_calls(a["ground_truth"], q["function"])
    assert check_completion(toolrl(*calls), q["function"], a["ground_truth"], "simple_python").valid
    underscored = [dict(c, name=c["name"].replace(".", "_")) for c in calls]
    assert not check_completion(toolrl(*underscored), q["function"], a["ground_truth"], "simple_python").valid


def test_records_from_the_task_score_through_check_records():
    """Records built by saw.tasks.toolcall carry what the checker needs."""
    pairs = load_bfcl_category("parallel")[:5]
    records = [bfcl_to_record(q, a, "parallel") for q, a in pairs]
    texts = [toolrl(*answer_calls(a["ground_truth"], q["function"])) for q, a in pairs]
    assert all(r.valid for r in bfcl.check_records(texts, records))
    assert not any(r.valid for r in bfcl.check_records(["nothing"] * 5, records))
    with pytest.raises(ValueError, match="not a BFCL record"):
        bfcl.check_records(["x"], [{"id": "a", "extra_info": {}}])


def test_task_ground_truth_mostly_passes_the_checker(bfcl_pairs):
    """The task's own ground-truth text (its SFT target) is scored valid by BFCL on nearly every
    entry; the rest are entries where the task's convention omits a parameter BFCL requires."""
    valid = total = 0
    for cat, pairs in bfcl_pairs.items():
        records = [bfcl_to_record(q, a, cat) for q, a in pairs]
        results = bfcl.check_records([r["ground_truth"] for r in records], records)
        valid += sum(r.valid for r in results)
        total += len(results)
    assert total == 2351 and valid / total > 0.98


def test_unsupported_category_is_rejected():
    with pytest.raises(ValueError, match="multi-turn"):
        check_completion("", [], [], "multi_turn_base")
    with pytest.raises(ValueError, match="decoder"):
        check_completion("", [], [], "simple_python", decoder="lenient")


def test_checker_exception_makes_sample_invalid():
    """A parameter type the checker does not know raises inside it: invalid, not a crash."""
    functions = [{"name": "f", "parameters": {"type": "dict", "properties": {"a": {"type": "no-such-type"}},
                                               "required": ["a"]}}]
    res = check_completion(toolrl({"name": "f", "parameters": {"a": 1}}), functions, [{"f": {"a": [1]}}],
                           "simple_python")
    assert not res.valid and res.error_type == "checker_exception"


# ----------------------------------------------------------------------------- the stand-in import
def _run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_stand_in_is_removed_after_import():
    """Importing the checker leaves no stand-in behind, and the real module is still what a
    plain import would give (here: an ImportError for the missing model handlers)."""
    out = _run_python("""
        import sys
        from eval.bfcl import load_ast_checker, CHECKER_MODEL_NAME
        m = load_ast_checker()
        assert CHECKER_MODEL_NAME in m.MODEL_CONFIG_MAPPING
        assert m.MODEL_CONFIG_MAPPING[CHECKER_MODEL_NAME].underscore_to_dot is False
        assert "bfcl_eval.constants.model_config" not in sys.modules
        import bfcl_eval.constants as c
        assert not hasattr(c, "model_config")
        assert load_ast_checker() is m
        try:
            import bfcl_eval.constants.model_config
            print("real-import-ok")
        except ImportError:
            print("real-import-fails")
    """)
    assert out.strip() in ("real-import-ok", "real-import-fails")


def test_real_model_config_is_used_when_already_imported():
    out = _run_python("""
        import sys, types
        real = types.ModuleType("bfcl_eval.constants.model_config")
        real.MODEL_CONFIG_MAPPING = {"other": types.SimpleNamespace(underscore_to_dot=True)}
        sys.modules["bfcl_eval.constants.model_config"] = real
        from eval.bfcl import load_ast_checker, CHECKER_MODEL_NAME
        m = load_ast_checker()
        assert m.MODEL_CONFIG_MAPPING is real.MODEL_CONFIG_MAPPING
        assert sorted(real.MODEL_CONFIG_MAPPING) == sorted(["other", CHECKER_MODEL_NAME])
        assert sys.modules["bfcl_eval.constants.model_config"] is real
        print("ok")
    """)
    assert out.strip() == "ok"


# ----------------------------------------------------------------------------- aggregation
def test_non_live_is_unweighted_mean_of_groups():
    acc = {"simple_python": 0.5, "simple_java": 0.1, "simple_javascript": 0.3, "multiple": 0.25, "parallel": 1.0,
           "parallel_multiple": 0.0}
    # BFCL's simple group is the unweighted mean of the three languages
    assert non_live_accuracy(acc) == pytest.approx(((0.5 + 0.1 + 0.3) / 3 + 0.25 + 1.0 + 0.0) / 4)
    assert non_live_accuracy({k: v for k, v in acc.items() if k != "parallel"}) is None
    assert non_live_accuracy({k: v for k, v in acc.items() if k != "simple_java"}) is None


def test_multi_turn_is_unweighted_mean():
    acc = {"multi_turn_base": 0.5, "multi_turn_miss_func": 0.25, "multi_turn_miss_param": 0.0,
           "multi_turn_long_context": 1.0}
    assert bfcl.multi_turn_accuracy(acc) == pytest.approx(1.75 / 4)
    assert bfcl.multi_turn_accuracy({"multi_turn_base": 1.0}) is None


def test_live_is_weighted_by_category_size():
    sizes = {"live_simple": 258, "live_multiple": 1053, "live_parallel": 16, "live_parallel_multiple": 24}
    acc = {"live_simple": 0.5, "live_multiple": 0.2, "live_parallel": 1.0, "live_parallel_multiple": 0.0}
    expected = (0.5 * 258 + 0.2 * 1053 + 1.0 * 16 + 0.0 * 24) / (258 + 1053 + 16 + 24)
    assert live_accuracy(acc, sizes) == pytest.approx(expected)
    assert live_accuracy({"live_simple": 1.0}, sizes) is None


def test_category_sizes_match_the_data_files():
    sizes = bfcl.bfcl_category_sizes()
    assert sizes == {c: len(load_bfcl_category(c)) for c in bfcl.SINGLE_TURN_CATEGORIES} | {
        c: 200 for c in bfcl.MULTI_TURN_CATEGORIES}
    assert sizes["simple_python"] == 400 and sizes["live_multiple"] == 1053
    # the paper's Non-Live count; Live = BFCL's four live AST categories
    assert sum(sizes[c] for c in bfcl.NON_LIVE_CATEGORIES) == 1150
    assert sum(sizes[c] for c in bfcl.LIVE_CATEGORIES) == 1351


def test_overall_needs_all_three():
    assert overall_accuracy(0.3, 0.6, 0.0) == pytest.approx(0.3)
    assert overall_accuracy(0.3, 0.6, None) is None


def test_aggregate_runs_by_hand():
    """Two runs over the Non-Live, Live and Multi-Turn categories; every number recomputed by hand."""
    sizes = {"simple_python": 4, "simple_java": 1, "simple_javascript": 1, "multiple": 2, "parallel": 2,
             "parallel_multiple": 2, "live_simple": 3, "live_multiple": 1, "live_parallel": 1,
             "live_parallel_multiple": 1}
    T, F = True, False
    valid = {
        "simple_python": [[T, T, F, F], [T, F, F, F]],   # 0.5, 0.25
        "simple_java": [[T], [F]],                       # 1, 0
        "simple_javascript": [[F], [F]],                 # 0, 0
        "multiple": [[T, T], [T, F]],                    # 1.0, 0.5
        "parallel": [[F, F], [F, F]],                    # 0, 0
        "parallel_multiple": [[T, F], [T, F]],           # 0.5, 0.5
        "live_simple": [[T, T, F], [T, F, F]],           # 2/3, 1/3
        "live_multiple": [[T], [F]],                     # 1, 0
        "live_parallel": [[F], [F]],                     # 0, 0
        "live_parallel_multiple": [[T], [T]],            # 1, 1
        "multi_turn_base": [[T, F], [T, T]],             # 0.5, 1
        "multi_turn_miss_func": [[F], [F]],              # 0, 0
        "multi_turn_miss_param": [[T], [F]],             # 1, 0
        "multi_turn_long_context": [[T, T], [F, T]],     # 1, 0.5
        "irrelevance": [[T, F], [T, T]],                 # 0.5, 1 (extra column only)
    }
    out = aggregate_runs(valid, sizes, formatted=[1, 0, 1, 1])
    nl = [((0.5 + 1 + 0) / 3 + 1.0 + 0 + 0.5) / 4, ((0.25 + 0 + 0) / 3 + 0.5 + 0 + 0.5) / 4]
    lv = [(2 / 3 * 3 + 1 + 0 + 1) / 6, (1 / 3 * 3 + 0 + 0 + 1) / 6]
    mt = [(0.5 + 0 + 1 + 1) / 4, (1 + 0 + 0 + 0.5) / 4]
    m = out["metrics"]
    assert m["non_live"] == pytest.approx(sum(nl) / 2)
    assert m["live"] == pytest.approx(sum(lv) / 2)
    assert m["multi_turn"] == pytest.approx(sum(mt) / 2)
    overall = [(a + b + c) / 3 for a, b, c in zip(nl, lv, mt)]
    assert m["overall"] == pytest.approx(sum(overall) / 2)
    assert out["metrics_std"]["overall"] == pytest.approx(abs(overall[0] - overall[1]) / math.sqrt(2))
    assert m["overall_without_multi_turn"] == pytest.approx((sum(nl) / 2 + sum(lv) / 2) / 2)
    assert m["irrelevance"] == pytest.approx(0.75)
    assert m["format_rate"] == pytest.approx(0.75)
    assert out["metrics_std"]["non_live"] == pytest.approx(abs(nl[0] - nl[1]) / math.sqrt(2))
    assert out["per_category"]["simple_python"] == {
        "accuracy": 0.375, "accuracy_std": pytest.approx(0.25 / math.sqrt(2)), "accuracy_runs": [0.5, 0.25], "n": 4}
    assert [r["live"] for r in out["runs"]] == pytest.approx(lv)
    # without Multi-Turn there is no Overall
    partial = aggregate_runs({c: v for c, v in valid.items() if not c.startswith("multi_turn")}, sizes)
    assert partial["metrics"]["multi_turn"] is None and partial["metrics"]["overall"] is None


def test_aggregate_runs_rejects_ragged_input():
    with pytest.raises(ValueError, match="same number"):
        aggregate_runs({"simple_python": [[True]], "multiple": [[True], [False]]}, {})


# ----------------------------------------------------------------------------- ToolRL's decoder
@pytest.mark.parametrize("text, expected", [
    # only the last <tool_call> block counts
    ('<tool_call>\n{"name": "a", "parameters": {}}\n</tool_call>\n<tool_call>\n{"name": "b", "parameters": {"x": 1}}\n'
     '</tool_call>', [{"b": {"x": 1}}]),
    # a line that does not parse is skipped, the others kept
    ('<tool_call>\n{"name": "f", "parameters": {"a": 1}}\nf(a=2)\n{"name": "g", "parameters": {}}\n</tool_call>',
     [{"f": {"a": 1}}, {"g": {}}]),
    # lines without "name" / "parameters" are skipped
    ('<tool_call>\n{"name": "f"}\n{"function": "g", "parameters": {}}\n{"name": "h", "parameters": {}}\n</tool_call>',
     [{"h": {}}]),
    # a call named None (any case) is dropped
    ('<tool_call>\n{"name": "None", "parameters": {}}\n{"name": " none ", "parameters": {}}\n</tool_call>', []),
    # no <tool_call>: no call; an unclosed block reads to the end
    ("<think> x </think>\n<response> no </response>", []),
    ('<tool_call>\n{"name": "f", "parameters": {"a": [1]}}', [{"f": {"a": [1]}}]),
])
def test_toolrl_decoder(text, expected):
    assert bfcl.decode_tool_calls_toolrl(text) == expected
    assert bfcl.decode(text, "toolrl") == expected


def test_toolrl_decoder_versus_strict_on_the_checker():
    """The same answer: valid under toolrl (bad line skipped), decoder_failed under strict."""
    functions = [{"name": "f", "parameters": {"type": "dict", "properties": {"a": {"type": "integer"}},
                                              "required": ["a"]}}]
    text = '<tool_call>\n{"name": "f", "parameters": {"a": 1}}\nnot json\n</tool_call>'
    assert check_completion(text, functions, [{"f": {"a": [1]}}], "simple_python", "toolrl").valid
    res = check_completion(text, functions, [{"f": {"a": [1]}}], "simple_python", "strict")
    assert res.error_type == "ast_decoder:decoder_failed"
    # parameters that are not an object: BFCL's format check
    res = check_completion('<tool_call>\n{"name": "f", "parameters": [1]}\n</tool_call>', functions,
                           [{"f": {"a": [1]}}], "simple_python", "toolrl")
    assert res.error_type == "ast_decoder:decoder_wrong_output_format"


def test_decode_execute_renders_python_calls():
    text = '<tool_call>\n{"name": "cd", "parameters": {"folder": "a b"}}\n{"name": "None", "parameters": {}}\n' \
           '{"name": "ls", "parameters": {"a": true, "n": [1, 2]}}\n</tool_call>'
    assert bfcl.decode_execute(text, "toolrl") == ["cd(folder='a b')", "ls(a=True, n=[1, 2])"]
    with pytest.raises(ToolCallDecodeError):
        bfcl.decode_execute('<tool_call>\n{"name": "f", "parameters": [1]}\n</tool_call>', "toolrl")


def test_relevance_checks():
    call = '<tool_call>\n{"name": "f", "parameters": {}}\n</tool_call>'
    assert check_completion(call, [], [], "live_relevance", "toolrl").valid
    assert not check_completion("<response> no </response>", [], [], "live_relevance", "toolrl").valid
    assert check_completion("<response> no </response>", [], [], "irrelevance", "toolrl").valid
    res = check_completion(call, [], [], "live_irrelevance", "toolrl")
    assert not res.valid and res.error_type == "irrelevance_error:decoder_success"


def test_java_and_javascript_oracle_answers():
    """Java/JS values must be Java/JS literals in strings: the oracle writes them so and BFCL's
    language checkers accept them; the Python-valued ground truth is a type error."""
    for cat, q_id in (("simple_java", "simple_java_1"), ("simple_javascript", "simple_javascript_0")):
        q, a = next((q, a) for q, a in load_bfcl_category(cat) if q["id"] == q_id)
        rec = bfcl_to_record(q, a, cat, "toolrl")
        text = bfcl.oracle_completion(rec)
        assert check_completion(text, q["function"], a["ground_truth"], cat, "toolrl").valid, text
        res = check_completion(rec["ground_truth"], q["function"], a["ground_truth"], cat, "toolrl")
        assert not res.valid and res.error_type.startswith("type_error")
    q, a = next((q, a) for q, a in load_bfcl_category("simple_java") if q["id"] == "simple_java_1")
    params = json.loads(bfcl.oracle_completion(bfcl_to_record(q, a, "simple_java")).split("\n")[2])["parameters"]
    assert params["useShortName"] == "true" and params["object"] == "Customers"
