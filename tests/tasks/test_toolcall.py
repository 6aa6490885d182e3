"""Tool-calling task: BFCL conversion, ground-truth convention, splits, ToolRL parquet loading."""

from __future__ import annotations

import json
import re

import pytest

from saw.tasks import TaskDataError, build_task
from saw.tasks.toolcall import (
    LIVE_CATEGORIES,
    NON_LIVE_PYTHON_CATEGORIES,
    bfcl_ground_truth_calls,
    bfcl_to_record,
    format_tool_calls,
    load_bfcl_category,
    question_key,
    render_tool_compact,
    tool_system_prompt,
)


@pytest.fixture(scope="module")
def bfcl_task():
    return build_task({"name": "toolcall"})


def by_id(task, record_id):
    for split in ("train", "validation", "test"):
        for rec in task.split(split):
            if rec["id"] == record_id:
                return split, rec
    raise KeyError(record_id)


def parse_calls(ground_truth: str) -> list[dict]:
    """Independent parser of the ground-truth text: think sentence, then one JSON per line."""
    m = re.fullmatch(r"<think> (.+?) </think>\n<tool_call>\n(.*)\n</tool_call>", ground_truth, re.S)
    assert m, ground_truth
    return [json.loads(line) for line in m.group(2).split("\n")]


# ----------------------------------------------------------------------------- ground-truth rules
def test_first_value_and_optional_rule():
    answer = [{"f": {"a": [3, 4], "b": ["", "x"], "c": ["units", ""], "d": [True]}}]
    assert bfcl_ground_truth_calls(answer) == [{"name": "f", "parameters": {"a": 3, "d": True}}]


def test_required_parameter_keeps_a_value_even_if_bfcl_allows_empty():
    answer = [{"f": {"a": ["", "x"], "b": ["", "y"], "c": [""]}}, {"g": {"a": ["", "z"]}}]
    functions = [{"name": "f", "parameters": {"type": "dict", "required": ["a", "c"], "properties": {}}},
                 {"name": "g", "parameters": {"type": "dict", "properties": {}}}]
    assert bfcl_ground_truth_calls(answer, functions) == [{"name": "f", "parameters": {"a": "x"}},
                                                          {"name": "g", "parameters": {}}]


def test_empty_acceptable_list_means_empty_value():
    assert bfcl_ground_truth_calls([{"f": {"xs": []}}]) == [{"name": "f", "parameters": {"xs": []}}]


def test_nested_dict_applies_rule_recursively():
    answer = [{"f": {"body": [{"mode": ["A", "B"], "power": ["", False], "level": [2]}, {"mode": ["C"]}]}}]
    assert bfcl_ground_truth_calls(answer) == [{"name": "f", "parameters": {"body": {"mode": "A", "level": 2}}}]


def test_list_of_dicts_and_plain_nested_values():
    answer = [{"f": {"rows": [[{"name": ["Li"], "age": [18, "18"]}, {"name": ["Jo"], "age": [21]}]],
                     "pos": [{"lat": 1.5, "lon": 2}], "tags": [["a", "b"]]}}]
    assert bfcl_ground_truth_calls(answer) == [{"name": "f", "parameters": {
        "rows": [{"name": "Li", "age": 18}, {"name": "Jo", "age": 21}],
        "pos": {"lat": 1.5, "lon": 2}, "tags": ["a", "b"]}}]


def test_format_tool_calls_text():
    text = format_tool_calls([{"name": "a", "parameters": {"x": 1}}, {"name": "b", "parameters": {}},
                              {"name": "a", "parameters": {"x": 2}}, {"name": "c", "parameters": {"s": "é"}}])
    assert text == ('<think> I should call a, b and c. </think>\n<tool_call>\n'
                    '{"name": "a", "parameters": {"x": 1}}\n{"name": "b", "parameters": {}}\n'
                    '{"name": "a", "parameters": {"x": 2}}\n{"name": "c", "parameters": {"s": "é"}}\n</tool_call>')
    with pytest.raises(ValueError):
        format_tool_calls([])


# ----------------------------------------------------------------------------- real BFCL entries
def test_simple_python_0_exact(bfcl_task):
    split, rec = by_id(bfcl_task, "simple_python_0")
    assert split == "test"
    assert rec["prompt"][1] == {"role": "user", "content":
                                "Find the area of a triangle with a base of 10 units and height of 5 units."}
    assert len(rec["prompt"]) == 2 and rec["prompt"][0]["role"] == "system"
    assert ('- calculate_triangle_area: Calculate the area of a triangle given its base and height. '
            'Parameters: {"base": "integer", "height": "integer", "unit": "string?"}') in rec["prompt"][0]["content"]
    # "unit" accepts "" (optional) -> omitted
    assert rec["ground_truth"] == ('<think> I should call calculate_triangle_area. </think>\n<tool_call>\n'
                                   '{"name": "calculate_triangle_area", "parameters": {"base": 10, "height": 5}}\n'
                                   '</tool_call>')
    assert bfcl_task.sft_target(rec) == rec["ground_truth"]
    info = rec["extra_info"]
    assert info["bfcl_id"] == "simple_python_0" and info["category"] == "simple_python"
    assert info["functions"][0]["name"] == "calculate_triangle_area"
    assert info["possible_answer"] == [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
    assert rec["data_source"] == "bfcl_v4"


def test_parallel_0_two_calls(bfcl_task):
    _, rec = by_id(bfcl_task, "parallel_0")
    assert parse_calls(rec["ground_truth"]) == [
        {"name": "spotify.play", "parameters": {"artist": "Taylor Swift", "duration": 20}},
        {"name": "spotify.play", "parameters": {"artist": "Maroon 5", "duration": 15}},
    ]
    assert rec["ground_truth"].startswith("<think> I should call spotify.play. </think>")


def test_live_nested_and_system_message(bfcl_task):
    split, rec = by_id(bfcl_task, "live_simple_40-17-0")
    assert split in ("train", "validation")
    assert parse_calls(rec["ground_truth"]) == [{"name": "ThinQ_Connect", "parameters": {"body": {
        "airConJobMode": "AIR_CLEAN", "windStrength": "HIGH", "monitoringEnabled": True,
        "airCleanOperationMode": "POWER_ON"}}}]
    _, rec = by_id(bfcl_task, "live_simple_58-27-0")  # has a BFCL system message: merged after ours
    assert [m["role"] for m in rec["prompt"]] == ["system", "user"]
    assert rec["prompt"][0]["content"].startswith("You fulfil the user's request by calling tools.")
    assert rec["prompt"][0]["content"].rstrip().endswith("current date (today's date) in India.")
    assert rec["prompt"][1]["content"] == "list movies in Mumbai?"


def test_every_ground_truth_is_accepted_by_bfcl_answers(bfcl_task):
    """Independent check over all records, with the rules of BFCL's AST checker: each call
    names the answer's function, gives every parameter the doc requires, uses only parameters
    the doc and the answer know, leaves out only parameters whose acceptable values include
    "", and top-level scalar values are acceptable. Only BFCL's own inconsistent entries
    (answer vs docs) may fail, and those are never in train/validation."""
    records = [bfcl_to_record(q, a, cat) for cat in LIVE_CATEGORIES + NON_LIVE_PYTHON_CATEGORIES
               for q, a in load_bfcl_category(cat)]
    assert len(records) == 2351
    failing = set()
    for rec in records:
        calls = parse_calls(rec["ground_truth"])
        info = rec["extra_info"]
        docs = {f["name"]: f for f in info["functions"]}
        assert len(calls) == len(info["possible_answer"])
        for call, answer in zip(calls, info["possible_answer"]):
            (name, acceptable), = answer.items()
            assert call["name"] == name and name in docs, rec["id"]
            schema, given = docs[name]["parameters"], set(call["parameters"])
            if not set(schema.get("required", [])) <= given or not given <= set(schema["properties"]) & set(acceptable):
                failing.add(rec["id"])
            for param, values in acceptable.items():
                if param not in given:
                    assert "" in values or values == [], (rec["id"], param)
            for param, value in call["parameters"].items():
                if not isinstance(value, (dict, list)):
                    assert value in acceptable[param] and value != "", (rec["id"], param)
    assert failing == {"live_multiple_507-149-4", "live_multiple_862-181-3", "live_multiple_964-207-0"}
    assert not failing & {r["id"] for r in bfcl_task.train + bfcl_task.validation}


# ----------------------------------------------------------------------------- splits
def test_split_sizes_and_categories(bfcl_task):
    assert bfcl_task.sizes() == {"train": 1315, "validation": 32, "test": 1000}
    assert {r["extra_info"]["category"] for r in bfcl_task.train + bfcl_task.validation} <= set(LIVE_CATEGORIES)
    assert {r["extra_info"]["category"] for r in bfcl_task.test} == set(NON_LIVE_PYTHON_CATEGORIES)


def test_splits_share_no_question(bfcl_task):
    train = {question_key(r) for r in bfcl_task.train}
    val = {question_key(r) for r in bfcl_task.validation}
    test = {question_key(r) for r in bfcl_task.test}
    assert not (train & test) and not (val & test) and not (train & val)
    ids = [r["id"] for r in bfcl_task.train + bfcl_task.validation + bfcl_task.test]
    assert len(ids) == len(set(ids))
    # the one Live question that BFCL repeats in Non-Live was dropped from training
    fortnite = "find out the rewards for playing fortnite on playstation platform with different missions and trophies"
    assert fortnite in test and fortnite not in train | val
    # BFCL's answer for this one uses a parameter its docs do not define: not trained on
    all_ids = {r["id"] for r in bfcl_task.train + bfcl_task.validation}
    assert not {"live_multiple_964-207-0", "live_multiple_862-181-3", "live_multiple_507-149-4"} & all_ids
    assert "live_multiple_963-206-0" in all_ids


def test_validation_split_is_deterministic_by_seed(bfcl_task):
    again = build_task({"name": "toolcall", "seed": 0})
    other = build_task({"name": "toolcall", "seed": 1})
    ids = [r["id"] for r in bfcl_task.validation]
    assert ids == [r["id"] for r in again.validation]
    assert ids != [r["id"] for r in other.validation]


def test_subsampling_limits():
    task = build_task({"name": "toolcall", "max_train_records": 50, "max_eval_records": 7, "validation_size": 10})
    assert task.sizes() == {"train": 50, "validation": 7, "test": 7}
    full = build_task({"name": "toolcall", "validation_size": 10})
    full_ids = [r["id"] for r in full.train]
    sub_ids = [r["id"] for r in task.train]
    assert set(sub_ids) <= set(full_ids)
    assert sub_ids == [i for i in full_ids if i in set(sub_ids)]  # original order kept


def test_full_rendering_is_toolrl_style():
    pairs = dict((q["id"], q) for q, _ in load_bfcl_category("simple_python"))
    functions = pairs["simple_python_0"]["function"]
    full = tool_system_prompt(functions, "full")
    assert "1. Name: calculate_triangle_area\nDescription: Calculate the area of a triangle given its base and height.\n" in full
    assert f"Parameters: {json.dumps(functions[0]['parameters'])}" in full
    compact = tool_system_prompt(functions, "compact")
    assert len(compact) < len(full)
    with pytest.raises(ValueError, match="compact, full"):
        tool_system_prompt(functions, "fancy")


def test_compact_rendering_of_enums_nested_and_arrays():
    fn = {"name": "f", "description": "Do it. More text here.", "parameters": {
        "type": "dict", "required": ["mode", "items"], "properties": {
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "items": {"type": "array", "items": {"type": "dict", "required": ["q"],
                                                  "properties": {"q": {"type": "integer"}, "n": {"type": "string"}}}},
            "tags": {"type": "array", "items": {"type": "string"}, "default": []},
            "opts": {"type": "dict", "properties": {"deep": {"type": "boolean"}}}}}}
    assert render_tool_compact(fn) == ('- f: Do it. Parameters: {"mode": "fast|slow", "items": [{"q": "integer", '
                                       '"n": "string?"}], "tags": "array of string?", "opts": {"deep": "boolean?"}}')


# ----------------------------------------------------------------------------- bad input
def test_unknown_source_and_render_and_key():
    with pytest.raises(TaskDataError, match="unknown source 'nope'.*bfcl, toolrl"):
        build_task({"name": "toolcall", "source": "nope"})
    with pytest.raises(ValueError, match="tool_render"):
        build_task({"name": "toolcall", "tool_render": "tiny"})
    with pytest.raises(ValueError, match="unknown config key.*max_train_record"):
        build_task({"name": "toolcall", "max_train_record": 3})


def test_unknown_category_names_file(tmp_path):
    with pytest.raises(TaskDataError, match="BFCL_v4_live_simpel.json"):
        build_task({"name": "toolcall", "train_categories": ["live_simpel"]})


def test_malformed_bfcl_file_names_file_and_line(tmp_path):
    (tmp_path / "possible_answer").mkdir()
    good = {"id": "x_0", "question": [[{"role": "user", "content": "hi"}]], "function": [{"name": "f"}]}
    bad = {"id": "x_1", "question": [[{"role": "user", "content": "hi"}]]}
    (tmp_path / "BFCL_v4_x.json").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    (tmp_path / "possible_answer" / "BFCL_v4_x.json").write_text(
        json.dumps({"id": "x_0", "ground_truth": [{"f": {}}]}) + "\n" + json.dumps({"id": "x_1", "ground_truth": []}) + "\n")
    with pytest.raises(TaskDataError, match=r"BFCL_v4_x\.json: line 2: entry lacks 'function'"):
        load_bfcl_category("x", tmp_path)


# ----------------------------------------------------------------------------- ToolRL parquet
SYSTEM = "Tools: 1. Name: get_weather ..."


def toolrl_rows(n: int, offset: int = 0) -> list[dict]:
    return [{
        "data_source": "rlla",
        "prompt": [{"role": "system", "content": SYSTEM},
                   {"role": "user", "content": f"**Dialogue Records History**\n<user> weather in city {i}? </user>"}],
        "ability": "tool",
        "reward_model": {"style": "rule", "ground_truth":
                         f'<think> x </think>\n<tool_call>\n{{"name": "get_weather", "parameters": {{"city": "c{i}"}}}}\n</tool_call>'},
        "extra_info": {"index": i, "split": "train"},
    } for i in range(offset, offset + n)]


def write_parquet(path, rows):
    import pandas as pd

    pd.DataFrame(rows).to_parquet(path)
    return str(path)


def test_toolrl_parquet_round_trip(tmp_path):
    train = write_parquet(tmp_path / "train.parquet", toolrl_rows(12) + toolrl_rows(1, offset=100))
    test = write_parquet(tmp_path / "test.parquet", toolrl_rows(3, offset=100))  # row 100 repeats a train question
    task = build_task({"name": "toolcall", "source": "toolrl", "paths": {"train": train, "test": test},
                       "validation_size": 2, "seed": 3})
    assert task.sizes() == {"train": 10, "validation": 2, "test": 3}
    rec = task.test[0]
    assert rec["id"] == "toolrl-test-0" and rec["data_source"] == "rlla"
    assert rec["prompt"][0] == {"role": "system", "content": SYSTEM}
    assert rec["ground_truth"].endswith('{"name": "get_weather", "parameters": {"city": "c100"}}\n</tool_call>')
    assert rec["extra_info"]["index"] == 100
    test_q = {question_key(r) for r in task.test}
    assert not test_q & {question_key(r) for r in task.train + task.validation}


def test_toolrl_malformed_row_names_file_and_row(tmp_path):
    rows = toolrl_rows(4)
    rows[2]["reward_model"] = {"style": "rule", "ground_truth": ""}
    train = write_parquet(tmp_path / "train.parquet", rows)
    with pytest.raises(TaskDataError, match=r"train\.parquet: row 2: missing or empty 'reward_model.ground_truth'"):
        build_task({"name": "toolcall", "source": "toolrl", "paths": {"train": train, "test": None}})


def test_toolrl_missing_file_and_placeholder(tmp_path):
    missing = str(tmp_path / "nowhere.parquet")
    with pytest.raises(TaskDataError, match="nowhere.parquet.*does not exist"):
        build_task({"name": "toolcall", "source": "toolrl", "paths": {"train": missing, "test": None}})
    with pytest.raises(ValueError, match="'train' is required"):
        build_task({"name": "toolcall", "source": "toolrl", "paths": {"train": "???", "test": "???"}})


# ----------------------------------------------------------------------------- the toolrl rendering
TOOLRL_SYSTEM = (
    "You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve user tasks and "
    "provide structured chat responses.\n\n**Available Tools**\nIn your response, you can use the following tools:\n"
    "TOOLS\n\n**Steps for Each Turn**\n1. **Think:** Recall relevant context and analyze the current user goal.\n"
    "2. **Decide on Tool Usage:** If a tool is needed, specify the tool and its parameters.\n"
    "3. **Respond Appropriately:** If a response is needed, generate one while maintaining consistency across "
    "user queries.\n\n**Output Format**\n```plaintext\n<think> Your thoughts and reasoning </think>\n<tool_call>\n"
    '{"name": "Tool name", "parameters": {"Parameter name": "Parameter content", "... ...": "... ..."}}\n'
    '{"name": "... ...", "parameters": {"... ...": "... ...", "... ...": "... ..."}}\n...\n</tool_call>\n'
    "<response> AI's final response </response>\n```\n\n**Important Notes**\n"
    "1. You must always include the `<think>` field to outline your reasoning. Provide at least one of "
    "`<tool_call>` or `<response>`. Decide whether to use `<tool_call>` (possibly multiple times), `<response>`, "
    "or both.\n2. You can invoke multiple tool calls simultaneously in the `<tool_call>` fields. Each tool call "
    'should be a JSON object with a "name" field and an "parameters" field containing a dictionary of parameters. '
    'If no parameters are needed, leave the "parameters" field an empty dictionary.\n'
    "3. Refer to the previous dialogue records in the history, including the user's queries, previous "
    "`<tool_call>`, `<response>`, and any tool feedback noted as `<obs>` (if exists).\n"
)
SINGLE_INSTRUCTION = (
    "If there's no appropriate tools to apply or required parameters are missing, please directly inform me in "
    "your response without any tool call, or call the tool with the name as 'None'. Otherwise, you should use one "
    "or more necessary tool calls to complete the given task in this turn."
)


def test_toolrl_prompt_of_a_hand_written_entry():
    """ToolRL's handler: tools as 'N. Name/Description/Parameters(properties JSON)', BFCL's
    system message dropped, the user turn wrapped with the single-turn instruction; the
    descriptions carry BFCL's Python hint (BFCL's inference pre-processing)."""
    question = {"id": "live_simple_900", "question": [[
        {"role": "system", "content": "BFCL's own system text"},
        {"role": "user", "content": "  Weather in Köln? \n"}]],
        "function": [
            {"name": "get_weather", "description": "Get the weather.",
             "parameters": {"type": "dict", "required": ["city"],
                            "properties": {"city": {"type": "string", "description": "City name"}}}},
            {"name": "ping", "description": "Ping.", "parameters": {"type": "dict", "properties": {}}}]}
    answer = {"id": "live_simple_900", "ground_truth": [{"get_weather": {"city": ["Köln"]}}]}
    rec = bfcl_to_record(question, answer, "live_simple", "toolrl")
    hint = " Note that the provided function is in Python 3 syntax."
    tools = ("1. Name: get_weather\nDescription: Get the weather." + hint + "\n"
             'Parameters: {"city": {"type": "string", "description": "City name"}}\n'
             "2. Name: ping\nDescription: Ping." + hint + "\nParameters: {}")
    user = "**Dialogue Records History**\n<user> Weather in K\u00f6ln?\n" + SINGLE_INSTRUCTION + " </user>"
    assert rec["prompt"] == [{"role": "system", "content": TOOLRL_SYSTEM.replace("TOOLS", tools)},
                             {"role": "user", "content": user}]
    assert rec["extra_info"]["functions"] == question["function"]  # the checker gets BFCL's original docs
    # the hint is added to a copy: the entry is unchanged
    assert question["function"][0]["description"] == "Get the weather."


def test_toolrl_history_with_tool_results():
    """Assistant turns kept between blank lines; tool results as <obs>; the follow-up only after
    a final tool result; multi-turn wording of the user instruction."""
    from saw.tasks.toolrl_prompt import toolrl_user_prompt

    follow = ("If you think you have completed the current task, or the task cannot be finished, please respond "
              "directly without additional tool calls. If you encounter an error during tool execution or the task "
              "remains unfinished, retry with the one or more necessary tool calls according to your thought and "
              "plan until completion. Based on the tool execution feedback, reflect on if understanding or "
              "selectioin of tool is wrong, what tool calling step is missing, and how to achieve the task goal "
              "from now on.")
    multi = ("Use the one or more necessary tool calls to complete the task. You could perform tool calls for "
             "multiple rounds so you can try and error. Please make a comprehensive plan about how to achieve the "
             "goal step by step, and begin to call the tool step by step. If no tools apply or required parameters "
             "are missing, please also directly state this in your response without tool calls.")
    msgs = [{"role": "user", "content": "go"}, {"role": "assistant", "content": " <tool_call>\nX\n</tool_call> "},
            {"role": "tool", "name": "ls()", "content": " {\"a\": 1} "}]
    expected = ("**Dialogue Records History**\n<user> go\n" + multi + " </user>\n\n<tool_call>\nX\n</tool_call>\n"
                "<obs> You have made the tool call ls(). Execution returns: {\"a\": 1} </obs>\n\n<user> " + follow
                + " </user>")
    assert toolrl_user_prompt(msgs, multi_turn=True) == expected
    # with a later assistant answer the follow-up is gone
    got = toolrl_user_prompt(msgs + [{"role": "assistant", "content": "ok"}], multi_turn=True)
    assert got.endswith('Execution returns: {"a": 1} </obs>\n\nok') and follow not in got
    with pytest.raises(ValueError, match="role"):
        toolrl_user_prompt([{"role": "robot", "content": "x"}])


def test_java_docs_are_bfcl_preprocessed_in_prompts():
    q, a = load_bfcl_category("simple_java")[0]
    rec = bfcl_to_record(q, a, "simple_java", "full")
    assert "Note that the provided function is in Java 8 SDK syntax." in rec["prompt"][0]["content"]
    # parameters are shown as strings (Java literals), as BFCL shows them
    compact = bfcl_to_record(q, a, "simple_java", "compact")["prompt"][0]["content"]
    assert 'Parameters: {"controller": "string", "parent": "string"}' in compact
    assert rec["extra_info"]["functions"][0]["parameters"]["properties"]["controller"]["type"] == "any"


def test_toolrl_source_keeps_test_questions_in_train_when_asked(tmp_path):
    """The authors train on the whole rlla_4k train file: drop_test_questions=false keeps a train
    row whose question is also in the test file; the default drops it."""
    import pandas as pd

    def row(q, gt):
        return {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": q}],
                "reward_model": {"ground_truth": gt}, "data_source": "rlla", "extra_info": {"index": 0}}

    gt = '<think>x</think>\n<tool_call>\n{"name": "f", "parameters": {}}\n</tool_call>'
    pd.DataFrame([row("shared question", gt), row("own question", gt), row("third", gt)]).to_parquet(tmp_path / "train.parquet")
    pd.DataFrame([row("shared question", gt)]).to_parquet(tmp_path / "test.parquet")
    base = {"name": "toolcall", "source": "toolrl", "validation_size": 0,
            "paths": {"train": str(tmp_path / "train.parquet"), "test": str(tmp_path / "test.parquet")}}
    assert len(build_task(base).train) == 2
    assert len(build_task({**base, "drop_test_questions": False}).train) == 3
