"""Throughput of every reward at a training step's batch size (default 512 prompts x 4 rollouts).

    python scripts/bench/rewards.py [--prompts 512] [--rollouts 4] [--steps 4] [--no-judge]

Data are synthetic and deterministic (seeded): ToolRL-format ground truths with 1-3 calls and
completions that are exact, partly right, badly formatted or garbage; ~40-word reference
summaries and ~40-word completions that share part of their words (inflected forms included, so
the stemmer works). Each step uses new prompts, as training does; all rollouts of a prompt share
its reference. "first step" has every cache cold (process start); "later steps" is the median
over the following steps (the word -> stem cache is warm, the references are new).

The rouge_score row is the reference implementation (RougeScorer with stemming, ROUGE-1/2/L)
on the same data, for comparison. The llm_judge row talks to a local stub server that answers
at once, so it measures the client's own overhead (HTTP, threads, parsing), not a judge model.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rewards import build_reward  # noqa: E402

STEMS = ["walk", "talk", "run", "jump", "play", "work", "read", "write", "study", "agree", "decide", "move",
         "change", "happen", "relation", "general", "nation", "compute", "connect", "develop", "manage",
         "friend", "house", "money", "school", "family", "problem", "question", "answer", "people", "story"]
SUFFIXES = ["", "", "s", "ed", "ing", "er", "ly", "ness", "ment", "ation", "able", "ful"]
SHORT = ["the", "a", "an", "of", "to", "in", "on", "and", "but", "my", "his", "her", "it", "was", "is", "for"]


def make_vocab(rng: random.Random, size: int = 3000) -> list[str]:
    words = set(SHORT)
    while len(words) < size:
        syllables = "".join(rng.choice("bcdfghjklmnprstvwz") + rng.choice("aeiou") for _ in range(rng.randint(1, 3)))
        words.add(rng.choice([syllables, rng.choice(STEMS)]) + rng.choice(SUFFIXES))
    return sorted(words)


def summary_batch(rng: random.Random, vocab: list[str], prompts: int, rollouts: int):
    completions, records = [], []
    for p in range(prompts):
        reference = [rng.choice(vocab) if rng.random() < 0.6 else rng.choice(SHORT) for _ in range(rng.randint(30, 50))]
        ref_text = " ".join(reference).capitalize() + "."
        for _ in range(rollouts):
            keep = rng.uniform(0.2, 0.9)
            words = [w if rng.random() < keep else rng.choice(vocab) for w in reference][: rng.randint(25, 55)]
            words += [rng.choice(vocab) for _ in range(max(0, rng.randint(30, 50) - len(words)))]
            completions.append(" ".join(words).capitalize() + ".")
            records.append({"id": f"s{p}", "ground_truth": ref_text,
                            "prompt": [{"role": "user", "content": "Summarize: " + ref_text}]})
    return completions, records


def _call(rng: random.Random) -> dict:
    params = {f"arg{i}": rng.choice([rng.randint(0, 100), rng.choice(STEMS), rng.random() < 0.5, [1, 2]])
              for i in range(rng.randint(0, 4))}
    return {"name": f"tool_{rng.randint(0, 20)}", "parameters": params}


def _toolrl(calls: list[dict], think: str = "I should call the tool.") -> str:
    return f"<think>{think}</think>\n<tool_call>\n" + "\n".join(json.dumps(c) for c in calls) + "\n</tool_call>"


def toolcall_batch(rng: random.Random, prompts: int, rollouts: int):
    completions, records = [], []
    for p in range(prompts):
        gt_calls = [_call(rng) for _ in range(rng.randint(1, 3))]
        ground_truth = _toolrl(gt_calls, "")
        for _ in range(rollouts):
            kind = rng.random()
            if kind < 0.3:
                text = _toolrl(gt_calls)
            elif kind < 0.7:
                calls = [dict(c, parameters={k: (v if rng.random() < 0.5 else 0) for k, v in c["parameters"].items()})
                         for c in gt_calls] + ([_call(rng)] if rng.random() < 0.3 else [])
                text = _toolrl(calls)
            elif kind < 0.85:
                text = "Sure! " + _toolrl(gt_calls) + "\nAnything else?"
            else:
                text = "I cannot help with that, " + " ".join(rng.choice(STEMS) for _ in range(30))
            completions.append(text)
            records.append({"id": f"t{p}", "ground_truth": ground_truth})
    return completions, records


class StubJudge:
    """A local OpenAI-compatible endpoint that answers "Score: 7" at once."""

    def __init__(self):
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Score: 7"}}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 128
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def time_steps(score, batches) -> list[float]:
    times = []
    for completions, records in batches:
        start = time.perf_counter()
        values = score(completions, records)
        times.append(time.perf_counter() - start)
        assert len(values) == len(completions)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4, help="steps per reward (first one cold)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-judge", action="store_true", help="skip the llm_judge row")
    parser.add_argument("--judge-concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be >= 2 (one cold step and at least one later step)")

    rng = random.Random(args.seed)
    vocab = make_vocab(rng)
    summaries = [summary_batch(rng, vocab, args.prompts, args.rollouts) for _ in range(args.steps)]
    toolcalls = [toolcall_batch(rng, args.prompts, args.rollouts) for _ in range(args.steps)]
    n = args.prompts * args.rollouts

    rows = []
    for name in ("toolcall_format", "toolcall_correctness"):
        rows.append((name, time_steps(build_reward(name), toolcalls)))
    for name in ("summary_quality", "summary_conciseness"):
        rows.append((name, time_steps(build_reward(name), summaries)))

    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)

    def rouge_score_reference(completions, records):
        return [sum(s.fmeasure for s in scorer.score(r["ground_truth"], c).values()) / 3 for c, r in zip(completions, records)]

    rows.append(("rouge_score (reference impl.)", time_steps(rouge_score_reference, summaries[:2])))
    ours = build_reward("summary_quality")(*summaries[0])
    theirs = rouge_score_reference(*summaries[0])
    mismatches = sum(a != b for a, b in zip(ours, theirs))

    if not args.no_judge:
        server = StubJudge()
        try:
            judge = build_reward("llm_judge", base_url=server.base_url, concurrency=args.judge_concurrency,
                                 max_retries=0, timeout_s=10)
            rows.append((f"llm_judge (stub server, {args.judge_concurrency} threads)", time_steps(judge, summaries[:2])))
            if judge.failures:
                print(f"warning: {judge.failures} judge requests failed (last: {judge.last_error})")
        finally:
            server.close()

    print(f"batch: {args.prompts} prompts x {args.rollouts} rollouts = {n} completions per step")
    header = f"{'reward':<40} {'first step s':>13} {'later steps s':>14} {'completions/s':>14}"
    print(header)
    print("-" * len(header))
    for name, times in rows:
        later = statistics.median(times[1:])
        print(f"{name:<40} {times[0]:>13.3f} {later:>14.3f} {n / later:>14,.0f}")
    print(f"summary_quality vs rouge_score on step 1: {mismatches} of {n} values differ (exact comparison)")


if __name__ == "__main__":
    main()
