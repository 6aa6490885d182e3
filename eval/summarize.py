"""Summarisation metrics on a held-out split: ROUGE-1/2/L, the task's rewards, length, judge.

For each completion the summary is :func:`rewards.text.summary_text` (chat markup stripped, the
text after ``</think>``, a leading "TL;DR:"/"Summary:" label dropped), the text the rewards score.

Metrics (means over all samples; with k repeats each run has the same records, so this is also
the mean of the per-run means; ``metrics_std`` is the std over runs):

- ``rouge1``, ``rouge2``, ``rougeL``: F1 from ``rouge_score.rouge_scorer.RougeScorer`` (Porter
  stemmer on) of the summary against ``record["ground_truth"]``, in [0, 1].
- ``quality``: the registered ``summary_quality`` reward (mean ROUGE F1 by default), [0, 1].
- ``conciseness``: the registered ``summary_conciseness`` reward (word budget), [0, 1].
- ``total`` = quality + conciseness, in [0, 2]: each on its own 0-1 scale. The paper's Total
  (0-20) is the sum of two 0-10 judge grades; see ``judge_total``.
- ``mean_words``: mean number of whitespace-separated words of the summary.
- with a judge endpoint: ``judge_quality``, ``judge_conciseness`` (the registered ``llm_judge``
  reward, 0-10 each) and ``judge_total`` = their sum (0-20, the paper's scale). A grade that
  fails after its retries is NaN (see :mod:`rewards.judge`): left out of the means and counted in
  ``judge_failures``. The judge is the eval config's ``judge`` section when it names an endpoint,
  else the run's own ``llm_judge`` rewards (the same rubric, model and grade cache as training).

Options of the quality/conciseness rewards are taken from the task's reward specs when they
name those rewards, so evaluation scores with the same settings as training.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping, Sequence

from rewards import build_rewards
from rewards.text import summary_text

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge_f1(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F1 of one prediction against one reference (rouge_score, stemmer on)."""
    scores = _rouge_scorer().score(reference, prediction)
    return {t: float(scores[t].fmeasure) for t in ROUGE_TYPES}


def reward_spec(specs: Sequence[Any] | None, name: str) -> dict[str, Any]:
    """The config entry for reward ``name`` in ``specs`` (names or {"name": ..., **kwargs}), as a
    dict with ``name``; ``{"name": name}`` when the specs do not mention it."""
    for spec in specs or []:
        if isinstance(spec, str) and spec == name:
            return {"name": name}
        if isinstance(spec, Mapping) and spec.get("name") == name:
            return dict(spec)
    return {"name": name}


def judge_specs(judge_cfg: Mapping[str, Any] | None,
                task_specs: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """``llm_judge`` reward specs (quality, conciseness) from the eval config's ``judge`` section;
    without a ``base_url`` there, the task's own ``llm_judge`` rewards (logged as judge_<dimension>);
    empty when neither names a judge."""
    if not judge_cfg or not judge_cfg.get("base_url"):
        own = [dict(spec) for spec in (task_specs or []) if isinstance(spec, Mapping)
               and spec.get("name") in ("llm_judge", "judge")]
        return [{**spec, "log_name": f"judge_{spec.get('dimension', 'quality')}"} for spec in own]
    options = {k: v for k, v in dict(judge_cfg).items() if v is not None and k not in ("dimensions",)}
    dims = list(judge_cfg.get("dimensions") or ("quality", "conciseness"))
    return [{"name": "llm_judge", **options, "dimension": d, "log_name": f"judge_{d}"} for d in dims]


def _mean(xs: Sequence[float]) -> float | None:
    """Mean of the values that are not NaN (a failed judge grade is NaN: left out, not a 0)."""
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(xs) / len(xs) if xs else None


def _std(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def score_summaries(completions: Sequence[str], records: Sequence[Mapping[str, Any]],
                    reward_specs: Sequence[Any] | None = None,
                    judge_cfg: Mapping[str, Any] | None = None) -> list[dict[str, float]]:
    """Per-sample scores: rouge1/2/L, quality, conciseness, total, words (+ judge_* with a judge).

    ``completions[i]`` is scored against ``records[i]`` (a summarisation record).
    """
    if len(completions) != len(records):
        raise ValueError(f"{len(completions)} completions for {len(records)} records")
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping) or not isinstance(rec.get("ground_truth"), str):
            raise ValueError(f"record {i} has no string 'ground_truth' (the reference summary)")
    quality, conciseness = build_rewards([reward_spec(reward_specs, "summary_quality"),
                                          reward_spec(reward_specs, "summary_conciseness")])
    records = list(records)
    q = quality(list(completions), records)
    c = conciseness(list(completions), records)
    rows = []
    for i, (text, rec) in enumerate(zip(completions, records)):
        summary = summary_text(text)
        row = rouge_f1(summary, rec["ground_truth"])
        row.update(quality=float(q[i]), conciseness=float(c[i]), total=float(q[i]) + float(c[i]),
                   words=float(len(summary.split())))
        rows.append(row)
    for judge in build_rewards(judge_specs(judge_cfg, reward_specs)):
        grades = judge(list(completions), records)
        for row, g in zip(rows, grades):
            row[judge.name] = float(g)
            row["judge_failures"] = row.get("judge_failures", 0.0) + float(math.isnan(g))
    if any("judge_quality" in r and "judge_conciseness" in r for r in rows):
        for row in rows:  # NaN when either grade failed: that row is left out of the mean
            row["judge_total"] = row["judge_quality"] + row["judge_conciseness"]
    return rows


def aggregate_summaries(rows_per_run: Sequence[Sequence[Mapping[str, float]]]) -> dict[str, Any]:
    """Mean metrics over runs x records, and the std over runs.

    Args:
        rows_per_run: [k][n] per-sample score dicts from :func:`score_summaries`.

    Returns ``{"metrics": {...}, "metrics_std": {...}, "runs": [per-run means]}`` with the keys
    rouge1, rouge2, rougeL, quality, conciseness, total, mean_words (+ judge_* when present).
    """
    if not rows_per_run or any(len(rows) == 0 for rows in rows_per_run):
        raise ValueError("aggregate_summaries needs at least one run with at least one sample")
    keys = [k for k in rows_per_run[0][0] if k != "words"]
    runs = []
    for rows in rows_per_run:
        run = {k: _mean([float(r[k]) for r in rows]) for k in keys}
        run["mean_words"] = _mean([float(r["words"]) for r in rows])
        runs.append(run)
    names = keys + ["mean_words"]
    metrics = {k: _mean([run[k] for run in runs]) for k in names}
    metrics_std = {k: _std([run[k] for run in runs]) for k in names}
    return {"metrics": metrics, "metrics_std": metrics_std, "runs": runs}
