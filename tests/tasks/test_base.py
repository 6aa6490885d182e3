"""Task contract: build_task, record validation, prompt encoding and left truncation, splitting helpers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saw.tasks import TASKS, Task, TaskDataError, build_task
from saw.core.tokens import chat_template_ids
from saw.tasks.base import carve_split, check_record, subsample
from saw.tasks.stats import length_summary


def make_record(i: int, text: str = "hello world", system: str | None = None) -> dict:
    prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return {"id": f"r{i}", "prompt": prompt, "ground_truth": f"answer {i}", "data_source": "unit", "extra_info": {}}


def make_task(records, **kw) -> Task:
    return Task(name="unit", train=list(records), validation=[], test=[], reward_specs=["r"], **kw)


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


# ----------------------------------------------------------------------------- build_task
def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match="unknown task 'chess'; valid names: summarize, toolcall"):
        build_task({"name": "chess"})
    with pytest.raises(ValueError, match="needs a 'name'"):
        build_task({"source": "bfcl"})
    assert set(TASKS.names()) == {"summarize", "toolcall"}


def test_build_task_accepts_dictconfig():
    from omegaconf import OmegaConf

    task = build_task(OmegaConf.create({"name": "summarization", "max_train_records": 3, "max_eval_records": 2}))
    assert task.name == "summarize" and task.sizes() == {"train": 3, "validation": 2, "test": 2}


# ----------------------------------------------------------------------------- records
@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("ground_truth"), r"lacks field\(s\) \['ground_truth'\]"),
    (lambda r: r.update(prompt=[]), "non-empty list of chat messages"),
    (lambda r: r.update(prompt=[{"role": "user"}]), "message 0 must have string 'role' and 'content'"),
    (lambda r: r.update(id=""), "'id' must be a non-empty string"),
    (lambda r: r.update(ground_truth=None), "'ground_truth' must be a string"),
    (lambda r: r.update(extra_info=[]), "'extra_info' must be a dict"),
])
def test_check_record_errors_name_origin(mutate, message):
    rec = make_record(0)
    mutate(rec)
    with pytest.raises(TaskDataError, match=message) as err:
        check_record(rec, "somefile.json: row 7")
    assert str(err.value).startswith("somefile.json: row 7: ")
    with pytest.raises(TaskDataError, match=r"train record 0"):
        make_task([rec])


def test_task_without_training_records_fails():
    with pytest.raises(TaskDataError, match="no training records"):
        make_task([])


# ----------------------------------------------------------------------------- prompts
def test_encode_prompt_matches_chat_template_text(tiny_tokenizer):
    rec = make_record(0, "the tool call", system="think first")
    task = make_task([rec])
    ids, truncated = task.encode_prompt(tiny_tokenizer, rec, max_prompt_length=None)
    text = "<|im_start|>system\nthink first<|im_end|>\n<|im_start|>user\nthe tool call<|im_end|>\n<|im_start|>assistant\n"
    assert task.render_prompt(tiny_tokenizer, rec) == text
    assert ids == tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert truncated is False and task.num_truncated == 0 and task.num_encoded == 1


def test_encode_prompt_truncates_from_the_left_and_counts(tiny_tokenizer):
    long_rec = make_record(0, " ".join(["weather city unit"] * 40))
    short_rec = make_record(1, "hi")
    short = chat_template_ids(tiny_tokenizer, short_rec["prompt"])
    limit = len(short) + 2
    task = make_task([long_rec, short_rec], max_prompt_length=limit)
    full = chat_template_ids(tiny_tokenizer, long_rec["prompt"])
    assert len(full) > limit
    ids, truncated = task.encode_prompt(tiny_tokenizer, long_rec)
    assert truncated and ids == full[-limit:] and len(ids) == limit
    ids2, truncated2 = task.encode_prompt(tiny_tokenizer, short_rec)
    assert not truncated2 and ids2 == short
    task.encode_prompt(tiny_tokenizer, long_rec, max_prompt_length=len(full))  # exactly fits
    assert (task.num_encoded, task.num_truncated) == (3, 1)
    with pytest.raises(ValueError, match="positive"):
        task.encode_prompt(tiny_tokenizer, long_rec, max_prompt_length=0)


def test_chat_template_ids_accepts_all_return_types():
    class FakeTokenizer:
        def __init__(self, out):
            self.out = out

        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            assert add_generation_prompt and tokenize
            return self.out

    from transformers import BatchEncoding

    msgs = [{"role": "user", "content": "x"}]
    assert chat_template_ids(FakeTokenizer([1, 2, 3]), msgs) == [1, 2, 3]
    assert chat_template_ids(FakeTokenizer(BatchEncoding({"input_ids": [4, 5], "attention_mask": [1, 1]})), msgs) == [4, 5]
    assert chat_template_ids(FakeTokenizer({"input_ids": [[6, 7]]}), msgs) == [6, 7]


def test_drop_overlong_prompts(tiny_tokenizer):
    recs = [make_record(i, " ".join(["word"] * (5 * i + 1))) for i in range(6)]
    lengths = [len(chat_template_ids(tiny_tokenizer, r["prompt"])) for r in recs]
    limit = sorted(lengths)[3]
    task = make_task(recs)
    removed = task.drop_overlong_prompts(tiny_tokenizer, limit)
    assert removed == {"train": sum(n > limit for n in lengths)}
    assert [r["id"] for r in task.train] == [r["id"] for r, n in zip(recs, lengths) if n <= limit]


def test_filter_for_training_drops_train_and_validation_only(tiny_tokenizer):
    recs = [make_record(i, " ".join(["word"] * (5 * i + 1))) for i in range(8)]
    lengths = [len(chat_template_ids(tiny_tokenizer, r["prompt"])) for r in recs]
    limit = sorted(lengths)[3]
    short = {r["id"] for r, n in zip(recs, lengths) if n <= limit}

    def fresh(**config):
        return Task(name="unit", train=recs[:5], validation=recs[5:], test=list(recs), reward_specs=["r"],
                    max_prompt_length=limit, config=config)

    task = fresh()  # filtering is the default
    removed = task.filter_for_training(tiny_tokenizer)
    assert removed == {"train": sum(n > limit for n in lengths[:5]), "validation": sum(n > limit for n in lengths[5:])}
    assert {r["id"] for r in task.train + task.validation} == short
    assert len(task.test) == len(recs)  # evaluation keeps every test prompt
    task = fresh(filter_overlong_prompts=False)
    assert task.filter_for_training(tiny_tokenizer) == {} and len(task.train) == 5 and len(task.validation) == 3
    task = fresh()
    assert task.filter_for_training(tiny_tokenizer, max_prompt_length=max(lengths))["train"] == 0
    with pytest.raises(TaskDataError, match="filter_overlong_prompts=false"):
        fresh().filter_for_training(tiny_tokenizer, max_prompt_length=min(lengths) - 1)


# ----------------------------------------------------------------------------- helpers
def test_subsample_deterministic_ordered():
    recs = [make_record(i) for i in range(20)]
    a = subsample(recs, 5, seed=3)
    assert a == subsample(recs, 5, seed=3) and len(a) == 5
    idx = [int(r["id"][1:]) for r in a]
    assert idx == sorted(idx)
    assert subsample(recs, None, 0) == recs and subsample(recs, 50, 0) == recs


@settings(max_examples=60, deadline=None)
@given(groups=st.lists(st.integers(0, 12), min_size=2, max_size=40), size=st.integers(0, 10), seed=st.integers(0, 5))
def test_carve_split_keeps_groups_apart(groups, size, seed):
    recs = [dict(make_record(i), group=g) for i, g in enumerate(groups)]
    if size >= len(recs):
        with pytest.raises(ValueError):
            carve_split(recs, size, seed, lambda r: r["group"])
        return
    rest, held = carve_split(recs, size, seed, lambda r: r["group"])
    assert len(rest) + len(held) == len(recs) and len(held) <= size
    assert not {r["group"] for r in rest} & {r["group"] for r in held}
    assert sorted(r["id"] for r in rest + held) == sorted(r["id"] for r in recs)
    if size and all(groups.count(g) == 1 for g in groups):  # singleton groups: exact size
        assert len(held) == size


def test_length_summary_hand_computed():
    s = length_summary([10, 2, 4, 8, 6])
    assert s == {"n": 5, "mean": 6.0, "median": 6, "p90": 10, "max": 10}
    assert length_summary([])["n"] == 0


def _toolcall_record(rid, ground_truth):
    return {"id": rid, "prompt": [{"role": "user", "content": "q"}], "ground_truth": ground_truth,
            "data_source": "unit", "extra_info": {}}


def test_unscorable_records_are_found_before_training():
    from rewards import build_rewards

    good = '<think>x</think>\n<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n</tool_call>'
    bad = '<think>x</think>\n<tool_call>\nnot json\n</tool_call>'
    rewards = build_rewards(["toolcall_format", "toolcall_correctness"])
    records = [_toolcall_record("ok", good), _toolcall_record("broken-7", bad), _toolcall_record("ok2", good)]
    task = Task(name="unit", train=list(records), validation=[], test=[], reward_specs=["r"])
    with pytest.raises(TaskDataError, match=r"(?s)1 train/validation records cannot be scored:\n  broken-7: .*"
                                            r"skip_bad_records=true"):
        task.check_records(rewards)
    skipping = Task(name="unit", train=list(records), validation=[], test=[], reward_specs=["r"],
                    config={"skip_bad_records": True})
    assert [rid for rid, _ in skipping.check_records(rewards)] == ["broken-7"]
    assert [r["id"] for r in skipping.train] == ["ok", "ok2"]
