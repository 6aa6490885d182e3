"""Summarisation task: ACLSum conversion and splits, TL;DR from local files, bad input."""

from __future__ import annotations

import json

import pytest

from saw.tasks import TaskDataError, build_task
from saw.tasks.summarize import ACLSUM_PROMPT, aclsum_data_dir, detokenize, fill_template


@pytest.fixture(scope="module")
def aclsum_task():
    return build_task({"name": "summarize"})


P06_1112_REFERENCE = (
    "A generally accessible NER system for QA systems produces a larger answer candidate set which would be "
    "hard for current surface word-level ranking methods. They propose a statistical method which takes "
    "correlations of dependency relation paths computed by the Dynamic Time Wrapping algorithm into account "
    "for ranking candidate answers. The proposed method outperforms state-of-the-art syntactic relation-based "
    "methods by up to 20% and shows it works even better on harder questions where NER performs poorly."
)


def test_aclsum_record_exact(aclsum_task):
    rec = next(r for r in aclsum_task.train if r["id"] == "P06-1112")
    assert rec["ground_truth"] == P06_1112_REFERENCE
    assert rec["prompt"][0] == {"role": "system", "content": "You are a helpful assistant who writes short, faithful summaries."}
    user = rec["prompt"][1]
    assert user["role"] == "user"
    assert user["content"].startswith(
        "Summarize the following paper abstract in two or three sentences: the problem it addresses, the approach, "
        "and the main result.\n\nTitle: Exploring Correlation of Dependency Relation Paths for Answer Extraction\n\n"
        "Abstract: In this paper, we explore correlation of dependency relation paths to rank candidate answers in "
        "answer extraction. Using the correlation measure,")
    assert user["content"].endswith("significantly outperforms state-ofthe-art syntactic relation-based methods "
                                    "by up to 20% in MRR.")
    info = rec["extra_info"]
    assert info["title"] == "Exploring Correlation of Dependency Relation Paths for Answer Extraction"
    assert info["reference_words"] == len(P06_1112_REFERENCE.split()) == 74
    assert info["source_words"] == len(info["source"].split())
    assert rec["data_source"] == "aclsum"
    assert aclsum_task.sft_target(rec) == P06_1112_REFERENCE


def test_aclsum_reference_is_aspects_in_order():
    raw = json.loads((aclsum_data_dir() / "val.jsonl").read_text().splitlines()[0])
    task = build_task({"name": "summarize", "aspects": ["outcome", "challenge"]})
    rec = next(r for r in task.validation if r["id"] == raw["id"])
    assert rec["ground_truth"] == " ".join(" ".join(raw["summary"][a].split()) for a in ("outcome", "challenge"))
    with pytest.raises(ValueError, match="unknown ACLSum aspect"):
        build_task({"name": "summarize", "aspects": ["method"]})


def test_aclsum_splits_sizes_and_disjoint(aclsum_task):
    assert aclsum_task.sizes() == {"train": 100, "validation": 50, "test": 100}
    ids = {s: {r["id"] for r in aclsum_task.split(s)} for s in ("train", "validation", "test")}
    sources = {s: {r["extra_info"]["source"] for r in aclsum_task.split(s)} for s in ("train", "validation", "test")}
    for a, b in (("train", "test"), ("validation", "test"), ("train", "validation")):
        assert not ids[a] & ids[b] and not sources[a] & sources[b]
    assert aclsum_task.reward_specs == [{"name": "summary_quality"}, {"name": "summary_conciseness"}]


def test_aclsum_subsample_is_deterministic():
    a = build_task({"name": "summarize", "max_train_records": 10, "max_eval_records": 5, "seed": 1})
    b = build_task({"name": "summarize", "max_train_records": 10, "max_eval_records": 5, "seed": 1})
    assert a.sizes() == {"train": 10, "validation": 5, "test": 5}
    assert [r["id"] for r in a.train] == [r["id"] for r in b.train]


@pytest.mark.parametrize("raw, clean", [
    ("results , ( see Table 1 ) show 20 % gains .", "results, (see Table 1) show 20% gains."),
    ("it does n't work ; the model 's output", "it doesn't work; the model's output"),
    ("a `` quoted '' word", 'a "quoted" word'),
    ("  spaced\n\ttext  ", "spaced text"),
])
def test_detokenize(raw, clean):
    assert detokenize(raw) == clean


def test_fill_template_leaves_other_braces():
    assert fill_template("{title}: {source} {x}", "S {y}", "T") == "T: S {y} {x}"
    with pytest.raises(ValueError, match="source"):
        fill_template("no placeholder", "S")
    assert "{title}" in ACLSUM_PROMPT and "{source}" in ACLSUM_PROMPT


def test_malformed_aclsum_names_file_and_line(tmp_path):
    good = json.loads((aclsum_data_dir() / "train.jsonl").read_text().splitlines()[0])
    bad = dict(good, summary={"challenge": "x", "approach": "y"})
    for name in ("train.jsonl", "val.jsonl", "test.jsonl"):
        (tmp_path / name).write_text(json.dumps(good) + "\n")
    (tmp_path / "val.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(TaskDataError, match=r"val\.jsonl: line 2: missing or empty 'summary.outcome'"):
        build_task({"name": "summarize", "aclsum_data_dir": str(tmp_path)})


# ----------------------------------------------------------------------------- TL;DR
def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def tldr_rows(n, offset=0):
    return [{"id": f"post{i}", "prompt": f"SUBREDDIT: r/test\n\nTITLE: t{i}\n\nPOST: my story number {i}\n\nTL;DR:",
             "completion": f" short story {i}"} for i in range(offset, offset + n)]


def test_tldr_from_local_files(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", tldr_rows(20))
    test = write_jsonl(tmp_path / "test.jsonl", tldr_rows(4, offset=18))  # posts 18, 19 repeat train ones
    task = build_task({"name": "summarize", "source": "tldr", "paths": {"train": train, "test": test},
                       "validation_size": 3, "max_eval_records": 2, "system_prompt": None})
    assert task.sizes() == {"train": 15, "validation": 2, "test": 2}
    rec = next(r for r in task.train if r["id"] == "post3")
    assert rec["prompt"] == [{"role": "user", "content": "Summarize the following Reddit post in one or two sentences."
                              "\n\nSUBREDDIT: r/test\n\nTITLE: t3\n\nPOST: my story number 3"}]
    assert rec["ground_truth"] == "short story 3" and rec["data_source"] == "tldr"
    train_ids = {r["id"] for r in task.train + task.validation}
    assert not train_ids & {"post18", "post19"}


def test_tldr_custom_columns_and_missing_column(tmp_path):
    rows = [{"post": "text a", "summary": "sum a"}, {"post": "text b", "summary": "sum b"}, {"post": "text c"}]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    cfg = {"name": "summarize", "source": "tldr", "paths": {"train": path}, "columns": {"source": "post", "reference": "summary"},
           "validation_size": 0}
    with pytest.raises(TaskDataError, match=r"data\.jsonl: row 2: missing or empty column 'summary'"):
        build_task(cfg)
    write_jsonl(tmp_path / "data.jsonl", rows[:2])
    task = build_task(cfg)
    assert [r["id"] for r in task.train] == ["tldr-train-0", "tldr-train-1"]


def test_tldr_bad_inputs(tmp_path):
    with pytest.raises(TaskDataError, match="missing.jsonl.*does not exist"):
        build_task({"name": "summarize", "source": "tldr", "paths": {"train": str(tmp_path / "missing.jsonl")}})
    with pytest.raises(ValueError, match="paths.train"):
        build_task({"name": "summarize", "source": "tldr"})
    with pytest.raises(TaskDataError, match="unknown source 'cnn'.*aclsum, tldr"):
        build_task({"name": "summarize", "source": "cnn"})
    with pytest.raises(TaskDataError, match="could not load split 'train' of hub dataset 'nobody/no-such-set'"):
        build_task({"name": "summarize", "source": "tldr", "hub_id": "nobody/no-such-set"})
