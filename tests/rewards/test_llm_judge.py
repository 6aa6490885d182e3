"""LLM judge reward against a real OpenAI-compatible HTTP server on 127.0.0.1 (stdlib http.server)."""

import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rewards import build_reward
from rewards.judge import LLMJudgeReward, parse_judge_score


class JudgeServer:
    """/v1/chat/completions; ``behaviour(request_json, n) -> (status, reply_text_or_body, delay_s)``."""

    def __init__(self):
        self.requests = []
        self.headers = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.behaviour = lambda request, n: (200, "Score: 7", 0.0)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append((self.path, body))
                    server.headers.append(dict(self.headers))
                    n = len(server.requests)
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                try:
                    status, reply, delay = server.behaviour(body, n)
                    time.sleep(delay)
                finally:
                    # leave the in-flight count before answering: the client can only send its
                    # next request after this reply, so a count taken later would overlap it
                    with server.lock:
                        server.in_flight -= 1
                try:
                    if isinstance(reply, bytes):
                        payload = reply
                    else:
                        payload = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reset(self, behaviour):
        self.behaviour = behaviour
        self.requests.clear()
        self.headers.clear()
        self.peak_in_flight = 0

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    srv = JudgeServer()
    yield srv
    srv.close()


def all_nan(scores):
    return len(scores) > 0 and all(math.isnan(x) for x in scores)


def judge(server, **options):
    options = {"retry_backoff_s": 0.0, "timeout_s": 5.0, "model": "judge-model", **options}
    return LLMJudgeReward(base_url=server.base_url, **options)


RECORD = {"id": "1", "prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": "POST: my cat ate my homework"}],
          "ground_truth": "cat ate homework"}


def test_scores_and_sends_an_openai_style_request(server):
    server.reset(lambda request, n: (200, "Score: 7", 0.0))
    reward = judge(server, dimension="conciseness", temperature=0.3, api_key="secret")
    assert (reward.min, reward.max, reward.name) == (0.0, 10.0, "llm_judge_conciseness")
    assert reward(["<|im_start|>assistant\nTL;DR: the cat ate it<|im_end|>"], [RECORD]) == [7.0]
    (path, body), = server.requests
    assert path == "/v1/chat/completions"
    assert body["model"] == "judge-model" and body["temperature"] == 0.3 and body["max_tokens"] == 16
    assert body["structured_outputs"] == {"regex": "Score: (10|[0-9])"}
    user = body["messages"][-1]["content"]
    assert "CONCISENESS" in user and "POST: my cat ate my homework" in user
    assert "Summary to grade:\nthe cat ate it\n" in user and "cat ate homework" not in user  # no reference
    assert server.headers[0]["Authorization"] == "Bearer secret"
    assert reward.failures == 0 and reward.last_failures == 0


def test_reference_and_custom_rubric(server):
    server.reset(lambda request, n: (200, "**Score:** 9/10", 0.0))
    reward = judge(server, dimension="faithfulness", rubric="Grade FAITHFULNESS.", include_reference=True)
    assert reward(["a summary"], [RECORD]) == [9.0]
    user = server.requests[0][1]["messages"][-1]["content"]
    assert "Grade FAITHFULNESS." in user and "Reference summary:\ncat ate homework" in user
    assert reward.name == "llm_judge_faithfulness"


def test_results_keep_their_order_under_concurrency(server):
    def behaviour(request, n):
        wanted = re.search(r"Summary to grade:\nsummary number (\d+)", request["messages"][-1]["content"]).group(1)
        return 200, f"Score: {int(wanted) % 11}", 0.02 * (n % 3)

    server.reset(behaviour)
    reward = judge(server, concurrency=4)
    values = reward([f"summary number {i}" for i in range(30)], [RECORD] * 30)
    assert values == [float(i % 11) for i in range(30)]


def test_concurrency_is_bounded_by_the_thread_pool(server):
    server.reset(lambda request, n: (200, "Score: 5", 0.15))
    reward = judge(server, concurrency=3)
    start = time.perf_counter()
    assert reward(["s"] * 9, [RECORD] * 9) == [5.0] * 9
    elapsed = time.perf_counter() - start
    assert 2 <= server.peak_in_flight <= 3
    assert elapsed < 9 * 0.15  # parallel, not one by one


def test_retries_server_errors_then_succeeds(server):
    server.reset(lambda request, n: (500, b"{}", 0.0) if n <= 2 else (200, "Score: 8", 0.0))
    reward = judge(server, max_retries=2)
    assert reward(["s"], [RECORD]) == [8.0]
    assert len(server.requests) == 3 and reward.failures == 0


def test_gives_up_after_bounded_retries_and_counts_failures(server):
    server.reset(lambda request, n: (503, b"{}", 0.0))
    reward = judge(server, max_retries=1)
    assert all_nan(reward(["a", "b"], [RECORD] * 2))  # failed grades are "not applicable", not 0
    assert len(server.requests) == 4  # 2 completions x (1 + 1 retry)
    assert reward.failures == 2 and reward.last_failures == 2 and "HTTP 503" in reward.last_error
    server.reset(lambda request, n: (200, "Score: 6", 0.0))
    assert reward(["a"], [RECORD]) == [6.0]
    assert reward.failures == 2 and reward.last_failures == 0


def test_client_errors_are_not_retried(server):
    server.reset(lambda request, n: (400, b'{"error": "bad model"}', 0.0))
    reward = judge(server, max_retries=3, constrain_reply=False)
    assert all_nan(reward(["s"], [RECORD]))
    assert len(server.requests) == 1 and reward.failures == 1
    assert "structured_outputs" not in server.requests[0][1]


def test_reply_constraint_is_sent_and_dropped_by_a_server_that_refuses_it(server):
    server.reset(lambda request, n: (400, b'{"error": "unknown field"}', 0.0) if "structured_outputs" in request
                 else (200, "Score: 4", 0.0))
    reward = judge(server, max_retries=0)
    assert reward(["a"], [RECORD]) == [4.0]  # a 400 with the constraint: asked again without it at once
    assert server.requests[0][1]["structured_outputs"] == {"regex": "Score: (10|[0-9])"}
    assert "structured_outputs" not in server.requests[1][1]
    assert reward(["b"], [RECORD]) == [4.0] and len(server.requests) == 3  # and never again
    server.reset(lambda request, n: (400, b"{}", 0.0))
    assert all_nan(reward(["c"], [RECORD])) and len(server.requests) == 1  # a 400 without it is final


@pytest.mark.parametrize("reply", ["I like it.", "Score: 11", "Score: -2", "", b"not json", b'{"choices": []}',
                                   b'{"choices": [{"message": {"content": null}}]}'])
def test_unusable_replies_are_failures(server, reply):
    server.reset(lambda request, n: (200, reply, 0.0))
    reward = judge(server, max_retries=1)
    assert all_nan(reward(["s"], [RECORD]))
    assert reward.failures == 1 and len(server.requests) == 2


def test_timeout_is_a_failure_not_a_hang(server):
    server.reset(lambda request, n: (200, "Score: 9", 1.0))
    reward = judge(server, timeout_s=0.2, max_retries=0)
    start = time.perf_counter()
    assert all_nan(reward(["s"], [RECORD]))
    assert time.perf_counter() - start < 0.9
    assert reward.failures == 1 and "timed out" in reward.last_error


def test_unreachable_server_is_a_failure():
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reward = LLMJudgeReward(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, retry_backoff_s=0.0, timeout_s=1.0)
    assert all_nan(reward(["a", "b", "c"], [RECORD] * 3))
    assert reward.failures == 3
    with pytest.raises(RuntimeError, match=f"the judge at http://127.0.0.1:{port}/v1/chat/completions .* does not answer"):
        reward.preflight()


def test_preflight_passes_on_a_live_server(server):
    server.reset(lambda request, n: (200, "Score: 5", 0.0))
    judge(server).preflight()
    assert len(server.requests) == 1


def test_a_trickling_server_cannot_hang_a_request():
    """Headers at once, then one body byte every 0.3 s: the per-request deadline (timeout_s=1)
    ends it, although no single read waits longer than the socket timeout."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    body = json.dumps({"choices": [{"message": {"content": "Score: 9"}}]}).encode()

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n")
        try:
            for byte in body:
                conn.sendall(bytes([byte]))
                time.sleep(0.3)
        except OSError:
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    reward = LLMJudgeReward(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout_s=1.0)
    start = time.perf_counter()
    assert all_nan(reward(["s"], [RECORD]))
    assert time.perf_counter() - start < 2.0  # without the deadline: ~0.3 s x every byte of the body
    assert "deadline" in reward.last_error or "timed out" in reward.last_error
    listener.close()


def test_empty_summary_scores_zero_without_a_request(server):
    server.reset(lambda request, n: (200, "Score: 10", 0.0))
    reward = judge(server)
    assert reward(["", "  <|im_end|>", "TL;DR:"], [RECORD] * 3) == [0.0, 0.0, 0.0]
    assert server.requests == [] and reward.failures == 0


def test_built_from_config_by_name(server):
    reward = build_reward("llm_judge", base_url=server.base_url, dimension="quality", log_name="judge_q")
    assert isinstance(reward, LLMJudgeReward) and reward.name == "judge_q"
    with pytest.raises(ValueError, match="unknown dimension 'style'; valid: quality, conciseness"):
        build_reward("llm_judge", dimension="style")
    with pytest.raises(ValueError, match="must be an http"):
        build_reward("llm_judge", base_url="127.0.0.1:8000")


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Score: 7", 7.0),
        ("score is 8.5", 8.5),
        ("**Score:** 10", 10.0),
        ("Score = 0", 0.0),
        ("I would give it 6/10.", 6.0),
        ("6 / 10", 6.0),
        ("  4 ", 4.0),
        ("**9**", 9.0),
        ("Early draft: score 2. Final answer: Score: 5", 5.0),  # last labelled score wins
        ("<think>maybe Score: 3</think>Score: 8", 8.0),  # reasoning is ignored
        ("Score: 11", None),
        ("Score: -1", None),
        ("It is good", None),
        ("7 out of ten", None),
        ("3/100", None),
        (None, None),
    ],
)
def test_parse_judge_score(reply, expected):
    assert parse_judge_score(reply) == expected


# ----------------------------------------------------------------------------- rubrics, endpoint, cache, stats
def test_rubrics_come_from_the_versioned_file(server):
    from rewards.judge import RUBRICS_DIR, load_rubrics

    rubrics = load_rubrics("v1")
    assert rubrics.path == str(RUBRICS_DIR / "rubrics_v1.yaml") and rubrics.version == "v1"
    assert set(rubrics.dimensions) == {"quality", "conciseness"}
    assert "not publish" in (RUBRICS_DIR / "rubrics_v1.yaml").read_text()  # says the paper's rubric is unknown
    server.reset(lambda request, n: (200, "Score: 7", 0.0))
    reward = judge(server, dimension="quality")
    assert reward(["x"], [RECORD]) == [7.0]
    system, user = server.requests[0][1]["messages"]
    assert system["content"] == rubrics.system_prompt and user["content"].startswith(rubrics.dimensions["quality"])
    with pytest.raises(ValueError, match=r"rubrics_v9\.yaml' does not exist .*versions in .*: v1"):
        judge(server, rubrics="v9")


def test_a_rubric_file_given_by_path(server, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("version: mine-1\nsystem_prompt: Be fair.\nuser_template: '{rubric} | {summary}'\n"
                    "dimensions: {brevity: Grade BREVITY.}\n")
    server.reset(lambda request, n: (200, "Score: 3", 0.0))
    reward = judge(server, rubrics=str(path), dimension="brevity")
    assert reward(["short"], [RECORD]) == [3.0] and reward.rubric_version == "mine-1"
    assert [m["content"] for m in server.requests[0][1]["messages"]] == ["Be fair.", "Grade BREVITY. | short"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: bad\nsystem_prompt: x\nuser_template: no placeholders\ndimensions: {a: b}\n")
    with pytest.raises(ValueError, match=r"user_template lacks \{rubric\}"):
        judge(server, rubrics=str(bad))


def test_endpoint_model_and_key_come_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("JUDGE_BASE_URL", server.base_url)
    monkeypatch.setenv("JUDGE_MODEL", "env-model")
    monkeypatch.setenv("JUDGE_API_KEY", "env-secret")
    server.reset(lambda request, n: (200, "Score: 2", 0.0))
    reward = LLMJudgeReward(retry_backoff_s=0.0)
    assert reward(["x"], [RECORD]) == [2.0]
    assert server.requests[0][1]["model"] == "env-model" and server.headers[0]["Authorization"] == "Bearer env-secret"
    assert "env-secret" not in repr(reward.config) and "api_key" not in reward.config  # the key is never logged


def test_the_model_defaults_to_the_first_the_server_lists(monkeypatch):
    """No model configured: GET /v1/models once (a real vLLM server names its model there)."""
    import socket

    monkeypatch.delenv("JUDGE_MODEL", raising=False)
    srv = JudgeServer()
    listed = []

    class Handler(srv.httpd.RequestHandlerClass):
        def do_GET(self):
            listed.append(self.path)
            payload = json.dumps({"object": "list", "data": [{"id": "served-judge"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    srv.httpd.RequestHandlerClass = Handler
    try:
        reward = LLMJudgeReward(base_url=srv.base_url, retry_backoff_s=0.0)
        assert reward(["a", "b"], [RECORD] * 2) == [7.0, 7.0]
        assert listed == ["/v1/models"] and reward.model == "served-judge"
        assert {body["model"] for _, body in srv.requests} == {"served-judge"}
    finally:
        srv.close()
    with socket.socket() as sock:  # nothing listening: the listing fails like any request
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reward = LLMJudgeReward(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    assert all_nan(reward(["a"], [RECORD])) and "cannot list the judge's models" in reward.last_error


def test_without_an_endpoint_preflight_says_how_to_start_one(monkeypatch):
    monkeypatch.delenv("JUDGE_BASE_URL", raising=False)
    reward = build_reward("llm_judge", dimension="conciseness")  # building is fine (config checks)...
    with pytest.raises(RuntimeError) as info:  # ...the start-up probe stops the run
        reward.preflight()
    message = str(info.value)
    assert "no LLM judge endpoint is configured" in message and "JUDGE_BASE_URL" in message
    assert "`make judge`" in message and "scripts/serve_judge.sh" in message
    assert "task.rewards=[summary_quality,summary_conciseness]" in message
    assert all_nan(reward(["a summary"], [RECORD]))  # scoring anyway: NaN and counted, no request, no crash
    assert reward.failures == 1 and "no LLM judge endpoint" in reward.last_error
    assert reward.take_stats()["failures"] == 1.0


def test_grades_are_cached_in_memory(server):
    server.reset(lambda request, n: (200, "Score: 6", 0.0))
    reward = judge(server)
    assert reward(["same", "same", "other"], [RECORD] * 3) == [6.0] * 3
    first = reward.take_stats()
    assert first["calls"] + first["cache_hits"] == 3 and first["calls"] >= 2  # the two "same" may race
    assert reward(["same", "other"], [RECORD] * 2) == [6.0, 6.0]
    assert reward.take_stats() == {"calls": 0.0, "cache_hits": 2.0, "failures": 0.0, "retries": 0.0,
                                   "latency_mean_s": 0.0}
    other_record = dict(RECORD, extra_info={"source": "another post"})
    assert reward(["same"], [other_record]) == [6.0] and reward.take_stats()["calls"] == 1.0  # another prompt
    assert judge(server, cache=False).cache is None


def test_failed_grades_are_not_cached(server):
    server.reset(lambda request, n: (503, b"{}", 0.0) if n == 1 else (200, "Score: 5", 0.0))
    reward = judge(server, max_retries=0)
    assert all_nan(reward(["s"], [RECORD]))
    assert reward(["s"], [RECORD]) == [5.0] and len(server.requests) == 2


def test_disk_cache_serves_a_second_run_and_survives_torn_lines(server, tmp_path):
    path = tmp_path / "cache" / "judge.jsonl"
    server.reset(lambda request, n: (200, f"Score: {n}", 0.0))
    first = judge(server, cache_path=str(path), concurrency=1)
    assert first(["a", "b"], [RECORD] * 2) == [1.0, 2.0]
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["rubrics"] == "v1" and json.loads(lines[0])["model"] == "judge-model"
    with path.open("a") as fh:  # a crash in the middle of a write
        fh.write('{"key": "abc", "sco')
    second = judge(server, cache_path=str(path), concurrency=1)  # e.g. a resumed run or an evaluation
    assert second.cache.skipped_lines == 1 and len(second.cache) == 2
    assert second(["a", "b", "c"], [RECORD] * 3) == [1.0, 2.0, 3.0]
    assert second.take_stats()["cache_hits"] == 2.0 and len(server.requests) == 3
    third = judge(server, cache_path=str(path))
    assert third.cache.skipped_lines == 1 and len(third.cache) == 3  # "c" was written on a line of its own
    # another judge model, rubric version or temperature does not reuse the grades
    assert judge(server, cache_path=str(path), model="judge-2")(["a"], [RECORD]) == [4.0]
    assert judge(server, cache_path=str(path), rubric="Grade it.")(["a"], [RECORD]) == [5.0]
    assert judge(server, cache_path=str(path), temperature=0.7)(["a"], [RECORD]) == [6.0]
    assert judge(server, cache_path=str(path))(["a"], [RECORD]) == [1.0] and len(server.requests) == 6


def test_an_unwritable_cache_file_never_stops_scoring(server, tmp_path):
    server.reset(lambda request, n: (200, "Score: 8", 0.0))
    blocker = tmp_path / "file"
    blocker.write_text("")
    reward = judge(server, cache_path=str(blocker / "judge.jsonl"))  # a folder that cannot exist
    assert reward(["a"], [RECORD]) == [8.0] and reward.cache.path is None
    assert reward(["a"], [RECORD]) == [8.0] and len(server.requests) == 1  # still cached in memory


def test_stats_count_calls_retries_failures_and_latency(server):
    server.reset(lambda request, n: (500, b"{}", 0.0) if n <= 3 else (200, "Score: 9", 0.05))
    reward = judge(server, max_retries=1, concurrency=1)
    assert reward(["a", "b", "c"], [RECORD] * 3)[1:] == [9.0, 9.0]
    stats = reward.take_stats()
    assert set(stats) == {"calls", "cache_hits", "failures", "retries", "latency_mean_s"}
    assert stats["calls"] == 5 and stats["retries"] == 2 and stats["failures"] == 1 and stats["cache_hits"] == 0
    assert 0.02 < stats["latency_mean_s"] < 1.0  # 2 of 5 calls took >= 0.05 s
    assert reward.take_stats()["calls"] == 0.0  # reset on read


def test_preflight_is_not_served_from_the_cache_nor_counted(server):
    server.reset(lambda request, n: (200, "Score: 5", 0.0))
    reward = judge(server)
    reward.preflight()
    reward.preflight()
    assert len(server.requests) == 2
    assert reward.take_stats() == {"calls": 0.0, "cache_hits": 0.0, "failures": 0.0, "retries": 0.0,
                                   "latency_mean_s": 0.0}
