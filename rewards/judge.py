"""An LLM judge reward: a 0-10 grade from an OpenAI-compatible chat endpoint (e.g. a vLLM server).

The SAW paper graded summaries with an LLM judge on two dimensions, quality and conciseness; the
default rewards of this project are rule-based (:mod:`rewards.summarize`) so that runs are offline
and deterministic, and this judge is the option for the paper's setting.

What the judge sees: the source (the content of the last user message of ``record["prompt"]``,
or ``record["extra_info"]["source"]`` when present), the summary (:func:`rewards.text.summary_text`
of the completion), the rubric of the chosen dimension and, with ``include_reference``, the
reference ``record["ground_truth"]``. It must answer with a line "Score: N" (see
:func:`parse_judge_score` for the forms accepted).

Failures (connection errors, timeouts, HTTP errors, replies without a 0-10 score) are retried
``max_retries`` times with exponential back-off, then the completion gets the minimum (0) and
the failure is counted in ``failures`` (total) and ``last_failures`` (last batch) for logging;
training never stops for the judge. An empty summary scores 0 without a request.
Requests run in a thread pool of ``concurrency`` workers; the client is the standard library's
urllib (POST ``{base_url}/chat/completions``; ``base_url`` includes ``/v1`` as for the openai
package). ``timeout_s`` bounds each socket operation of a request.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from rewards.base import REWARDS, Reward
from rewards.text import after_think, summary_text

log = logging.getLogger(__name__)

JUDGE_MIN, JUDGE_MAX = 0.0, 10.0

DIMENSION_RUBRICS = {
    "quality": (
        "Grade the QUALITY of the summary: does it state the main points of the source correctly "
        "and completely, without inventing facts? 0 = unrelated or wrong, 10 = accurate and covers "
        "everything important."
    ),
    "conciseness": (
        "Grade the CONCISENESS of the summary: does it say what matters in as few words as "
        "possible, without repetition, filler or unnecessary detail? 0 = rambling or padded, "
        "10 = as short as possible while still informative."
    ),
}

SYSTEM_PROMPT = "You are a strict, consistent grader of summaries. You answer with a single score."

USER_TEMPLATE = """{rubric}

Source:
{source}
{reference_block}
Summary to grade:
{summary}

Answer with exactly one line of the form "Score: N" where N is an integer from 0 to 10."""

_NUMBER = r"(\d{1,3}(?:\.\d+)?)"
_SCORE_LABEL = re.compile(r"score\s*(?:is|of|:|=)?\s*[*_]*\s*" + _NUMBER, re.IGNORECASE)
_OUT_OF_TEN = re.compile(_NUMBER + r"\s*/\s*10(?!\d)")
_BARE_NUMBER = re.compile(r"\A[\s*_]*" + _NUMBER + r"[\s*_.]*\Z")


def parse_judge_score(reply: Any) -> float | None:
    """The 0-10 score in a judge reply, or None.

    Accepted, in this order of preference (the last occurrence wins; text before a closing
    ``</think>`` is ignored): "Score: 7" / "score is 7" / "**Score:** 7", "7/10", a bare "7".
    Numbers outside [0, 10] and negative numbers give None.
    """
    if not isinstance(reply, str):
        return None
    text = after_think(reply)
    for pattern in (_SCORE_LABEL, _OUT_OF_TEN, _BARE_NUMBER):
        found = pattern.findall(text)
        if found:
            value = float(found[-1])
            return value if JUDGE_MIN <= value <= JUDGE_MAX else None
    return None


def source_text(record: Any) -> str:
    """The text the summary is of: ``extra_info["source"]`` if present, else the content of
    the last user message of ``record["prompt"]`` (or the prompt itself if it is a string)."""
    if not isinstance(record, dict):
        return ""
    extra = record.get("extra_info")
    if isinstance(extra, dict) and isinstance(extra.get("source"), str):
        return extra["source"]
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get("role") == "user":
                return str(message.get("content", ""))
    return ""


class JudgeError(RuntimeError):
    """One failed judge request (transport, HTTP status, or unparsable reply)."""

    def __init__(self, message: str, retry: bool = True):
        super().__init__(message)
        self.retry = retry


@REWARDS.register("llm_judge", aliases=("judge",))
class LLMJudgeReward(Reward):
    """0-10 grade of each summary by an LLM behind an OpenAI-compatible chat endpoint.

    Options: ``base_url`` (default http://127.0.0.1:8000/v1), ``model``, ``dimension``
    ("quality" | "conciseness", or any label together with your own ``rubric``), ``rubric``,
    ``include_reference`` (show ``record["ground_truth"]`` to the judge), ``temperature`` (0),
    ``max_tokens`` (16), ``timeout_s`` (30: a deadline for the whole request, connection and every
    read included, so a server that trickles bytes cannot hang a step), ``max_retries`` (2), ``retry_backoff_s`` (0.5,
    doubled per retry), ``concurrency`` (8 threads), ``api_key`` (default $OPENAI_API_KEY or
    "EMPTY"), ``log_name`` (the instance's ``name``; default "llm_judge_<dimension>", so two judges
    log apart).

    A request that still fails after its retries scores NaN ("not applicable": SAW and GDPO leave
    it out of the statistics, GRPO counts it 0) and is counted in ``failures`` (logged per step as
    ``reward/<name>/failures``), never a made-up grade. :meth:`preflight` checks at start-up that
    the endpoint answers.
    """

    name = "llm_judge"
    min = JUDGE_MIN
    max = JUDGE_MAX

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str = "judge",
        dimension: str = "quality",
        rubric: str | None = None,
        include_reference: bool = False,
        temperature: float = 0.0,
        max_tokens: int = 16,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        retry_backoff_s: float = 0.5,
        concurrency: int = 8,
        api_key: str | None = None,
        log_name: str | None = None,
    ):
        super().__init__(base_url=base_url, model=model, dimension=dimension, temperature=temperature,
                         max_tokens=max_tokens, timeout_s=timeout_s, max_retries=max_retries,
                         concurrency=concurrency, include_reference=include_reference)
        if rubric is None and dimension not in DIMENSION_RUBRICS:
            raise ValueError(
                f"llm_judge: unknown dimension {dimension!r}; valid: {', '.join(DIMENSION_RUBRICS)} "
                "(or pass your own rubric=...)"
            )
        parsed = urllib.parse.urlsplit(str(base_url))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"llm_judge: base_url {base_url!r} must be an http(s) URL such as http://127.0.0.1:8000/v1")
        if int(concurrency) < 1 or int(max_retries) < 0 or not float(timeout_s) > 0 or int(max_tokens) < 1:
            raise ValueError("llm_judge: need concurrency >= 1, max_retries >= 0, timeout_s > 0, max_tokens >= 1")
        self.url = str(base_url).rstrip("/") + "/chat/completions"
        self.model = str(model)
        self.dimension = str(dimension)
        self.rubric = rubric if rubric is not None else DIMENSION_RUBRICS[dimension]
        self.include_reference = bool(include_reference)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.retry_backoff_s = float(retry_backoff_s)
        self.concurrency = int(concurrency)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "EMPTY")
        self.name = log_name or f"llm_judge_{self.dimension}"
        self.last_failures = 0
        self.last_error: str | None = None
        # No proxy for a judge on this machine (proxy variables would otherwise catch it).
        local = parsed.hostname in ("127.0.0.1", "localhost", "::1")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if local else urllib.request.build_opener()

    # ------------------------------------------------------------------ one request
    def messages(self, summary: str, record: Any) -> list[dict]:
        """The chat messages sent for one summary."""
        reference_block = ""
        if self.include_reference and isinstance(record, dict) and isinstance(record.get("ground_truth"), str):
            reference_block = f"\nReference summary:\n{record['ground_truth']}\n"
        user = (USER_TEMPLATE.replace("{rubric}", self.rubric)
                .replace("{reference_block}", reference_block)
                .replace("{source}", source_text(record))
                .replace("{summary}", summary))
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def _read_before(self, response, deadline: float) -> bytes:
        """The response body, read in chunks with the socket timeout set to the time left."""
        sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
        chunks = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JudgeError(f"request to {self.url} exceeded its {self.timeout_s:g} s deadline")
            if sock is not None:
                sock.settimeout(left)
            chunk = response.read1(65536) if hasattr(response, "read1") else response.read()
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def _request(self, messages: list[dict]) -> float:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature,
                           "max_tokens": self.max_tokens}).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
        deadline = time.monotonic() + self.timeout_s
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                payload = json.loads(self._read_before(response, deadline))
        except urllib.error.HTTPError as exc:
            retry = exc.code >= 500 or exc.code in (408, 429)
            raise JudgeError(f"HTTP {exc.code} from {self.url}", retry=retry) from None
        except JudgeError:
            raise
        except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, timeout, bad JSON
            raise JudgeError(f"request to {self.url} failed: {exc!r}") from None
        try:
            reply = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"unexpected response shape from {self.url}: {str(payload)[:200]}") from None
        score = parse_judge_score(reply)
        if score is None:
            raise JudgeError(f"no 0-10 score in judge reply {str(reply)[:200]!r}")
        return score

    def judge(self, summary: str, record: Any) -> tuple[float | None, str | None]:
        """(score, None) or (None, error message) after at most 1 + max_retries requests."""
        if not summary:
            return JUDGE_MIN, None
        messages = self.messages(summary, record)
        error = None
        for attempt in range(1 + self.max_retries):
            if attempt:
                time.sleep(min(self.retry_backoff_s * 2 ** (attempt - 1), 30.0))
            try:
                return self._request(messages), None
            except JudgeError as exc:
                error = str(exc)
                if not exc.retry:
                    break
            except Exception as exc:  # anything else is a failure too, never an exception
                error = repr(exc)
        return None, error

    # ------------------------------------------------------------------ Reward interface
    def _score_one(self, completion: str, record: dict) -> float:
        return self._score_batch([completion], [record])[0]

    def _score_batch(self, completions: Sequence[str], records: Sequence[dict]) -> list[float]:
        summaries = [summary_text(c) if isinstance(c, str) else "" for c in completions]
        workers = max(1, min(self.concurrency, len(summaries)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-judge") as pool:
            results = list(pool.map(self.judge, summaries, records))
        failed = [error for score, error in results if score is None]
        self.last_failures = len(failed)
        self.failures += len(failed)
        if failed:
            self.last_error = failed[-1]
            log.warning("%s: %d of %d judge requests failed (scored NaN: not applicable); last error: %s",
                        self.name, len(failed), len(results), failed[-1])
        return [float("nan") if score is None else score for score, _ in results]

    def preflight(self) -> None:
        """Grade one short summary; raise RuntimeError naming the endpoint if that fails, so that a
        wrong URL or a server that is down stops a run before it trains on failed grades."""
        score, error = self.judge("A short test summary.", {"prompt": [{"role": "user", "content": "A short text."}]})
        if score is None:
            raise RuntimeError(f"{self.name}: the judge at {self.url} (model {self.model!r}) does not answer: {error}. "
                               "Start an OpenAI-compatible server there (e.g. `vllm serve MODEL --port 8000`) or "
                               "point base_url/model at one")
