"""Summarisation rewards: ROUGE quality against the reference and a word-budget conciseness rule.

Both compare :func:`rewards.text.summary_text` of the completion (chat markup stripped, text after
a ``</think>``, a leading "TL;DR:"/"Summary:" label dropped) with ``record["ground_truth"]`` (the
reference summary, used as is).

ROUGE is computed by this module's own code from cached tokens and gives exactly the numbers of
``rouge_score.rouge_scorer.RougeScorer`` (same tokenisation: lower-case, runs of [a-z0-9],
NLTK's Porter stemmer on tokens longer than 3 characters; same precision/recall/F1 arithmetic).
It is fast because a reference's tokens, n-gram counts and LCS bit masks are computed once and
cached (a reference is shared by all rollouts of its prompt), each word is stemmed once
(``lru_cache``), and the LCS length comes from a bit-parallel algorithm (one big-integer update
per prediction token instead of an m x n table). ``rougeLsum`` is delegated to ``rouge_score``
(with the cached tokenizer) and is not fast.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

from rewards.base import REWARDS
from rewards.text import summary_text
from rewards.toolcall import GroundTruthReward

_WORD = re.compile(r"[a-z0-9]+")
_VALID_TOKEN = re.compile(r"^[a-z0-9]+$")
_ROUGE_N = re.compile(r"rouge([1-9])")
MEASURES = ("fmeasure", "precision", "recall")


# ---------------------------------------------------------------------------------- tokens
@lru_cache(maxsize=1)
def _porter():
    from nltk.stem import porter  # imported on first use: nltk is slow to import

    return porter.PorterStemmer()


@lru_cache(maxsize=1 << 18)
def _stem(word: str) -> str | None:
    """rouge_score's per-token rule: stem words longer than 3 characters; None if the result is
    not a valid [a-z0-9]+ token."""
    stem = _porter().stem(word) if len(word) > 3 else word
    return stem if _VALID_TOKEN.match(stem) else None


def rouge_tokens(text: str, use_stemmer: bool = True) -> list[str]:
    """The tokens rouge_score's default tokenizer gives for ``text`` (list[str])."""
    words = _WORD.findall(text.lower())
    if not use_stemmer:
        return words
    stems = [_stem(w) for w in words]
    return [s for s in stems if s is not None]


class CachedRougeTokenizer:
    """A ``rouge_score`` tokenizer (``.tokenize(text) -> list[str]``) with the stem cache."""

    def __init__(self, use_stemmer: bool = True):
        self.use_stemmer = use_stemmer

    def tokenize(self, text: str) -> list[str]:
        return rouge_tokens(text, self.use_stemmer)


# ---------------------------------------------------------------------------------- scores
def f_measure(precision: float, recall: float) -> float:
    """2PR / (P + R), 0 when both are 0 (rouge_score's arithmetic)."""
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    """Counter of the n-grams (tuples; plain tokens for n = 1) of ``tokens``."""
    if n == 1:
        return Counter(tokens)
    return Counter(zip(*(tokens[i:] for i in range(n))))


def lcs_masks(tokens: Sequence[str]) -> dict[str, int]:
    """Bit mask per token: bit i is set where tokens[i] is that token."""
    masks: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    return masks


def lcs_length(masks: dict[str, int], m: int, tokens: Sequence[str]) -> int:
    """Length of the longest common subsequence of the m reference tokens (given as
    :func:`lcs_masks`) and ``tokens``, by the bit-parallel recurrence of Hyyroe (2004):
    V starts all ones; per token, U = V & M[token]; V = (V + U) | (V - U); LCS = zeros of V."""
    full = (1 << m) - 1
    v = full
    for tok in tokens:
        u = v & masks.get(tok, 0)
        if u:
            v = ((v + u) | (v - u)) & full
    return m - v.bit_count()


@dataclass
class _Reference:
    tokens: list[str]
    ngrams: dict[int, Counter]
    masks: dict[str, int]


def _prf(overlap: int, predicted_total: int, target_total: int) -> tuple[float, float, float]:
    precision = overlap / max(predicted_total, 1)
    recall = overlap / max(target_total, 1)
    return precision, recall, f_measure(precision, recall)


class FastRouge:
    """ROUGE-N (n = 1..9) and ROUGE-L scores equal to ``rouge_score``'s, with caching.

    ``score(reference, prediction) -> {type: (precision, recall, fmeasure)}``.
    """

    def __init__(self, rouge_types: Sequence[str] = ("rouge1", "rouge2", "rougeL"), use_stemmer: bool = True,
                 cache_size: int = 1 << 16):
        self.rouge_types = tuple(validate_rouge_types(rouge_types))
        self.use_stemmer = bool(use_stemmer)
        self._orders = sorted({int(m.group(1)) for t in self.rouge_types if (m := _ROUGE_N.fullmatch(t))})
        self._reference = lru_cache(maxsize=cache_size)(self._build_reference)
        self._lsum = None
        if "rougeLsum" in self.rouge_types:
            from rouge_score import rouge_scorer  # imported on first use (pulls in nltk)

            self._lsum = rouge_scorer.RougeScorer(["rougeLsum"], tokenizer=CachedRougeTokenizer(self.use_stemmer))

    def _build_reference(self, text: str) -> _Reference:
        tokens = rouge_tokens(text, self.use_stemmer)
        return _Reference(tokens, {n: ngram_counts(tokens, n) for n in self._orders}, lcs_masks(tokens))

    def score(self, reference: str, prediction: str) -> dict[str, tuple[float, float, float]]:
        ref = self._reference(reference)
        pred = rouge_tokens(prediction, self.use_stemmer)
        out = {}
        for rouge_type in self.rouge_types:
            if rouge_type == "rougeL":
                if not ref.tokens or not pred:
                    out[rouge_type] = (0, 0, 0)
                    continue
                lcs = lcs_length(ref.masks, len(ref.tokens), pred)
                precision, recall = lcs / len(pred), lcs / len(ref.tokens)
                out[rouge_type] = (precision, recall, f_measure(precision, recall))
            elif rouge_type == "rougeLsum":
                s = self._lsum.score(reference, prediction)["rougeLsum"]
                out[rouge_type] = (s.precision, s.recall, s.fmeasure)
            else:
                n = int(rouge_type[5:])
                target = ref.ngrams[n]
                predicted = ngram_counts(pred, n)
                overlap = sum((target & predicted).values())
                out[rouge_type] = _prf(overlap, max(len(pred) - n + 1, 0), max(len(ref.tokens) - n + 1, 0))
        return out


def validate_rouge_types(rouge_types: Any) -> list[str]:
    """Check a list of ROUGE type names (rouge1..rouge9, rougeL, rougeLsum)."""
    if isinstance(rouge_types, str):
        rouge_types = [rouge_types]
    rouge_types = list(rouge_types)
    if not rouge_types:
        raise ValueError("rouge_types is empty; give e.g. [rouge1, rouge2, rougeL]")
    for t in rouge_types:
        if not (isinstance(t, str) and (_ROUGE_N.fullmatch(t) or t in ("rougeL", "rougeLsum"))):
            raise ValueError(f"unknown ROUGE type {t!r}; valid: rouge1 .. rouge9, rougeL, rougeLsum")
    return rouge_types


# ---------------------------------------------------------------------------------- rewards
@REWARDS.register("summary_quality", aliases=("rouge",))
class SummaryQualityReward(GroundTruthReward):
    """ROUGE of the summary (:func:`summary_text` of the completion) against the reference
    ``record["ground_truth"]``, combined over ROUGE types; range [0, 1].

    Options: ``rouge_types`` (default [rouge1, rouge2, rougeL]), ``measure`` (fmeasure |
    precision | recall, default fmeasure), ``weights`` (one non-negative weight per type for a
    weighted mean; default the plain mean), ``use_stemmer`` (default True).
    """

    name = "summary_quality"
    min = 0.0
    max = 1.0

    def __init__(self, rouge_types: Sequence[str] = ("rouge1", "rouge2", "rougeL"), measure: str = "fmeasure",
                 weights: Sequence[float] | None = None, use_stemmer: bool = True):
        super().__init__(rouge_types=list(rouge_types), measure=measure, weights=weights, use_stemmer=use_stemmer)
        if measure not in MEASURES:
            raise ValueError(f"summary_quality: unknown measure {measure!r}; valid: {', '.join(MEASURES)}")
        self.rouge = FastRouge(rouge_types, use_stemmer=use_stemmer)
        self._measure_index = {"precision": 0, "recall": 1, "fmeasure": 2}[measure]
        if weights is None:
            self.weights = None
        else:
            weights = [float(w) for w in weights]
            if len(weights) != len(self.rouge.rouge_types) or any(not w >= 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(
                    f"summary_quality: weights {weights} must be {len(self.rouge.rouge_types)} non-negative "
                    f"numbers (one per ROUGE type {list(self.rouge.rouge_types)}) with a positive sum"
                )
            self.weights = weights

    def _score_one(self, completion: str, record: dict) -> float:
        scores = self.rouge.score(record["ground_truth"], summary_text(completion))
        values = [scores[t][self._measure_index] for t in self.rouge.rouge_types]
        if self.weights is None:
            return sum(values) / len(values)
        return sum(w * v for w, v in zip(self.weights, values)) / sum(self.weights)


def conciseness_score(num_words: int, budget: float) -> float:
    """1 for 1..budget words, falling linearly to 0 at twice the budget; 0 for no words."""
    if num_words <= 0:
        return 0.0
    if num_words <= budget:
        return 1.0
    return max(0.0, (2 * budget - num_words) / budget)


@REWARDS.register("summary_conciseness", aliases=("conciseness",))
class SummaryConcisenessReward(GroundTruthReward):
    """Word-budget rule on the summary (:func:`summary_text` of the completion; words are
    whitespace-separated): :func:`conciseness_score`; range [0, 1].

    The budget is ``budget_words`` when given, else ``budget_ratio`` (default 1) times the word
    count of the reference ``record["ground_truth"]``; a budget below one word counts as one.
    """

    name = "summary_conciseness"
    min = 0.0
    max = 1.0

    def __init__(self, budget_words: float | None = None, budget_ratio: float = 1.0):
        super().__init__(budget_words=budget_words, budget_ratio=budget_ratio)
        if budget_words is not None and not float(budget_words) >= 1:
            raise ValueError(f"summary_conciseness: budget_words={budget_words} must be >= 1 (or null)")
        if not float(budget_ratio) > 0:
            raise ValueError(f"summary_conciseness: budget_ratio={budget_ratio} must be > 0")
        self.budget_words = None if budget_words is None else float(budget_words)
        self.budget_ratio = float(budget_ratio)

    def budget(self, record: dict) -> float:
        """The word budget for one record."""
        if self.budget_words is not None:
            return self.budget_words
        return max(1.0, self.budget_ratio * len(record["ground_truth"].split()))

    def _score_one(self, completion: str, record: dict) -> float:
        return conciseness_score(len(summary_text(completion).split()), self.budget(record))
