"""Multi-turn BFCL: a hand-written two-turn dialogue driven by a scripted rollout engine through
BFCL's real executors and multi_turn_checker; the ToolRL prompt and decoder; the oracle."""

from __future__ import annotations

import json

import pytest

from eval import bfcl
from eval.multiturn import (
    Dialogue,
    EnginePolicy,
    call_string_to_json,
    dialogue_prompt,
    evaluate_multi_turn,
    load_multi_turn_entries,
    oracle_policy,
    run_dialogues,
)
from rollout.base import RolloutEngine, RolloutSample, SamplingConfig


# ----------------------------------------------------------------------------- a fake engine
class ChatTokenizer:
    """Tokenises a conversation to one id (its index in ``seen``), keeping the messages."""

    def __init__(self):
        self.seen: list[list[dict]] = []

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=True):
        self.seen.append([dict(m) for m in messages])
        return [len(self.seen) - 1]


class ScriptedEngine(RolloutEngine):
    """Answers each prompt with ``script(messages)``; records the batch sizes of generate()."""

    def __init__(self, script):
        super().__init__()
        self._tokenizer = ChatTokenizer()
        self._max_len = 10**6
        self.script = script
        self.batches: list[int] = []

    def _generate(self, prompt_ids, sampling):
        self.batches.append(len(prompt_ids))
        return [RolloutSample(g, list(ids), [1, 2], self.script(self._tokenizer.seen[ids[0]]), [0.0, 0.0], "stop")
                for g, ids in enumerate(prompt_ids)]

    def _update_weights(self, named_tensors):
        raise NotImplementedError


def answer(*calls: dict) -> str:
    if not calls:
        return "<think> done </think>\n<response> Done. </response>"
    return "<think> call </think>\n<tool_call>\n" + "\n".join(json.dumps(c) for c in calls) + "\n</tool_call>"


FS_DOC = {"name": "mkdir", "description": "Make a directory.",
          "parameters": {"type": "dict", "properties": {"dir_name": {"type": "string", "description": "Name."}},
                         "required": ["dir_name"]}}


def two_turn_entry() -> dict:
    """Turn 1: create 'reports' in the workspace; turn 2: go into it and create 'a.txt'."""
    return {
        "id": "multi_turn_base_9001", "category": "multi_turn_base",
        "question": [[{"role": "user", "content": "Create a folder called reports."}],
                     [{"role": "user", "content": "Go into reports and create an empty file a.txt."}]],
        "initial_config": {"GorillaFileSystem": {"root": {"alice": {"type": "directory", "contents": {}}}}},
        "involved_classes": ["GorillaFileSystem"],
        "function": [FS_DOC],
        "ground_truth": [["mkdir(dir_name='reports')"], ["cd(folder='reports')", "touch(file_name='a.txt')"]],
    }


def scripted(second_file: str):
    """The model: turn 1 mkdir then a reply; turn 2 cd + touch(second_file) then a reply."""
    def script(messages):
        user = messages[-1]["content"]
        if user.endswith("from now on. </user>"):  # ToolRL's follow-up after a tool result: reply
            return answer()
        if "a.txt" in user.rsplit("<user>", 1)[-1]:
            return answer({"name": "cd", "parameters": {"folder": "reports"}},
                          {"name": "touch", "parameters": {"file_name": second_file}})
        return answer({"name": "mkdir", "parameters": {"dir_name": "reports"}})
    return script


def run_scripted(second_file: str):
    engine = ScriptedEngine(scripted(second_file))
    policy = EnginePolicy(engine, lambda i: SamplingConfig(n=3, temperature=0.0, max_new_tokens=8), "toolrl", None)
    out = evaluate_multi_turn([two_turn_entry()], policy, "toolrl")
    return out, engine


def test_two_turn_dialogue_passes_with_the_right_calls():
    out, engine = run_scripted("a.txt")
    assert out["valid"] == {"multi_turn_base": [[True]]}
    tr = out["transcripts"][0]
    assert [len(t["steps"]) for t in tr["turns"]] == [2, 2]  # call, then a reply without a call, per turn
    assert tr["turns"][0]["steps"][0]["calls"] == ["mkdir(dir_name='reports')"]
    assert tr["turns"][1]["steps"][0]["calls"] == ["cd(folder='reports')", "touch(file_name='a.txt')"]
    assert tr["turns"][1]["steps"][0]["results"][0] == json.dumps({"current_working_directory": "reports"})
    assert out["stats"]["generations"] == 4 and not tr["force_quit"]
    # the prompt of the last step: ToolRL's multi-turn wrapping, the history and the observations
    last = engine.tokenizer.seen[-1][1]["content"]
    assert last.startswith("**Dialogue Records History**\n<user> Create a folder called reports.\nUse the one")
    assert "<obs> You have made the tool call touch(file_name='a.txt'). Execution returns: None </obs>" in last
    assert last.endswith("how to achieve the task goal from now on. </user>")


def test_two_turn_dialogue_fails_on_wrong_state():
    out, _ = run_scripted("b.txt")
    assert out["valid"] == {"multi_turn_base": [[False]]}
    assert out["errors"]["multi_turn_base"] == {"multi_turn:instance_state_mismatch": 1}


def test_dialogues_generate_together_and_step_cap_forces_quit():
    """Two dialogues answer in one generate() per step; a model that never stops calling is
    force-quit after step_limit executed steps in a turn (then invalid: not every turn answered)."""
    engine = ScriptedEngine(lambda messages: answer({"name": "ls", "parameters": {}}))
    policy = EnginePolicy(engine, lambda i: SamplingConfig(n=1, temperature=0.0, max_new_tokens=8), "toolrl", None)
    out = evaluate_multi_turn([two_turn_entry(), dict(two_turn_entry(), id="multi_turn_base_9002")], policy,
                              "toolrl", step_limit=2)
    assert engine.batches == [2, 2, 2]  # steps 1..3 of turn 0; the third exceeds the cap of 2
    assert out["valid"] == {"multi_turn_base": [[False, False]]}
    assert out["errors"]["multi_turn_base"] == {"multi_turn:force_terminated": 2}
    assert out["stats"]["forced_quits"] == 2


def test_miss_func_turn_gets_bfcl_additional_function_prompt():
    """A held-out turn's user message is BFCL's prompt with the held-out docs, which are not in
    the tool list of the system prompt."""
    entry = [e for e in load_multi_turn_entries("multi_turn_miss_func") if e["missed_function"]][0]
    turn = int(next(iter(entry["missed_function"])))
    held = entry["missed_function"][str(turn)]
    d = Dialogue(entry).begin()
    while d.turn < turn:
        d.advance(answer(), "toolrl")
    user = dialogue_prompt(d, "toolrl")[1]["content"]
    expected = f"<user> {held}\nI have updated some more functions you can choose from. What about now?"
    assert expected in user
    system = dialogue_prompt(d, "toolrl")[0]["content"]
    assert all(f"Name: {f['name']}\n" not in system for f in held)


def test_oracle_passes_a_real_entry_and_positional_arguments_are_named():
    entry = load_multi_turn_entries("multi_turn_base")[0]
    assert call_string_to_json("sort('final_report.pdf')", ["GorillaFileSystem"]) == {
        "name": "sort", "parameters": {"file_name": "final_report.pdf"}}
    out = evaluate_multi_turn([entry], oracle_policy, "toolrl")
    assert out["valid"] == {"multi_turn_base": [[True]]}
    # a dialogue that stays silent fails BFCL's checker
    silent = Dialogue(load_multi_turn_entries("multi_turn_base")[0])
    run_dialogues([silent], lambda ds: [answer() for _ in ds], "toolrl")
    from eval.multiturn import score_dialogue

    verdict = score_dialogue(silent, "toolrl")
    assert not verdict.valid and verdict.error_type == "multi_turn:empty_turn_model_response"


def test_bad_category_is_rejected():
    with pytest.raises(ValueError, match="not a multi-turn category"):
        load_multi_turn_entries("simple_python")
    with pytest.raises(ValueError, match="step_limit"):
        evaluate_multi_turn([two_turn_entry()], oracle_policy, "toolrl", step_limit=-1)
    assert bfcl.MULTI_TURN_CATEGORIES == ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                                          "multi_turn_long_context")


def test_max_turns_cuts_dialogues_for_smoke_runs():
    """max_turns=1: only the first turn is asked and scored (a silent second turn is then never asked)."""
    engine = ScriptedEngine(scripted("a.txt"))
    policy = EnginePolicy(engine, lambda i: SamplingConfig(n=1, temperature=0.0, max_new_tokens=8), "toolrl", None)
    out = evaluate_multi_turn([two_turn_entry()], policy, "toolrl", max_turns=1)
    assert out["valid"] == {"multi_turn_base": [[True]]} and out["stats"]["generations"] == 2
    assert len(out["transcripts"][0]["turns"]) == 1 and out["stats"]["max_turns"] == 1
    # a wrong first turn still fails
    bad = ScriptedEngine(lambda m: answer() if m[-1]["content"].endswith("from now on. </user>")
                         else answer({"name": "mkdir", "parameters": {"dir_name": "other"}}))
    out = evaluate_multi_turn([two_turn_entry()], EnginePolicy(
        bad, lambda i: SamplingConfig(n=1, temperature=0.0, max_new_tokens=8), "toolrl", None), "toolrl", max_turns=1)
    assert out["valid"] == {"multi_turn_base": [[False]]}
    with pytest.raises(ValueError, match="max_turns"):
        evaluate_multi_turn([two_turn_entry()], oracle_policy, "toolrl", max_turns=0)
