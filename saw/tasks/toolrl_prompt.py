"""ToolRL's prompt, as its BFCL handler builds it (``benchmarks/BFCL/rlla_qwen.py`` of
qiancheng0/ToolRL, ``RLLAHandler._format_prompt``): the ``toolrl`` tool rendering.

The whole dialogue becomes two chat messages:

1. system: ToolRL's training system prompt (:data:`TOOLRL_SYSTEM_TEMPLATE`) with the tools
   listed as ``N. Name: <name>\\nDescription: <description>\\nParameters: <json.dumps of
   parameters.properties>`` (one tool after the other, joined by newlines).
2. user: ``**Dialogue Records History**`` followed by every message of the dialogue so far,
   BFCL's own system messages dropped:

   - a user message becomes ``<user> {content} {instruction} </user>``, the instruction being
     :data:`SINGLE_TURN_INSTRUCTION` for single-turn entries and :data:`MULTI_TURN_INSTRUCTION`
     for multi-turn ones;
   - an assistant message (an earlier model answer) is kept as it is, between blank lines;
   - a tool result becomes ``<obs> You have made the tool call {call}. Execution returns:
     {result} </obs>``; when it is the last message, the follow-up :data:`OBS_FOLLOW_UP`
     (a ``<user>`` instruction) comes after it;

   and the text is stripped at both ends.

With Qwen2.5's chat template these two messages give exactly the string the handler sends
(``<|im_start|>system\\n...<|im_end|>\\n<|im_start|>user\\n...<|im_end|>\\n<|im_start|>assistant\\n``).
All strings below are ToolRL's, character for character (their typos included).

The handler itself defaults to the single-turn instruction (``turn_type="single_turn"``); the
multi-turn instruction exists for multi-turn dialogues, and this module uses it for BFCL's
multi-turn categories (``multi_turn=True``).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

TOOLRL_JSON_STRING = """{\"name\": \"Tool name\", \"parameters\": {\"Parameter name\": \"Parameter content\", \"... ...\": \"... ...\"}}
{\"name\": \"... ...\", \"parameters\": {\"... ...\": \"... ...\", \"... ...\": \"... ...\"}}"""

TOOLRL_SYSTEM_TEMPLATE = """You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve user tasks and provide structured chat responses.

**Available Tools**
In your response, you can use the following tools:
{tools}

**Steps for Each Turn**
1. **Think:** Recall relevant context and analyze the current user goal.
2. **Decide on Tool Usage:** If a tool is needed, specify the tool and its parameters.
3. **Respond Appropriately:** If a response is needed, generate one while maintaining consistency across user queries.

**Output Format**
```plaintext
<think> Your thoughts and reasoning </think>
<tool_call>
{json_string}
...
</tool_call>
<response> AI's final response </response>
```

**Important Notes**
1. You must always include the `<think>` field to outline your reasoning. Provide at least one of `<tool_call>` or `<response>`. Decide whether to use `<tool_call>` (possibly multiple times), `<response>`, or both.
2. You can invoke multiple tool calls simultaneously in the `<tool_call>` fields. Each tool call should be a JSON object with a "name" field and an "parameters" field containing a dictionary of parameters. If no parameters are needed, leave the "parameters" field an empty dictionary.
3. Refer to the previous dialogue records in the history, including the user's queries, previous `<tool_call>`, `<response>`, and any tool feedback noted as `<obs>` (if exists).
"""

HISTORY_HEADER = "**Dialogue Records History**\n"

SINGLE_TURN_INSTRUCTION = (
    "If there's no appropriate tools to apply or required parameters are missing, please directly inform me "
    "in your response without any tool call, or call the tool with the name as 'None'. Otherwise, you should "
    "use one or more necessary tool calls to complete the given task in this turn."
)
MULTI_TURN_INSTRUCTION = (
    "Use the one or more necessary tool calls to complete the task. You could perform tool calls for multiple "
    "rounds so you can try and error. Please make a comprehensive plan about how to achieve the goal step by "
    "step, and begin to call the tool step by step. If no tools apply or required parameters are missing, "
    "please also directly state this in your response without tool calls."
)
OBS_FOLLOW_UP = (
    "If you think you have completed the current task, or the task cannot be finished, please respond "
    "directly without additional tool calls. If you encounter an error during tool execution or the task "
    "remains unfinished, retry with the one or more necessary tool calls according to your thought and plan "
    "until completion. Based on the tool execution feedback, reflect on if understanding or selectioin of "
    "tool is wrong, what tool calling step is missing, and how to achieve the task goal from now on."
)


def toolrl_tool_list(functions: Sequence[Mapping[str, Any]]) -> str:
    """``N. Name: ...\\nDescription: ...\\nParameters: {properties as JSON}`` per tool, joined by newlines."""
    lines = []
    for i, fn in enumerate(functions, start=1):
        if not isinstance(fn, Mapping) or "name" not in fn:
            raise ValueError(f"tool {i} is not a function doc with a 'name': {fn!r:.200}")
        params = fn.get("parameters") or {}
        props = params.get("properties", {}) if isinstance(params, Mapping) else {}
        lines.append(f"{i}. Name: {fn['name']}\nDescription: {fn.get('description', '')}\n"
                     f"Parameters: {json.dumps(props)}")
    return "\n".join(lines)


def toolrl_system_prompt(functions: Sequence[Mapping[str, Any]]) -> str:
    """ToolRL's system prompt with ``functions`` listed."""
    return TOOLRL_SYSTEM_TEMPLATE.format(tools=toolrl_tool_list(functions), json_string=TOOLRL_JSON_STRING)


def toolrl_user_prompt(messages: Sequence[Mapping[str, Any]], multi_turn: bool = False) -> str:
    """The "Dialogue Records History" user message for a dialogue (see the module docstring).

    ``messages``: dicts with ``role`` (system, user, assistant or tool) and ``content``; tool
    messages also carry ``name`` (the call as executed, e.g. ``cd(folder='docs')``).
    """
    text = HISTORY_HEADER
    last = len(messages) - 1
    for i, msg in enumerate(messages):
        role = msg.get("role")
        content = str(msg.get("content", ""))
        if role == "system":
            continue
        if role == "user":
            instruction = MULTI_TURN_INSTRUCTION if multi_turn else SINGLE_TURN_INSTRUCTION
            text += f"<user> {content.strip()}\n{instruction} </user>\n"
        elif role == "tool":
            if "name" not in msg:
                raise ValueError(f"tool message {i} has no 'name' (the executed call)")
            text += f"<obs> You have made the tool call {str(msg['name']).strip()}. Execution returns: {content.strip()} </obs>\n"
            if i == last:
                text += f"\n<user> {OBS_FOLLOW_UP} </user>\n"
        elif role == "assistant":
            text += f"\n{content.strip()}\n"
        else:
            raise ValueError(f"message {i} has unknown role {role!r} (valid: system, user, assistant, tool)")
    return text.strip()


def toolrl_messages(messages: Sequence[Mapping[str, Any]], functions: Sequence[Mapping[str, Any]],
                    multi_turn: bool = False) -> list[dict]:
    """[system, user] chat messages of ToolRL's prompt for a dialogue and its tools."""
    return [{"role": "system", "content": toolrl_system_prompt(functions)},
            {"role": "user", "content": toolrl_user_prompt(messages, multi_turn)}]
