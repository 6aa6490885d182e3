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


# ----------------------------------------------------------------------------- TL;DR: OpenAI's release, the paper's draw
def openai_tldr_rows(n, split, offset=0):
    """Rows shaped like OpenAI's filtered TL;DR files (train.jsonl / valid.jsonl / test.jsonl)."""
    return [{"id": f"{split}{i}", "subreddit": "relationships" if i % 2 else "AskReddit", "title": f"Title {i}",
             "post": f"Post body number {i} of {split}, with some words.", "summary": f" summary {i} of {split}"}
            for i in range(offset, offset + n)]


def shipped_tldr_config(**overrides):
    """conf/task/summarize_tldr.yaml (the paper's task config) with local files and overrides."""
    from pathlib import Path

    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(Path(__file__).resolve().parents[2] / "conf/task/summarize_tldr.yaml"))
    cfg["hub_id"] = None
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


@pytest.fixture(scope="module")
def openai_tldr_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tldr")
    return {"train": write_jsonl(folder / "train.jsonl", openai_tldr_rows(3000, "train")),
            "validation": write_jsonl(folder / "valid.jsonl", openai_tldr_rows(300, "valid")),
            "test": write_jsonl(folder / "test.jsonl", openai_tldr_rows(300, "test"))}


def test_tldr_openai_release_draws_the_papers_2560_256_split_with_the_seed(openai_tldr_files):
    task = build_task(shipped_tldr_config(paths=openai_tldr_files))
    assert task.sizes() == {"train": 2560, "validation": 256, "test": 256}
    again = build_task(shipped_tldr_config(paths=openai_tldr_files))
    for split in ("train", "validation", "test"):
        assert [r["id"] for r in task.split(split)] == [r["id"] for r in again.split(split)]  # fixed seed
    other = build_task(shipped_tldr_config(paths=openai_tldr_files, seed=1))
    assert [r["id"] for r in other.train] != [r["id"] for r in task.train]
    assert {r["id"] for r in other.test} != {r["id"] for r in task.test}
    assert {r["id"][:4] for r in task.test} == {"test"} and {r["id"][:5] for r in task.validation} == {"valid"}
    assert len({r["id"] for r in task.train}) == 2560


def test_tldr_openai_row_layout_matches_the_prompt_completion_release(openai_tldr_files):
    task = build_task(shipped_tldr_config(paths=openai_tldr_files, max_train_records=None))
    rec = next(r for r in task.train if r["id"] == "train3")
    source = "SUBREDDIT: r/relationships\n\nTITLE: Title 3\n\nPOST: Post body number 3 of train, with some words."
    assert rec["extra_info"]["source"] == source and rec["extra_info"]["title"] == "Title 3"
    assert rec["ground_truth"] == "summary 3 of train" and rec["data_source"] == "tldr"
    assert rec["prompt"][-1]["content"] == "Summarize the following Reddit post in one or two sentences.\n\n" + source
    # the same post as trl-lib/tldr lays it out (prompt/completion): the same prompt, source and reference
    trl_row = {"id": "train3", "prompt": source + "\n\nTL;DR:", "completion": " summary 3 of train"}
    from saw.tasks.summarize import tldr_row_to_record

    cfg = shipped_tldr_config()
    a = tldr_row_to_record(trl_row, "train", 0, cfg, "x")
    b = tldr_row_to_record(openai_tldr_rows(4, "train")[3], "train", 0, cfg, "x")
    assert (a["prompt"], a["ground_truth"], a["extra_info"]["source"]) == (b["prompt"], b["ground_truth"], source)


def test_tldr_single_file_holds_out_the_eval_records(tmp_path):
    path = write_jsonl(tmp_path / "all.jsonl", openai_tldr_rows(60, "all"))
    cfg = shipped_tldr_config(paths={"train": path}, max_train_records=20, max_eval_records=8, test_size=8,
                              validation_size=5)
    task = build_task(cfg)
    assert task.sizes() == {"train": 20, "validation": 5, "test": 8}
    ids = {s: {r["id"] for r in task.split(s)} for s in ("train", "validation", "test")}
    assert not ids["train"] & ids["test"] and not ids["validation"] & ids["test"] and not ids["train"] & ids["validation"]
    assert ids == {s: {r["id"] for r in build_task(cfg).split(s)} for s in ids}
    assert ids["test"] != {r["id"] for r in build_task(dict(cfg, seed=3)).test}
