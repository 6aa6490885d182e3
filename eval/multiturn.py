"""BFCL v4 Multi-Turn: the dialogue loop, run against BFCL's simulated APIs, and its scoring.

Data: ``bfcl_eval.utils.load_dataset_entry`` (the package's own loader: the involved classes'
function docs, the initial configs, the held-out functions of multi_turn_miss_func removed from
the tool list and given back at their turn, BFCL's language hint in the descriptions) and
``load_ground_truth_entry`` (per turn, the ground-truth call strings).

The loop (BFCL's ``inference_multi_turn_prompting``, prompting models): for each user turn
(for a held-out turn of miss_func, the user message is BFCL's
``DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_PROMPTING`` listing the added functions), the
model answers; the answer is decoded into call strings (:func:`eval.bfcl.decode_execute`, the
run's decoder); no call (or an undecodable answer) ends the turn; otherwise each call runs in
BFCL's executor (``execute_multi_turn_func_call``: the API class instances of this dialogue,
loaded with the entry's initial config), the results go back into the dialogue as tool
messages, and the model answers again. More than ``step_limit`` executed steps in one turn
(BFCL: ``MAXIMUM_STEP_LIMIT`` = 20) force-quit the dialogue, which BFCL scores as failed unless
it happened in the last turn. All active dialogues generate together: one ``generate`` call (in
chunks of ``batch_size``) per step of the whole set.

Prompts: the ``toolrl`` rendering is ToolRL's handler (:mod:`saw.tasks.toolrl_prompt`, with its
multi-turn user instruction); ``compact`` / ``full`` give the tool system prompt of
:func:`saw.tasks.toolcall.tool_system_prompt` followed by the chat, tool results as user
messages ``<obs> call: result </obs>``.

Scoring (BFCL's ``_evaluate_single_multi_turn_entry``): a dialogue whose number of answered
turns differs from the ground truth's is invalid (``multi_turn:force_terminated``); otherwise
every step's answer is decoded again (failed or empty decodes skipped) and
``multi_turn_checker`` replays the model's calls and the ground truth on fresh instances and
compares their states and responses after every turn.

Executor instances live in the module globals of ``multi_turn_utils`` under a name built from a
"model name"; every dialogue gets its own name (so repeated runs never share state) and its
instances are deleted once it is scored.
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from eval.bfcl import ToolCallDecodeError, decode_execute
from saw.core.tokens import chat_template_ids
from saw.tasks.toolcall import MULTI_TURN_CATEGORIES, tool_system_prompt
from saw.tasks.toolrl_prompt import toolrl_messages

log = logging.getLogger(__name__)

_COUNTER = itertools.count()


def bfcl_step_limit() -> int:
    """BFCL's ``MAXIMUM_STEP_LIMIT`` (steps per user turn before a forced quit)."""
    from bfcl_eval.constants.default_prompts import MAXIMUM_STEP_LIMIT

    return int(MAXIMUM_STEP_LIMIT)


def load_multi_turn_entries(category: str) -> list[dict]:
    """BFCL's multi-turn entries of ``category`` with their ground truth (``entry["ground_truth"]``:
    per turn, a list of call strings)."""
    if category not in MULTI_TURN_CATEGORIES:
        raise ValueError(f"{category!r} is not a multi-turn category; valid: {', '.join(MULTI_TURN_CATEGORIES)}")
    from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry

    entries = load_dataset_entry(category, include_prereq=False, include_language_specific_hint=True)
    answers = {a["id"]: a["ground_truth"] for a in load_ground_truth_entry(category)}
    for e in entries:
        if e["id"] not in answers:
            raise ValueError(f"BFCL {category}: entry {e['id']} has no ground truth")
        e["ground_truth"] = answers[e["id"]]
        e["category"] = category
        if len(e["ground_truth"]) != len(e["question"]):
            raise ValueError(f"BFCL {category}: entry {e['id']} has {len(e['question'])} turns but "
                             f"{len(e['ground_truth'])} ground-truth turns")
    return entries


# ----------------------------------------------------------------------------- one dialogue
@dataclass
class Dialogue:
    """The state of one multi-turn dialogue (one entry, one repeat)."""

    entry: dict
    repeat: int = 0
    step_limit: int = 20
    exec_name: str = ""
    messages: list[dict] = field(default_factory=list)
    turn: int = 0
    step: int = 0  # executed steps in the current turn
    responses: list[list[str]] = field(default_factory=list)  # per finished turn, every answer
    current: list[str] = field(default_factory=list)
    transcript: list[dict] = field(default_factory=list)
    done: bool = False
    force_quit: bool = False
    generations: int = 0

    def __post_init__(self) -> None:
        if not self.exec_name:
            self.exec_name = f"saw{next(_COUNTER)}r{self.repeat}"

    @property
    def id(self) -> str:
        return str(self.entry["id"])

    @property
    def category(self) -> str:
        return str(self.entry.get("category") or self.id.rsplit("_", 1)[0])

    @property
    def long_context(self) -> bool:
        return "long_context" in self.category or "composite" in self.category

    def begin(self) -> "Dialogue":
        """Open turn 0."""
        self._open_turn()
        return self

    def _open_turn(self) -> None:
        msgs = [dict(m) for m in self.entry["question"][self.turn]]
        held_out = (self.entry.get("missed_function") or {}).get(str(self.turn))
        if held_out is not None:
            from bfcl_eval.constants.default_prompts import (
                DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_PROMPTING,
            )

            if msgs:
                raise ValueError(f"{self.id}: held-out turn {self.turn} should have no user message")
            msgs = [{"role": "user",
                     "content": DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_PROMPTING.format(functions=held_out)}]
        self.messages.extend(msgs)
        self.transcript.append({"turn": self.turn, "user": msgs, "steps": []})

    def _close_turn(self) -> None:
        self.responses.append(self.current)
        self.current = []
        self.turn += 1
        self.step = 0
        if self.turn >= len(self.entry["question"]):
            self.done = True
        else:
            self._open_turn()

    def advance(self, text: str, decoder: str) -> None:
        """Take the model's answer ``text``: execute its calls or end the turn."""
        if self.done:
            raise RuntimeError(f"dialogue {self.id} is finished")
        from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import (
            execute_multi_turn_func_call,
            is_empty_execute_response,
        )

        self.generations += 1
        self.current.append(text)
        self.messages.append({"role": "assistant", "content": text})
        record: dict[str, Any] = {"answer": text}
        self.transcript[-1]["steps"].append(record)
        try:
            calls = decode_execute(text, decoder)
        except ToolCallDecodeError as exc:
            record["decode_error"] = str(exc)
            self._close_turn()
            return
        record["calls"] = calls
        if is_empty_execute_response(calls):
            self._close_turn()
            return
        results, _ = execute_multi_turn_func_call(calls, self.entry.get("initial_config", {}),
                                                  self.entry["involved_classes"], self.exec_name, self.id,
                                                  long_context=self.long_context, is_evaL_run=False)
        record["results"] = results
        for call, result in zip(calls, results):
            self.messages.append({"role": "tool", "name": call, "content": result})
        self.step += 1
        if self.step > self.step_limit:
            self.force_quit = True
            self.transcript[-1]["force_quit"] = f"more than {self.step_limit} steps in turn {self.turn}"
            self.responses.append(self.current)
            self.current = []
            self.done = True


# ----------------------------------------------------------------------------- prompts
def dialogue_prompt(d: Dialogue, tool_render: str) -> list[dict]:
    """Chat messages for the model's next answer in ``d``."""
    functions = d.entry["function"]
    if tool_render == "toolrl":
        return toolrl_messages(d.messages, functions, multi_turn=True)
    chat: list[dict] = [{"role": "system", "content": tool_system_prompt(functions, tool_render)}]
    for m in d.messages:
        if m["role"] == "system":
            chat[0]["content"] += "\n\n" + m["content"]
        elif m["role"] == "tool":
            obs = f"<obs> {m['name']}: {m['content']} </obs>"
            if chat[-1]["role"] == "user" and chat[-1]["content"].startswith("<obs>"):
                chat[-1]["content"] += "\n" + obs
            else:
                chat.append({"role": "user", "content": obs})
        else:
            chat.append({"role": m["role"], "content": m["content"]})
    return chat


# ----------------------------------------------------------------------------- the loop
Policy = Callable[[Sequence[Dialogue]], Sequence[str]]


def run_dialogues(dialogues: Sequence[Dialogue], policy: Policy, decoder: str,
                  progress_every: float = 30.0) -> dict[str, Any]:
    """Drive every dialogue to its end: at each step, all active dialogues answer together
    (``policy(active) -> texts``). Returns loop statistics."""
    for d in dialogues:
        if not d.transcript and not d.done:
            d.begin()
    t0 = last = time.time()
    steps = 0
    active = [d for d in dialogues if not d.done]
    while active:
        texts = list(policy(active))
        if len(texts) != len(active):
            raise RuntimeError(f"the policy returned {len(texts)} answers for {len(active)} dialogues")
        for d, text in zip(active, texts):
            d.advance(text, decoder)
        steps += 1
        active = [d for d in dialogues if not d.done]
        now = time.time()
        if now - last >= progress_every or not active:
            last = now
            tps = getattr(policy, "tokens_per_second", None)
            log.info("multi-turn: %d/%d dialogues done, %d batched steps, %d generations, %.0fs%s",
                     len(dialogues) - len(active), len(dialogues), steps, sum(d.generations for d in dialogues),
                     now - t0, "" if tps is None else f", {tps:.1f} tokens/s")
    return {"batched_steps": steps, "generations": sum(d.generations for d in dialogues),
            "forced_quits": sum(d.force_quit for d in dialogues), "seconds": round(time.time() - t0, 2)}


# ----------------------------------------------------------------------------- scoring
@dataclass
class DialogueVerdict:
    valid: bool
    error_type: str | None = None
    error: Any = None


def _drop_instances(prefix: str) -> None:
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

    key = re.sub(r"[-./:]", "_", prefix)
    for name in [n for n in vars(multi_turn_utils) if n.startswith(key)]:
        del vars(multi_turn_utils)[name]


def score_dialogue(d: Dialogue, decoder: str) -> DialogueVerdict:
    """BFCL's verdict on a finished dialogue (see the module docstring); frees its instances."""
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import (
        multi_turn_checker,
    )
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import (
        is_empty_execute_response,
    )

    if not d.done:
        raise RuntimeError(f"dialogue {d.id} is not finished")
    gt = d.entry["ground_truth"]
    try:
        if len(d.responses) != len(gt):
            return DialogueVerdict(False, "multi_turn:force_terminated",
                                   f"{len(d.responses)} answered turns for {len(gt)} ground-truth turns")
        decoded: list[list[list[str]]] = []
        for turn in d.responses:
            steps = []
            for text in turn:
                try:
                    calls = decode_execute(text, decoder)
                except ToolCallDecodeError:
                    continue
                if not is_empty_execute_response(calls):
                    steps.append(calls)
            decoded.append(steps)
        try:
            out = multi_turn_checker(decoded, gt, d.entry, d.category, d.exec_name + "check")
        except Exception as exc:  # noqa: BLE001 - a model output the checker cannot digest is wrong
            return DialogueVerdict(False, "checker_exception", f"{type(exc).__name__}: {exc}")
        if out.get("valid"):
            return DialogueVerdict(True)
        return DialogueVerdict(False, out.get("error_type"), out.get("error_message"))
    finally:
        _drop_instances(d.exec_name)


# ----------------------------------------------------------------------------- oracle
def _positional_names(name: str, involved_classes: Sequence[str]) -> list[str]:
    """Parameter names of API method ``name`` (from the involved BFCL classes' signatures)."""
    import importlib
    import inspect

    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    for cls_name in involved_classes:
        cls = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[cls_name]), cls_name)
        method = getattr(cls, name, None)
        if method is not None and not name.startswith("_"):
            return [p for p in inspect.signature(method).parameters if p != "self"]
    raise ValueError(f"no method {name!r} in {list(involved_classes)}")


def call_string_to_json(call: str, involved_classes: Sequence[str] = ()) -> dict:
    """A ground-truth call string ``f(a=1, b='x')`` -> ``{"name": "f", "parameters": {...}}``;
    positional arguments are named from the API method's signature."""
    node = ast.parse(call.strip(), mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a plain function call: {call!r}")
    params = {}
    if node.args:
        names = _positional_names(node.func.id, involved_classes)
        if len(node.args) > len(names):
            raise ValueError(f"{call!r}: more positional arguments than parameters {names}")
        for pname, arg in zip(names, node.args):
            params[pname] = ast.literal_eval(arg)
    for kw in node.keywords:
        if kw.arg is None:
            raise ValueError(f"**kwargs in {call!r}")
        params[kw.arg] = ast.literal_eval(kw.value)
    return {"name": node.func.id, "parameters": params}


def oracle_turn_answer(calls: Sequence[str], involved_classes: Sequence[str] = ()) -> str:
    """The ground-truth calls of a turn in the ToolRL output format (no call: a plain reply)."""
    if not calls:
        return "<think> Nothing to call. </think>\n<response> Done. </response>"
    lines = [json.dumps(call_string_to_json(c, involved_classes), ensure_ascii=False) for c in calls]
    return "<think> I should call the tools. </think>\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"


def oracle_policy(dialogues: Sequence[Dialogue]) -> list[str]:
    """Answers the first step of each turn with the turn's ground-truth calls, the next one with
    no call (so the turn ends)."""
    out = []
    for d in dialogues:
        if d.step == 0 and not d.current:
            out.append(oracle_turn_answer(d.entry["ground_truth"][d.turn], d.entry["involved_classes"]))
        else:
            out.append("<think> The task is done. </think>\n<response> Done. </response>")
    return out


class EnginePolicy:
    """A :data:`Policy` backed by a rollout engine (rollout/base.py ``RolloutEngine``): the prompts
    of all active dialogues go to ``engine.generate`` together (chunks of ``batch_size``), one
    sample each; prompts longer than ``max_prompt_length`` keep their last tokens."""

    def __init__(self, engine, sampling_for_call: Callable[[int], Any], tool_render: str,
                 max_prompt_length: int | None, batch_size: int = 64):
        self.engine = engine
        self.sampling_for_call = sampling_for_call
        self.tool_render = tool_render
        self.max_prompt_length = max_prompt_length
        self.batch_size = max(1, int(batch_size))
        self.calls = 0
        self.completion_tokens = 0
        self.seconds = 0.0
        self.num_truncated = 0

    def encode(self, d: Dialogue) -> list[int]:
        """Prompt ids of ``d`` (chat template); beyond ``max_prompt_length`` the last tokens are kept."""
        ids = chat_template_ids(self.engine.tokenizer, dialogue_prompt(d, self.tool_render))
        limit = self.max_prompt_length
        if limit is not None and len(ids) > limit:
            self.num_truncated += 1
            if self.num_truncated in (1, 10, 100, 1000):
                log.warning("multi-turn prompt of %s has %d tokens > %d; keeping the last %d (%d truncated so far)",
                            d.id, len(ids), limit, limit, self.num_truncated)
            ids = ids[-limit:]
        return ids

    def __call__(self, dialogues: Sequence[Dialogue]) -> list[str]:
        texts: list[str] = [""] * len(dialogues)
        for start in range(0, len(dialogues), self.batch_size):
            chunk = dialogues[start: start + self.batch_size]
            ids = [self.encode(d) for d in chunk]
            sampling = self.sampling_for_call(self.calls)
            sampling.n = 1
            batch = self.engine.generate(ids, sampling)
            self.calls += 1
            self.completion_tokens += batch.completion_tokens
            self.seconds += batch.seconds
            for s in batch.samples:
                texts[start + s.group_id] = s.text
        log.debug("multi-turn generate: %d prompts, %.1f tokens/s overall", len(dialogues), self.tokens_per_second)
        return texts

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


def first_turns(entry: Mapping[str, Any], max_turns: int) -> dict:
    """``entry`` cut to its first ``max_turns`` user turns (questions, ground truth and held-out
    functions alike): a smoke-scale shortcut, scored by BFCL's checker over those turns only."""
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, got {max_turns}")
    out = dict(entry)
    out["question"] = list(entry["question"])[:max_turns]
    out["ground_truth"] = list(entry["ground_truth"])[:max_turns]
    if entry.get("missed_function"):
        out["missed_function"] = {t: f for t, f in entry["missed_function"].items() if int(t) < max_turns}
    return out


def evaluate_multi_turn(entries: Sequence[dict], policy: Policy, decoder: str, repeats: int = 1,
                        step_limit: int | None = None, max_transcripts: int | None = None,
                        max_turns: int | None = None) -> dict[str, Any]:
    """Run ``repeats`` dialogues per entry with ``policy`` and score them (``max_turns``: only the
    first turns of each entry, :func:`first_turns`; None = BFCL's whole dialogues).

    Returns ``{"valid": {category: [k][n] verdicts}, "errors": {category: {error_type: count}},
    "transcripts": [...], "stats": {...}}``; transcripts (one per entry and repeat, at most
    ``max_transcripts``; None = all) hold every answer, decoded call and execution result.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    limit = bfcl_step_limit() if step_limit is None else int(step_limit)
    if limit < 0:
        raise ValueError(f"step_limit must be >= 0, got {limit}")
    if max_turns is not None:
        entries = [first_turns(e, int(max_turns)) for e in entries]
    dialogues = [Dialogue(e, r, limit) for r in range(repeats) for e in entries]
    stats = run_dialogues(dialogues, policy, decoder)
    valid: dict[str, list[list[bool]]] = {}
    errors: dict[str, dict[str, int]] = {}
    transcripts = []
    for d in dialogues:
        verdict = score_dialogue(d, decoder)
        runs = valid.setdefault(d.category, [[] for _ in range(repeats)])
        runs[d.repeat].append(verdict.valid)
        if not verdict.valid:
            errs = errors.setdefault(d.category, {})
            errs[verdict.error_type or "unknown"] = errs.get(verdict.error_type or "unknown", 0) + 1
        if max_transcripts is None or len(transcripts) < max_transcripts:
            transcripts.append({"id": d.id, "category": d.category, "repeat": d.repeat, "valid": verdict.valid,
                                "error_type": verdict.error_type, "error": verdict.error,
                                "force_quit": d.force_quit, "turns": d.transcript})
    stats["step_limit"] = limit
    stats["max_turns"] = max_turns
    return {"valid": valid, "errors": errors, "transcripts": transcripts, "stats": stats}
