"""Hypothesis fuzzing: every reward takes arbitrary model output without raising and stays in range."""

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import build_reward
from rewards.toolcall import correctness_reward, format_reward

TAGS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<response>", "</response>", "<think", "tool_call>",
        "\n", "\n\n", " ", "<|im_start|>assistant\n", "<|im_end|>", "<|endoftext|>", "</s>", "TL;DR:"]
JSON_BITS = ['{"name": "f", "parameters": {"a": 1}}', '{"name": "g", "parameters": {}}', '{"name": "f", "parameters": {"a": true}}',
             '{"name": ["f"], "parameters": {}}', '{"name": "f", "parameters": null}', "{", "}", "[", "]", '"', ":", ",",
             "NaN", "-Infinity", "1e999", '"\\ud800"', '"\\u0000"', "null", '{"a": {"b": {"c": []}}}']
NASTY = ["[" * 10_000, "]" * 10_000, '{"a":' * 10_000, "[" * 10_000 + "]" * 10_000,
         '{"name": "f", "parameters": {"a": ' + "[" * 10_000 + "]" * 10_000 + "}}",
         '{"name": "f", "parameters": {"a": ' + "7" * 6_000 + "}}", "word " * 3_000, "\x00", "\x1b[31m", "\r\n",
         "\u202e", "\ud800", "\udfff", "\ufeff", "İ", "\u212a", "東京", "\U0001f600", "\u0301" * 50, "\x85", "\u2028"]

fragment = st.one_of(st.sampled_from(TAGS), st.sampled_from(JSON_BITS), st.sampled_from(NASTY),
                     st.text(max_size=12), st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
garbage = st.lists(fragment, max_size=25).map("".join)
# references stay short: rougeLsum (delegated to rouge_score) is quadratic in the lengths
short_garbage = st.lists(st.one_of(st.sampled_from(TAGS + JSON_BITS), st.text(max_size=12)), max_size=10).map("".join)


def json_values(allow_nan):
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=allow_nan), st.text(max_size=5))
    return st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
                        max_leaves=8)


def call_lists(allow_nan):
    params = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), json_values(allow_nan), max_size=4)
    return st.lists(st.fixed_dictionaries({"name": st.sampled_from(["f", "g", "h"]), "parameters": params}), min_size=1, max_size=4)


@st.composite
def toolrl_text(draw, allow_nan=True):
    """A well-formed ToolRL text with random calls (maybe) and a response (maybe)."""
    text = "<think>" + draw(st.text(max_size=20).filter(lambda t: "<" not in t)) + "</think>"
    if draw(st.booleans()):
        text += "\n<tool_call>\n" + "\n".join(json.dumps(c) for c in draw(call_lists(allow_nan))) + "\n</tool_call>"
    if draw(st.booleans()):
        text += "\n<response>" + draw(st.text(max_size=10).filter(lambda t: "<" not in t)) + "</response>"
    return text


completion = st.one_of(garbage, toolrl_text(), st.tuples(toolrl_text(), garbage).map("".join),
                       st.tuples(garbage, toolrl_text(), garbage).map("".join))


def in_range(values, reward):
    return all(isinstance(v, float) and not math.isnan(v) and reward.min <= v <= reward.max for v in values)


@pytest.mark.parametrize("rules", ["toolrl", "strict"])
@settings(max_examples=300, deadline=None)
@given(completions=st.lists(completion, min_size=1, max_size=4), ground_truth=toolrl_text(allow_nan=False))
def test_toolcall_rewards_never_raise_and_stay_in_range(rules, completions, ground_truth):
    records = [{"id": str(i), "ground_truth": ground_truth} for i in range(len(completions))]
    for name in ("toolcall_format", "toolcall_correctness"):
        reward = build_reward(name, rules=rules)
        values = reward(completions, records)
        assert len(values) == len(completions) and in_range(values, reward)
        assert reward.failures == 0  # handled by the rules themselves, not the safety net
    assert all(format_reward(c, ground_truth, rules) in (0.0, 1.0) for c in completions)
    # the ground truth scores full marks against itself
    assert format_reward(ground_truth, ground_truth, rules) == 1.0
    assert correctness_reward(ground_truth, ground_truth, rules) == (3.0 if "<tool_call>" in ground_truth else 0.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(completion, min_size=1, max_size=4), st.one_of(short_garbage, st.text(max_size=60)))
def test_summary_rewards_never_raise_and_stay_in_range(completions, reference):
    records = [{"id": str(i), "ground_truth": reference} for i in range(len(completions))]
    for name, options in [("summary_quality", {}), ("summary_quality", {"rouge_types": ["rouge4", "rougeLsum"]}),
                          ("summary_conciseness", {}), ("summary_conciseness", {"budget_words": 3})]:
        reward = build_reward(name, **options)
        values = reward(completions, records)
        assert len(values) == len(completions) and in_range(values, reward)
        assert reward.failures == 0


class _ScoreServer:
    """Replies with a score, a wrong score or junk, depending on the request."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                content = ["Score: 7", "Score: 12", "nonsense", "**3**/10"][len(body) % 4]
                payload = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture(scope="module")
def score_server():
    server = _ScoreServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(completion, min_size=1, max_size=4), st.one_of(garbage, st.text(max_size=30)))
def test_llm_judge_never_raises_and_stays_in_range(score_server, completions, text):
    records = [{"id": "x", "prompt": [{"role": "user", "content": text}], "ground_truth": text}] * len(completions)
    reward = build_reward("llm_judge", base_url=score_server.base_url, max_retries=1, retry_backoff_s=0.0,
                          timeout_s=5.0, concurrency=4, include_reference=True)
    values = reward(completions, records)
    graded = [v for v in values if not math.isnan(v)]  # NaN = a failed grade ("not applicable"), counted
    assert len(values) == len(completions) and in_range(graded, reward)
    assert len(values) - len(graded) == reward.last_failures <= len(completions)
