"""An LLM judge reward: a 0-10 grade from an OpenAI-compatible chat endpoint (e.g. a vLLM server).

The SAW paper graded summaries with an LLM judge on two dimensions, quality and conciseness; the
paper's TL;DR experiment (conf/experiment/paper_tldr_qwen2.5-1.5b.yaml) uses this reward, and the
embedded experiments use the rule-based rewards (:mod:`rewards.summarize`), offline and
deterministic. ``scripts/serve_judge.sh`` (``make judge``) starts a judge with vLLM.

Endpoint: option ``base_url`` or ``$JUDGE_BASE_URL`` (includes ``/v1``, as for the openai
package); model: option ``model`` or ``$JUDGE_MODEL``, else the first model the server lists at
``/v1/models``; API key: ``$JUDGE_API_KEY`` (or ``$OPENAI_API_KEY``), never put in the config,
never logged. Without an endpoint, :meth:`LLMJudgeReward.preflight` (run by ``saw.rl.job``
before the policy loads) stops the run with what to do.

Prompts: the rubric file ``conf/judge/rubrics_<version>.yaml`` (option ``rubrics``, default
``v1``: :func:`load_rubrics`) holds the system prompt, the user template and one rubric per
dimension. What the judge sees: the source (``record["extra_info"]["source"]`` when present, else
the content of the last user message of ``record["prompt"]``), the summary
(:func:`rewards.text.summary_text` of the completion), the dimension's rubric and, with
``include_reference``, the reference ``record["ground_truth"]``. It must answer with a line
"Score: N" (see :func:`parse_judge_score` for the forms accepted).

Failures (connection errors, timeouts, HTTP errors, replies without a 0-10 score) are retried
``max_retries`` times with exponential back-off; a grade that still fails is NaN ("not
applicable") and counted, never a made-up grade; training never stops for the judge. An empty
summary scores 0 without a request. Requests run in a thread pool of ``concurrency`` workers; the
client is the standard library's urllib (POST ``{base_url}/chat/completions``); ``timeout_s`` is a
deadline for each whole request.

Cache: grades are kept by (judge model, rubric version, sampling settings, prompt text) in memory
and, with ``cache_path``, in an append-only JSONL file read back at start (torn or foreign lines
are skipped), so evaluation runs and resumed runs do not pay twice for the same summary.
Per-step statistics (:meth:`LLMJudgeReward.take_stats`): calls, cache hits, failures, retries,
mean latency.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import yaml

from rewards.base import REWARDS, Reward
from rewards.text import after_think, summary_text

log = logging.getLogger(__name__)

JUDGE_MIN, JUDGE_MAX = 0.0, 10.0
RUBRICS_DIR = Path(__file__).resolve().parents[1] / "conf" / "judge"
DEFAULT_RUBRICS = "v1"
ENV_BASE_URL, ENV_MODEL, ENV_API_KEY = "JUDGE_BASE_URL", "JUDGE_MODEL", "JUDGE_API_KEY"
STAT_KEYS = ("calls", "cache_hits", "failures", "retries", "latency_mean_s")
# vLLM's structured outputs (guided decoding) keep a judge's reply to this form (constrain_reply)
SCORE_REGEX = r"Score: (10|[0-9])"


def no_endpoint_message(name: str = "llm_judge") -> str:
    """The error of a run that needs a judge and has no endpoint: how to start one, or how to
    switch to the rule-based rewards."""
    return (f"{name}: no LLM judge endpoint is configured (the reward's base_url is empty and ${ENV_BASE_URL} is not "
            "set). Start a judge with `make judge` (scripts/serve_judge.sh [MODEL] [PORT]: vLLM's OpenAI-compatible "
            f"server; it prints the line `export {ENV_BASE_URL}=... {ENV_MODEL}=...` to run before training), or "
            f"export {ENV_BASE_URL} (and {ENV_MODEL}, {ENV_API_KEY}) for any OpenAI-compatible server; or train with "
            "the rule-based rewards instead: task.rewards=[summary_quality,summary_conciseness]")


# ============================================================================ rubrics
@dataclass(frozen=True)
class Rubrics:
    """One version of the judge prompts (a ``conf/judge/rubrics_<version>.yaml`` file)."""

    version: str
    system_prompt: str
    user_template: str
    dimensions: dict
    path: str


def load_rubrics(spec: str = DEFAULT_RUBRICS) -> Rubrics:
    """The rubrics named ``spec``: a version (``v1`` -> ``conf/judge/rubrics_v1.yaml``) or a path
    to a YAML file with ``version``, ``system_prompt``, ``user_template`` and ``dimensions``."""
    spec = str(spec)
    looks_like_path = spec.endswith((".yaml", ".yml")) or os.sep in spec
    path = Path(spec).expanduser() if looks_like_path else RUBRICS_DIR / f"rubrics_{spec}.yaml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("rubrics_") for p in RUBRICS_DIR.glob("rubrics_*.yaml"))
        raise ValueError(f"llm_judge: rubric file {str(path)!r} does not exist (rubrics={spec!r}); "
                         f"versions in {RUBRICS_DIR}: {', '.join(known) or 'none'}, or give a path to a YAML file")
    return _read_rubrics(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=16)
def _read_rubrics(path: str, mtime_ns: int) -> Rubrics:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"llm_judge: rubric file {path!r} is not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"llm_judge: rubric file {path!r} must hold a mapping")
    missing = [k for k in ("version", "system_prompt", "user_template", "dimensions") if not data.get(k)]
    if missing:
        raise ValueError(f"llm_judge: rubric file {path!r} lacks {missing}")
    dims = data["dimensions"]
    if not isinstance(dims, dict) or not all(isinstance(v, str) and v.strip() for v in dims.values()):
        raise ValueError(f"llm_judge: rubric file {path!r}: 'dimensions' must map names to rubric texts")
    template = str(data["user_template"])
    for placeholder in ("{rubric}", "{summary}"):
        if placeholder not in template:
            raise ValueError(f"llm_judge: rubric file {path!r}: user_template lacks {placeholder}")
    return Rubrics(version=str(data["version"]), system_prompt=str(data["system_prompt"]).strip(),
                   user_template=template, dimensions={str(k): " ".join(str(v).split()) for k, v in dims.items()},
                   path=str(path))


# ============================================================================ parsing
_NUMBER = r"(\d{1,3}(?:\.\d+)?)"
_SCORE_LABEL = re.compile(r"score\s*(?:is|of|:|=)?\s*[*_]*\s*" + _NUMBER, re.IGNORECASE)
_OUT_OF_TEN = re.compile(_NUMBER + r"\s*/\s*10(?!\d)")
_BARE_NUMBER = re.compile(r"\A[\s*_]*" + _NUMBER + r"[\s*_.]*\Z")


def parse_judge_score(reply: Any) -> float | None:
    """The 0-10 score in a judge reply, or None (never raises).

    Accepted, in this order of preference (the last occurrence wins; text before a closing
    ``</think>`` is ignored): "Score: 7" / "score is 7" / "**Score:** 7", "7/10", a bare "7".
    Numbers outside [0, 10] and negative numbers give None.
    """
    if not isinstance(reply, str):
        return None
    try:
        text = after_think(reply)
        for pattern in (_SCORE_LABEL, _OUT_OF_TEN, _BARE_NUMBER):
            found = pattern.findall(text)
            if found:
                value = float(found[-1])
                return value if JUDGE_MIN <= value <= JUDGE_MAX else None
    except Exception:  # noqa: BLE001 - parsing never raises
        return None
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


# ============================================================================ cache
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: str) -> threading.Lock:
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(path, threading.Lock())


class GradeCache:
    """Judge grades by key, in memory and optionally in an append-only JSONL file.

    Each line of the file is ``{"key": sha256 hex, "score": float, ...}``; lines that do not
    parse (a write torn by a crash) or hold no valid score are skipped when the file is read.
    Writes are one ``write`` of one line each, in append mode; a failing write (disk full,
    no permission) turns the file off with one warning and never raises.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.scores: dict[str, float] = {}
        self.path = str(Path(path).expanduser()) if path else None
        self.skipped_lines = 0
        self._lock = threading.Lock()
        self._torn_tail = False
        if self.path:
            self._read()

    def _read(self) -> None:
        path = Path(self.path)
        if not path.is_file():
            return
        data = path.read_bytes()
        self._torn_tail = bool(data) and not data.endswith(b"\n")
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                key, score = entry["key"], float(entry["score"])
                if not isinstance(key, str) or not JUDGE_MIN <= score <= JUDGE_MAX:
                    raise ValueError(key)
            except (ValueError, KeyError, TypeError):
                self.skipped_lines += 1
                continue
            self.scores[key] = score
        if self.skipped_lines:
            log.warning("judge cache %s: skipped %d unreadable line(s) (e.g. a write cut by a crash)",
                        self.path, self.skipped_lines)

    def get(self, key: str) -> float | None:
        with self._lock:
            return self.scores.get(key)

    def put(self, key: str, score: float, info: dict | None = None) -> None:
        with self._lock:
            self.scores[key] = score
        if not self.path:
            return
        line = json.dumps({"key": key, "score": score, **(info or {})}, ensure_ascii=False) + "\n"
        try:
            with _file_lock(self.path):
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as fh:
                    if self._torn_tail:  # end the torn line so that this one stays readable
                        line = "\n" + line
                        self._torn_tail = False
                    fh.write(line)
        except OSError as exc:
            log.warning("judge cache %s cannot be written (%r); keeping grades in memory only", self.path, exc)
            self.path = None

    def __len__(self) -> int:
        return len(self.scores)


# ============================================================================ the reward
@REWARDS.register("llm_judge", aliases=("judge",))
class LLMJudgeReward(Reward):
    """0-10 grade of each summary by an LLM behind an OpenAI-compatible chat endpoint.

    Options: ``base_url`` (default ``$JUDGE_BASE_URL``; none: :meth:`preflight` stops the run,
    see :func:`no_endpoint_message`), ``model`` (default ``$JUDGE_MODEL``, else the first model
    the server lists), ``dimension`` ("quality" | "conciseness", the dimensions of the rubric file,
    or any label together with your own ``rubric`` text), ``rubrics`` (rubric file version or
    path, default v1), ``rubric``, ``include_reference`` (show ``record["ground_truth"]`` to the
    judge), ``temperature`` (0.1), ``max_tokens`` (16), ``timeout_s`` (30: a deadline for the whole
    request, connection and every read included, so a server that trickles bytes cannot hang a
    step), ``max_retries`` (2), ``retry_backoff_s`` (0.5, doubled per retry), ``concurrency`` (8
    threads), ``constrain_reply`` (true: ask for a reply of the form "Score: N" through vLLM's
    structured outputs, ``{"structured_outputs": {"regex": SCORE_REGEX}}``; a server that refuses
    the field with HTTP 400 is asked again without it, and never again), ``cache`` (true: keep grades in memory), ``cache_path`` (JSONL file of grades, shared
    by runs and evaluations; null: memory only), ``api_key`` (default ``$JUDGE_API_KEY``, then
    ``$OPENAI_API_KEY``, then "EMPTY"; keep it out of configs), ``log_name`` (the instance's
    ``name``; default "llm_judge_<dimension>", so two judges log apart).

    A request that still fails after its retries scores NaN ("not applicable": SAW and GDPO leave
    it out of the statistics, GRPO counts it 0) and is counted in ``failures`` (logged per step as
    ``reward/<name>/failures``). :meth:`take_stats` gives the judge's own per-step counters.
    """

    name = "llm_judge"
    min = JUDGE_MIN
    max = JUDGE_MAX

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        dimension: str = "quality",
        rubric: str | None = None,
        rubrics: str = DEFAULT_RUBRICS,
        include_reference: bool = False,
        temperature: float = 0.1,
        max_tokens: int = 16,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        retry_backoff_s: float = 0.5,
        concurrency: int = 8,
        constrain_reply: bool = True,
        cache: bool = True,
        cache_path: str | None = None,
        api_key: str | None = None,
        log_name: str | None = None,
    ):
        base_url = base_url or os.environ.get(ENV_BASE_URL) or None
        model = model or os.environ.get(ENV_MODEL) or None
        # the API key is not part of self.config (which may be logged)
        super().__init__(base_url=base_url, model=model, dimension=dimension, rubrics=rubrics,
                         temperature=temperature, max_tokens=max_tokens, timeout_s=timeout_s,
                         max_retries=max_retries, concurrency=concurrency, include_reference=include_reference,
                         cache_path=cache_path, constrain_reply=constrain_reply)
        self.rubrics = load_rubrics(rubrics)
        if rubric is None and dimension not in self.rubrics.dimensions:
            raise ValueError(
                f"llm_judge: unknown dimension {dimension!r}; valid: {', '.join(self.rubrics.dimensions)} "
                f"(rubrics {self.rubrics.version}; or pass your own rubric=...)"
            )
        if base_url is not None:
            parsed = urllib.parse.urlsplit(str(base_url))
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"llm_judge: base_url {base_url!r} must be an http(s) URL such as "
                                 "http://127.0.0.1:8000/v1")
        if int(concurrency) < 1 or int(max_retries) < 0 or not float(timeout_s) > 0 or int(max_tokens) < 1:
            raise ValueError("llm_judge: need concurrency >= 1, max_retries >= 0, timeout_s > 0, max_tokens >= 1")
        self.base_url = str(base_url).rstrip("/") if base_url is not None else None
        self.url = f"{self.base_url}/chat/completions" if self.base_url else None
        self.model = str(model) if model is not None else None
        self.dimension = str(dimension)
        if rubric is not None:
            self.rubric = str(rubric)
            self.rubric_version = f"{self.rubrics.version}+custom-{hashlib.sha256(self.rubric.encode()).hexdigest()[:8]}"
        else:
            self.rubric = self.rubrics.dimensions[self.dimension]
            self.rubric_version = self.rubrics.version
        self.include_reference = bool(include_reference)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.retry_backoff_s = float(retry_backoff_s)
        self.concurrency = int(concurrency)
        self.constrain_reply = bool(constrain_reply)
        self.api_key = (api_key if api_key is not None
                        else os.environ.get(ENV_API_KEY) or os.environ.get("OPENAI_API_KEY") or "EMPTY")
        self.name = log_name or f"llm_judge_{self.dimension}"
        self.cache = GradeCache(cache_path) if cache else None
        self.last_failures = 0
        self.last_error: str | None = None
        self._stats_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._reset_stats()
        # No proxy for a judge on this machine (proxy variables would otherwise catch it).
        host = urllib.parse.urlsplit(self.base_url).hostname if self.base_url else None
        local = host in ("127.0.0.1", "localhost", "::1")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if local else urllib.request.build_opener()

    # ------------------------------------------------------------------ statistics
    def _reset_stats(self) -> None:
        self._stats = {"calls": 0, "cache_hits": 0, "failures": 0, "retries": 0, "latency_sum": 0.0}

    def _count(self, key: str, value: float = 1) -> None:
        with self._stats_lock:
            self._stats[key] += value

    def take_stats(self) -> dict[str, float]:
        """Counters since the last call (then reset): ``calls`` (HTTP requests sent, retries
        included), ``cache_hits`` (grades served from the cache), ``failures`` (grades that failed
        after their retries: NaN), ``retries`` (requests re-sent after a failure),
        ``latency_mean_s`` (mean seconds per request; 0 without requests)."""
        with self._stats_lock:
            s = dict(self._stats)
            self._reset_stats()
        return {"calls": float(s["calls"]), "cache_hits": float(s["cache_hits"]), "failures": float(s["failures"]),
                "retries": float(s["retries"]),
                "latency_mean_s": s["latency_sum"] / s["calls"] if s["calls"] else 0.0}

    # ------------------------------------------------------------------ one request
    def messages(self, summary: str, record: Any) -> list[dict]:
        """The chat messages sent for one summary."""
        reference_block = ""
        if self.include_reference and isinstance(record, dict) and isinstance(record.get("ground_truth"), str):
            reference_block = f"\nReference summary:\n{record['ground_truth']}\n"
        user = (self.rubrics.user_template.replace("{rubric}", self.rubric)
                .replace("{reference_block}", reference_block)
                .replace("{source}", source_text(record))
                .replace("{summary}", summary))
        return [{"role": "system", "content": self.rubrics.system_prompt}, {"role": "user", "content": user}]

    def cache_key(self, model: str, messages: list[dict]) -> str:
        """sha256 of (judge model, rubric version, sampling settings, prompt text)."""
        blob = json.dumps([model, self.rubric_version, self.temperature, self.max_tokens, messages],
                          ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _open(self, request, deadline: float) -> bytes:
        with self._opener.open(request, timeout=max(0.001, min(self.timeout_s, deadline - time.monotonic()))) as response:
            return self._read_before(response, deadline)

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

    def served_model(self) -> str:
        """The model to ask: the configured one, else the first model the server lists (asked once)."""
        if self.model is not None:
            return self.model
        with self._model_lock:
            if self.model is None:
                url = f"{self.base_url}/models"
                request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.api_key}"})
                try:
                    listing = json.loads(self._open(request, time.monotonic() + self.timeout_s))
                    self.model = str(listing["data"][0]["id"])
                except JudgeError:
                    raise
                except Exception as exc:  # noqa: BLE001 - refused, timeout, bad JSON, no models
                    raise JudgeError(f"cannot list the judge's models at {url} ({exc!r}); set ${ENV_MODEL}") from None
                log.info("%s: judge model %r (the first listed by %s)", self.name, self.model, url)
        return self.model

    def _request(self, model: str, messages: list[dict]) -> float:
        body = {"model": model, "messages": messages, "temperature": self.temperature, "max_tokens": self.max_tokens}
        constrained = self.constrain_reply
        if constrained:
            body["structured_outputs"] = {"regex": SCORE_REGEX}
        body = json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
        start = time.monotonic()
        try:
            payload = json.loads(self._open(request, start + self.timeout_s))
        except urllib.error.HTTPError as exc:
            if exc.code == 400 and constrained and self.constrain_reply:
                self.constrain_reply = False  # e.g. not a vLLM server: ask without the constraint from now on
                log.warning("%s: the judge refused structured_outputs (HTTP 400); asking without it", self.name)
                return self._request(model, messages)
            retry = exc.code >= 500 or exc.code in (408, 429)
            raise JudgeError(f"HTTP {exc.code} from {self.url}", retry=retry) from None
        except JudgeError:
            raise
        except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, timeout, bad JSON
            raise JudgeError(f"request to {self.url} failed: {exc!r}") from None
        finally:
            with self._stats_lock:
                self._stats["calls"] += 1
                self._stats["latency_sum"] += time.monotonic() - start
        try:
            reply = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"unexpected response shape from {self.url}: {str(payload)[:200]}") from None
        score = parse_judge_score(reply)
        if score is None:
            raise JudgeError(f"no 0-10 score in judge reply {str(reply)[:200]!r}")
        return score

    def _grade(self, messages: list[dict], use_cache: bool = True) -> tuple[float | None, str | None]:
        """(score, None) or (None, error) after at most 1 + max_retries requests (0 on a cache hit)."""
        if self.url is None:
            return None, no_endpoint_message(self.name)
        key = model = None
        error = None
        for attempt in range(1 + self.max_retries):
            if attempt:
                self._count("retries")
                time.sleep(min(self.retry_backoff_s * 2 ** (attempt - 1), 30.0))
            try:
                if model is None:
                    model = self.served_model()
                    if use_cache and self.cache is not None:
                        key = self.cache_key(model, messages)
                        hit = self.cache.get(key)
                        if hit is not None:
                            self._count("cache_hits")
                            return hit, None
                score = self._request(model, messages)
                if key is not None:
                    self.cache.put(key, score, {"model": model, "rubrics": self.rubric_version,
                                                "dimension": self.dimension})
                return score, None
            except JudgeError as exc:
                error = str(exc)
                if not exc.retry:
                    break
            except Exception as exc:  # noqa: BLE001 - anything else is a failure too, never an exception
                error = repr(exc)
        return None, error

    def judge(self, summary: str, record: Any) -> tuple[float | None, str | None]:
        """(score, None) or (None, error message) for one summary; failures are counted."""
        if not summary:
            return JUDGE_MIN, None
        try:
            score, error = self._grade(self.messages(summary, record))
        except Exception as exc:  # noqa: BLE001 - never raises
            score, error = None, repr(exc)
        if score is None:
            self._count("failures")
        return score, error

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
        return [float("nan") if score is None or math.isnan(score) else score for score, _ in results]

    def preflight(self) -> None:
        """Before any model loads: stop the run when no endpoint is configured (saying how to start
        one or how to use the rule-based rewards), or when one short summary cannot be graded
        (naming the endpoint), so that a run never trains on failed grades. Bypasses the cache and
        the statistics."""
        if self.url is None:
            raise RuntimeError(no_endpoint_message(self.name))
        stats = self.take_stats()
        score, error = self._grade(self.messages("A short test summary.",
                                                 {"prompt": [{"role": "user", "content": "A short text."}]}),
                                   use_cache=False)
        with self._stats_lock:  # the probe is not a step's work
            self._reset_stats()
            for key in ("calls", "cache_hits", "failures", "retries"):
                self._stats[key] = int(stats[key])
            self._stats["latency_sum"] = stats["latency_mean_s"] * stats["calls"]
        if score is None:
            raise RuntimeError(f"{self.name}: the judge at {self.url} (model {self.model!r}) does not answer: {error}. "
                               "Start an OpenAI-compatible server there (`make judge`, i.e. scripts/serve_judge.sh, or "
                               f"`vllm serve MODEL --port 8000`) or point ${ENV_BASE_URL}/${ENV_MODEL} (or the reward's "
                               "base_url/model) at one")
