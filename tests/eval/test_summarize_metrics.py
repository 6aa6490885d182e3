"""Summarisation metrics: ROUGE by hand, the task's rewards, totals, lengths, a judge over HTTP."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from eval.summarize import aggregate_summaries, judge_specs, reward_spec, rouge_f1, score_summaries

REF = "the cat sat on the mat"


def record(reference: str = REF) -> dict:
    return {"id": "r", "prompt": [{"role": "user", "content": "Summarize: a cat sat on a mat all day."}],
            "ground_truth": reference, "data_source": "test", "extra_info": {}}


def test_rouge_by_hand():
    # prediction tokens: the cat sat (3); reference: the cat sat on the mat (6)
    s = rouge_f1("the cat sat", REF)
    assert s["rouge1"] == pytest.approx(2 * 1 * 0.5 / 1.5)            # P 3/3, R 3/6
    assert s["rouge2"] == pytest.approx(2 * 1 * 0.4 / 1.4)            # bigrams P 2/2, R 2/5
    assert s["rougeL"] == pytest.approx(2 / 3)                         # LCS 3
    assert rouge_f1("dogs bark", REF) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_score_summaries_by_hand():
    completions = ["<think> short </think> TL;DR: the cat sat",        # 3 words, within budget 6
                   "the cat sat on the mat and then it slept"]       # 10 words: (12 - 10) / 6
    rows = score_summaries(completions, [record(), record()])
    q0 = (2 / 3 + 4 / 7 + 2 / 3) / 3
    assert rows[0]["quality"] == pytest.approx(q0)
    assert rows[0]["conciseness"] == 1.0 and rows[0]["words"] == 3.0
    assert rows[0]["total"] == pytest.approx(q0 + 1.0)
    assert rows[1]["conciseness"] == pytest.approx(2 / 6) and rows[1]["words"] == 10.0
    # ROUGE-1 of the second: P 6/10, R 6/6
    assert rows[1]["rouge1"] == pytest.approx(2 * 0.6 * 1.0 / 1.6)
    assert "judge_quality" not in rows[0]


def test_task_reward_options_are_used():
    specs = [{"name": "summary_quality", "rouge_types": ["rouge1"]}, {"name": "summary_conciseness", "budget_words": 2}]
    row = score_summaries(["the cat sat"], [record()], specs)[0]
    assert row["quality"] == pytest.approx(2 / 3)           # rouge1 only
    assert row["conciseness"] == pytest.approx((4 - 3) / 2)  # budget 2 words, 3 written
    assert reward_spec(["summary_quality"], "summary_conciseness") == {"name": "summary_conciseness"}


def test_aggregate_over_runs_by_hand():
    run_a = [{"rouge1": 0.2, "quality": 0.1, "total": 1.1, "words": 10.0},
             {"rouge1": 0.4, "quality": 0.3, "total": 1.3, "words": 20.0}]
    run_b = [{"rouge1": 0.6, "quality": 0.5, "total": 1.5, "words": 30.0},
             {"rouge1": 0.8, "quality": 0.7, "total": 1.7, "words": 40.0}]
    out = aggregate_summaries([run_a, run_b])
    assert out["metrics"]["rouge1"] == pytest.approx(0.5)
    assert out["metrics"]["mean_words"] == pytest.approx(25.0)
    # run means 0.3 and 0.7 -> std 0.4 / sqrt(2)
    assert out["metrics_std"]["rouge1"] == pytest.approx(0.4 / math.sqrt(2))
    assert [r["total"] for r in out["runs"]] == pytest.approx([1.2, 1.6])
    with pytest.raises(ValueError):
        aggregate_summaries([[]])


def test_judge_specs_only_with_endpoint():
    assert judge_specs(None) == [] and judge_specs({"base_url": None}) == []
    specs = judge_specs({"base_url": "http://127.0.0.1:1/v1", "model": "m", "dimensions": ["quality"],
                         "timeout_s": None})
    assert specs == [{"name": "llm_judge", "base_url": "http://127.0.0.1:1/v1", "model": "m", "dimension": "quality",
                      "log_name": "judge_quality"}]


@pytest.fixture
def judge_server():
    """An OpenAI-compatible endpoint grading quality 7 and conciseness 4."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = body["messages"][-1]["content"]
            reply = "Score: 7" if "QUALITY" in text else "Score: 4"
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_judge_scores(judge_server):
    rows = score_summaries(["the cat sat", "a cat"], [record(), record()],
                           judge_cfg={"base_url": judge_server, "model": "judge", "max_retries": 0})
    for row in rows:
        assert row["judge_quality"] == 7.0 and row["judge_conciseness"] == 4.0 and row["judge_total"] == 11.0
    out = aggregate_summaries([rows])
    assert out["metrics"]["judge_total"] == 11.0


def test_failed_judge_grades_are_left_out_of_the_means():
    from eval.summarize import _mean

    assert _mean([4.0, float("nan"), 6.0]) == 5.0
    assert _mean([float("nan")]) is None


def test_evaluation_uses_the_runs_own_judge_when_none_is_configured():
    from eval.summarize import judge_specs

    own = [{"name": "summary_quality"}, {"name": "llm_judge", "dimension": "conciseness", "base_url": "http://j:1/v1",
                                         "rubrics": "v1", "temperature": 0.1}]
    specs = judge_specs({"base_url": None, "dimensions": ["quality", "conciseness"]}, own)
    assert specs == [{**own[1], "log_name": "judge_conciseness"}]
    explicit = judge_specs({"base_url": "http://other:2/v1", "model": "m"}, own)
    assert [s["base_url"] for s in explicit] == ["http://other:2/v1"] * 2
    assert judge_specs(None, [{"name": "summary_quality"}]) == []
