"""Summarisation rewards: fast ROUGE equals rouge_score exactly; conciseness and text clean-up."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from rewards.summarize import (
    FastRouge,
    SummaryConcisenessReward,
    SummaryQualityReward,
    conciseness_score,
    lcs_length,
    lcs_masks,
    rouge_tokens,
)
from rewards.text import strip_chat_markup, summary_text

TYPES = ["rouge1", "rouge2", "rouge3", "rougeL"]
# Inflected words (exercise the stemmer), short words, digits, punctuation, case, non-ASCII
# (including characters whose lower-case form changes length or becomes ASCII: İ, K = Kelvin).
VOCAB = (
    "the a of to was has its yes bus gas ies cat cats running runs ran runner happily happiness generalization generalize "
    "university universe studies studying studied dogs dog's ponies caresses sky skies dying lying "
    "agreed feed 2024 3.14 e-mail U.S.A. naïve café Straße İstanbul Kelvin \u212a ñandú 東京 データ "
    "œuvre ﬁnance x1y2 ABC Hello, World! -- ... (paren) [b] 'quote' \"dq\" \t \n"
).split(" ")


def random_text(rng: random.Random, max_words: int = 40) -> str:
    words = [rng.choice(VOCAB) for _ in range(rng.randint(0, max_words))]
    seps = [rng.choice([" ", " ", " ", ", ", ". ", "\n", "  ", "-"]) for _ in words]
    return "".join(w + s for w, s in zip(words, seps))


def reference_scores(scorer, target, prediction):
    return {k: tuple(v) for k, v in scorer.score(target, prediction).items()}


@pytest.mark.parametrize("use_stemmer", [True, False])
def test_fast_rouge_equals_rouge_score_on_random_texts(use_stemmer):
    rng = random.Random(1234 + use_stemmer)
    fast = FastRouge(TYPES, use_stemmer=use_stemmer)
    slow = rouge_scorer.RougeScorer(TYPES, use_stemmer=use_stemmer)
    references = [random_text(rng) for _ in range(60)]
    for _ in range(1500):
        reference = rng.choice(references)  # repeated references go through the cache
        prediction = random_text(rng) if rng.random() < 0.8 else reference + random_text(rng, 5)
        assert fast.score(reference, prediction) == reference_scores(slow, reference, prediction)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), st.text(max_size=120))
def test_fast_rouge_equals_rouge_score_on_arbitrary_unicode(reference, prediction):
    fast = FastRouge(TYPES, use_stemmer=True)
    slow = rouge_scorer.RougeScorer(TYPES, use_stemmer=True)
    assert fast.score(reference, prediction) == reference_scores(slow, reference, prediction)
    assert rouge_tokens(prediction) == slow._tokenizer.tokenize(prediction)


def test_rouge_lsum_is_delegated_exactly():
    rng = random.Random(7)
    fast = FastRouge(["rougeLsum", "rougeL"])
    slow = rouge_scorer.RougeScorer(["rougeLsum", "rougeL"], use_stemmer=True)
    for _ in range(100):
        reference, prediction = random_text(rng, 20), random_text(rng, 20)
        assert fast.score(reference, prediction) == reference_scores(slow, reference, prediction)


def lcs_dp(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from("abcde"), max_size=70), st.lists(st.sampled_from("abcdef"), max_size=70))
def test_bit_parallel_lcs_equals_dynamic_programming(a, b):
    assert lcs_length(lcs_masks(a), len(a), b) == lcs_dp(a, b)


def test_hand_computed_rouge_mean():
    # ref: the cat sat on the mat (6 tokens); pred: the cat on the mat (5)
    # R1: overlap 5 -> P 1, R 5/6, F 10/11; R2: 3 common bigrams of 4 / 5 -> F 2/3; RL: LCS 5 -> 10/11
    reward = SummaryQualityReward()
    value = reward(["the cat on the mat"], [{"ground_truth": "the cat sat on the mat"}])[0]
    assert value == pytest.approx(82 / 99, abs=1e-12)
    scores = reward.rouge.score("the cat sat on the mat", "the cat on the mat")
    assert scores["rouge1"][2] == pytest.approx(10 / 11) and scores["rouge2"][2] == pytest.approx(2 / 3)


def test_stemming_option_and_other_measures_and_weights():
    record = [{"ground_truth": "running dogs"}]
    assert SummaryQualityReward(rouge_types=["rouge1"])(["run dog"], record) == [1.0]
    assert SummaryQualityReward(rouge_types=["rouge1"], use_stemmer=False)(["run dog"], record) == [0.0]
    record = [{"ground_truth": "alpha beta gamma delta"}]
    # prediction "alpha beta": R1 P=1, R=1/2; R2 P=1, R=1/3
    assert SummaryQualityReward(rouge_types=["rouge1"], measure="recall")(["alpha beta"], record) == [0.5]
    assert SummaryQualityReward(rouge_types=["rouge1", "rouge2"], measure="precision")(["alpha beta"], record) == [1.0]
    weighted = SummaryQualityReward(rouge_types=["rouge1", "rouge2"], measure="recall", weights=[3, 1])
    assert weighted(["alpha beta"], record)[0] == pytest.approx((3 * 0.5 + 1 / 3) / 4, abs=1e-12)


def test_quality_reads_cleaned_summary_and_handles_empty():
    reward = SummaryQualityReward()
    record = {"ground_truth": "the cat sat on the mat"}
    wrapped = "<|im_start|>assistant\nTL;DR: the cat sat on the mat<|im_end|>\nextra words here"
    assert reward([wrapped, "", "   ", "<think>scratch</think>the cat sat on the mat"], [record] * 4) == [1.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "options, match",
    [
        ({"rouge_types": ["rougeX"]}, "unknown ROUGE type 'rougeX'; valid: rouge1"),
        ({"rouge_types": []}, "rouge_types is empty"),
        ({"measure": "f1"}, "unknown measure 'f1'; valid: fmeasure"),
        ({"weights": [1.0]}, "must be 3 non-negative"),
        ({"weights": [1, -1, 1]}, "must be 3 non-negative"),
    ],
)
def test_quality_options_are_checked(options, match):
    with pytest.raises(ValueError, match=match):
        SummaryQualityReward(**options)


# ------------------------------------------------------------------------------ conciseness
@pytest.mark.parametrize(
    "words, budget, expected",
    [(0, 10, 0.0), (1, 10, 1.0), (10, 10, 1.0), (11, 10, 0.9), (15, 10, 0.5), (20, 10, 0.0), (35, 10, 0.0), (3, 2, 0.5)],
)
def test_conciseness_score(words, budget, expected):
    assert conciseness_score(words, budget) == pytest.approx(expected, abs=1e-12)


def test_conciseness_reward_budget_from_reference_or_config():
    ten = " ".join(f"w{i}" for i in range(10))
    record = {"ground_truth": ten}
    words = lambda n: " ".join(["word"] * n)  # noqa: E731
    reward = SummaryConcisenessReward()
    assert reward([words(10), words(15), words(20), "", "<|im_start|>assistant\n" + words(15) + "<|im_end|>"], [record] * 5) == [
        1.0, 0.5, 0.0, 0.0, 0.5]
    assert SummaryConcisenessReward(budget_words=4)([words(4), words(6), words(8)], [record] * 3) == [1.0, 0.5, 0.0]
    assert SummaryConcisenessReward(budget_ratio=0.5)([words(5), words(6)], [record] * 2) == [1.0, pytest.approx(0.8)]
    # an empty reference is a budget of one word
    assert SummaryConcisenessReward()(["one", "one two"], [{"ground_truth": ""}] * 2) == [1.0, 0.0]
    with pytest.raises(ValueError, match="budget_words=0 must be >= 1"):
        SummaryConcisenessReward(budget_words=0)


# ------------------------------------------------------------------------------ text clean-up
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  plain text \n", "plain text"),
        ("<|im_start|>assistant\nhello<|im_end|>", "hello"),
        ("hello<|im_end|>\n<|im_start|>user\nmore", "hello"),
        ("<|start_header_id|>assistant<|end_header_id|>\n\nhi<|eot_id|>", "hi"),
        ("answer</s>junk", "answer"),
        ("a <|weird_token|> b", "a  b"),
        (None, ""),
    ],
)
def test_strip_chat_markup(raw, expected):
    assert strip_chat_markup(raw) == expected


def test_summary_text_drops_think_and_label():
    assert summary_text("<think>plan</think>\nSummary: It rains.") == "It rains."
    assert summary_text("TL;DR: short") == "short"
    assert summary_text("tl;dr - short") == "short"
    assert summary_text("The summary: is here") == "The summary: is here"  # label only at the start
