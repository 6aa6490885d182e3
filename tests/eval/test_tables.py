"""make_tables on synthetic run directories: exact values in markdown and CSV, computed by hand."""

from __future__ import annotations

import csv
import io
import math
import subprocess
import sys
from pathlib import Path

import pytest

from eval import paper
from eval.runs import load_runs
from eval.tables import (format_mean_std, mean_std, median_phase_time, overhead_table, summarize_table, toolcall_table,
                         training_table, paired_table)

REPO = Path(__file__).resolve().parents[2]


def csv_rows(text: str) -> dict[str, dict[str, str]]:
    return {row["algorithm"]: row for row in csv.DictReader(io.StringIO(text))}


def md_row(markdown: str, label: str) -> list[str]:
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in\n{markdown}")


def test_mean_std_and_format():
    m = 7 / 3
    expected_std = math.sqrt(((1 - m) ** 2 + (2 - m) ** 2 + (4 - m) ** 2) / 2)
    assert mean_std([1.0, 2.0, 4.0]) == (pytest.approx(m), pytest.approx(expected_std), 3)
    assert mean_std([None, 5.0]) == (5.0, None, 1)
    assert mean_std([None]) == (None, None, 0)
    assert format_mean_std(35.0, 7.0710678) == "35.00 ± 7.07"
    assert format_mean_std(35.0, None) == "35.00"
    assert format_mean_std(None, None, missing="not run") == "not run"


def test_load_runs_reads_everything(synthetic_runs):
    runs = load_runs([synthetic_runs])
    assert [(r.task, r.algorithm, r.seed) for r in runs] == [
        ("summarize", "grpo", 0), ("summarize", "gdpo_saw", 0),
        ("toolcall", "base", 0), ("toolcall", "grpo", 0), ("toolcall", "grpo", 1),
        ("toolcall", "grpo_saw", 0), ("toolcall", "grpo_saw", 1)]
    grpo0 = runs[3]
    assert grpo0.is_embedded and not grpo0.uses_saw and runs[5].uses_saw
    assert grpo0.reward_names() == ["toolcall_format", "toolcall_correctness"]
    assert grpo0.series("time/step") == ([1, 2, 3], [10.0, 2.0, 4.0])
    assert grpo0.series("reward/toolcall_format/cv") == ([], [])  # None values are skipped


def test_table1_values(synthetic_runs):
    table = toolcall_table(load_runs([synthetic_runs]))
    md = table.markdown()
    # grpo: non_live 30, 40 -> 35 +- 10/sqrt(2); live 50, 60 -> 55 +- 7.07; format 90, 100 -> 95 +- 7.07
    assert md_row(md, "GRPO") == ["GRPO", "2", "35.00 ± 7.07", "55.00 ± 7.07", "not run",
                                  "n/a (needs Multi-Turn)", "45.00 ± 7.07", "95.00 ± 7.07", "32.55 / 36.27"]
    # grpo_saw: 32, 36 -> 34 +- 2.83; live 52, 56 -> 54 +- 2.83; format 95, 85 -> 90 +- 7.07
    assert md_row(md, "GRPO+SAW") == ["GRPO+SAW", "2", "34.00 ± 2.83", "54.00 ± 2.83", "not run",
                                      "n/a (needs Multi-Turn)", "44.00 ± 2.83", "90.00 ± 7.07", "33.53 / 36.35"]
    assert md_row(md, "Base model") == ["Base model", "1", "10.00", "20.00", "not run", "n/a (needs Multi-Turn)",
                                        "15.00", "0.00", "-"]
    # row order: base, GRPO, GRPO+SAW
    labels = [ln.split("|")[1].strip() for ln in md.splitlines() if ln.startswith("| ") and "Method" not in ln]
    assert labels == ["Base model", "GRPO", "GRPO+SAW"]
    assert "Live is the training data" in md and "Multi-Turn was not run" in md
    rows = csv_rows(table.csv())
    assert float(rows["grpo"]["non_live_mean"]) == pytest.approx(35.0)
    assert float(rows["grpo"]["non_live_std"]) == pytest.approx(10 / math.sqrt(2))
    assert rows["grpo"]["multi_turn_mean"] == "" and rows["base"]["non_live_std"] == ""
    assert int(rows["grpo_saw"]["n_runs"]) == 2
    assert "Paper Overall† (1.5B / 3B)" in md and "not our runs" in md
    assert "32.55" not in table.csv() and "32.55" not in table.latex()
    tex = table.latex()
    assert "35.00 $\\pm$ 7.07" in tex and "GRPO+SAW" in tex and "\\toprule" in tex


def test_table2_values(synthetic_runs):
    table = summarize_table(load_runs([synthetic_runs]))
    md = table.markdown()
    assert md_row(md, "GRPO") == ["GRPO", "1", "0.300", "0.800", "1.100", "40.00", "20.00", "30.00", "42.0", "18.20"]
    assert md_row(md, "GDPO+SAW") == ["GDPO+SAW", "1", "0.320", "0.900", "1.220", "42.00", "22.00", "32.00", "38.5",
                                      "19.07"]
    assert "Paper Total† (0-20)" in md and "not our runs" in md
    assert "Paper" not in table.csv()  # the CSV holds our numbers only
    assert "Judge" not in table.header[-1]
    assert float(csv_rows(table.csv())["gdpo_saw"]["total_mean"]) == pytest.approx(1.22)


def test_overhead_by_hand(synthetic_runs):
    runs = load_runs([synthetic_runs])
    grpo0 = next(r for r in runs if r.task == "toolcall" and r.algorithm == "grpo" and r.seed == 0)
    assert median_phase_time(grpo0, "step") == pytest.approx(3.0)  # median(2, 4), step 1 skipped
    table = overhead_table(runs, "toolcall")
    rows = csv_rows(table.csv())
    # grpo: medians 3.0 and 3.0 -> 3.0; grpo_saw: medians 3.15 and 3.15 -> 3.15 => +5.0 %
    assert float(rows["grpo"]["step_mean"]) == pytest.approx(3.0)
    assert float(rows["grpo_saw"]["step_mean"]) == pytest.approx(3.15)
    assert float(rows["grpo_saw"]["step_overhead_percent"]) == pytest.approx(5.0)
    assert float(rows["grpo_saw"]["advantages_overhead_ms"]) == pytest.approx(2.0)
    assert rows["grpo"]["step_overhead_percent"] == ""
    md = table.markdown()
    assert "+5.0 % vs GRPO" in md and "+2.00" in md
    assert "base" not in rows  # the base model has no training steps


def test_training_table_by_hand(synthetic_runs):
    runs = load_runs([synthetic_runs])
    table = training_table(runs, "toolcall")
    rows = csv_rows(table.csv())
    # reward mean = 0.1 * step + j + offset; grpo seeds have offsets 0 and 0.2, steps 1..3
    assert float(rows["grpo"]["toolcall_format_first_mean"]) == pytest.approx(0.2)
    assert float(rows["grpo"]["toolcall_format_first_std"]) == pytest.approx(math.sqrt(0.02))
    assert float(rows["grpo"]["toolcall_format_last_mean"]) == pytest.approx(0.4)
    assert float(rows["grpo"]["toolcall_correctness_last_mean"]) == pytest.approx(1.4)
    assert float(rows["grpo_saw"]["toolcall_correctness_change_mean"]) == pytest.approx(0.2)
    assert float(rows["grpo_saw"]["steps_mean"]) == 3
    # final-5 mean over the 3 steps: seed 0 mean(0.1, 0.2, 0.3) = 0.2, seed 1 +0.2 -> 0.3 over seeds
    assert float(rows["grpo"]["toolcall_format_final5_mean"]) == pytest.approx(0.3)
    assert not any(key.startswith("val_") for key in rows["grpo"])  # no validation logged
    assert "base" not in rows
    assert training_table(runs, "no_such_task") is None
    # steps logged out of order (a resumed run appends): endpoints follow the step numbers
    import json
    run = synthetic_runs / "embedded_test" / "toolcall-grpo-s0"
    rows_ = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (rows_[2], rows_[0], rows_[1])))
    again = csv_rows(training_table(load_runs([synthetic_runs]), "toolcall").csv())
    assert float(again["grpo"]["toolcall_format_first_mean"]) == pytest.approx(0.2)
    assert float(again["grpo"]["toolcall_format_last_mean"]) == pytest.approx(0.4)


def test_make_tables_script(synthetic_runs, tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "make_tables.py"), str(synthetic_runs / "*"),
                           "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    for stem in ("table1_toolcall", "table2_summarize", "overhead_toolcall", "overhead_summarize",
                 "training_toolcall", "training_summarize"):
        for ext in ("md", "tex", "csv"):
            assert (out / f"{stem}.{ext}").stat().st_size > 0
    for fig in ("rewards_toolcall", "saw_cv_weights_toolcall", "rewards_summarize", "saw_cv_weights_summarize"):
        data = (out / "figures" / f"{fig}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    report = (out / "results.md").read_text()
    assert "Smoke-scale reproduction" in report
    assert "35.00 ± 7.07" in report
    # the paper's numbers, labelled as such
    assert paper.PAPER_ID in report and "not our runs" in report
    for value in ("32.55", "33.53", "33.82", "34.02", "36.27", "36.35", "35.58", "36.62",
                  "18.20", "18.80", "19.07", "0.9-2.7", "158.7-188.7"):
        assert value in report, value
    assert "figures/rewards_toolcall.png" in report


def test_no_smoke_note_for_other_experiments(tmp_path):
    from eval.tables import markdown_report

    import json
    import yaml

    run = tmp_path / "paper_toolcall" / "toolcall-grpo-s0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "tool_calling"}, "algorithm": {"name": "grpo"},
                                                     "seed": 3, "experiment_name": "paper_toolcall"}))
    (run / "eval.json").write_text(json.dumps({"metrics": {"non_live": 0.5, "live": 0.5, "multi_turn": 0.2,
                                                           "overall": 0.4, "format_rate": 1.0}}))
    runs = load_runs([tmp_path / "paper_toolcall" / "*"])
    assert runs[0].task == "toolcall"  # alias resolved
    report = markdown_report(runs)
    assert "Smoke-scale" not in report
    assert md_row(report, "GRPO")[2:8] == ["50.00", "50.00", "20.00", "40.00", "n/a", "100.00"]


def test_unreadable_run_is_skipped_or_raised(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.yaml").write_text("seed: 0\n")
    assert load_runs([bad]) == []
    with pytest.raises(ValueError, match="task.name"):
        load_runs([bad], strict=True)


def test_experiments_are_not_pooled(synthetic_runs):
    """A second experiment's GRPO run gets its own row, labelled with the experiment."""
    import json
    import yaml

    run = synthetic_runs / "embedded_other" / "toolcall-grpo-s0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "toolcall"}, "algorithm": {"name": "grpo"},
                                                     "seed": 0, "experiment_name": "embedded_other"}))
    (run / "eval.json").write_text(json.dumps({"metrics": {"non_live": 0.9, "live": 0.9, "format_rate": 1.0}}))
    md = toolcall_table(load_runs([synthetic_runs])).markdown()
    assert md_row(md, "GRPO [embedded_test]")[1:3] == ["2", "35.00 ± 7.07"]
    assert md_row(md, "GRPO [embedded_other]")[1:3] == ["1", "90.00"]


def test_table1_with_multi_turn_and_relevance_columns(tmp_path):
    """Runs with Multi-Turn get an Overall; relevance extras become columns; the rendering and a
    subsampled Multi-Turn are noted."""
    from tests.eval.conftest import write_run

    for seed, (nl, lv, mt, irr) in enumerate([(0.30, 0.50, 0.10, 0.8), (0.40, 0.60, 0.20, 0.6)]):
        write_run(tmp_path, "toolcall", "grpo", seed,
                  eval_metrics=dict(non_live=nl, live=lv, multi_turn=mt, overall=(nl + lv + mt) / 3,
                                    overall_without_multi_turn=(nl + lv) / 2, format_rate=1.0, irrelevance=irr),
                  extra_eval={"tool_render": "toolrl", "n_dialogues": 8, "n_records": 80})
    md = toolcall_table(load_runs([tmp_path])).markdown()
    header = next(ln for ln in md.splitlines() if ln.startswith("| Method"))
    assert header.split("|")[-3].strip() == "Irrelevance"
    row = md_row(md, "GRPO")
    # overall per run: 0.3, 0.4 -> 35 +- 7.07; multi-turn 10, 20 -> 15 +- 7.07; irrelevance 80, 60 -> 70 +- 14.14
    assert row[4] == "15.00 ± 7.07" and row[5] == "35.00 ± 7.07" and row[8] == "70.00 ± 14.14"
    assert "Prompt rendering: toolrl" in md and "Subsampled evaluation" in md and "Multi-Turn was not run" not in md


def test_unfinished_runs_are_marked(tmp_path, run_writer):
    write_run = run_writer
    steps = [{"step": 1, "reward/toolcall_format/mean": 0.5}]
    write_run(tmp_path, "toolcall", "grpo", 0, steps=steps, eval_metrics={"overall": 10.0})
    write_run(tmp_path, "toolcall", "grpo", 1, steps=steps, eval_metrics={"overall": 12.0}, finished=False)
    write_run(tmp_path, "toolcall", "gdpo", 0, steps=steps, eval_metrics={"overall": 11.0})
    md = toolcall_table(load_runs([tmp_path / "embedded_test" / "*"])).markdown()
    assert "GRPO (unfinished: 1 of 2)" in md and "GDPO (unfinished" not in md
    assert "unfinished: runs without done.json" in md


def test_final_window_and_validation_columns(synthetic_runs):
    import json

    run = synthetic_runs / "embedded_test" / "toolcall-grpo-s0"
    rows_ = [{"step": s, "reward/toolcall_format/mean": float(s), "reward/toolcall_correctness/mean": 0.0,
              "time/step": 1.0, **({"val/toolcall_format": s / 10} if s % 3 == 0 else {})} for s in range(1, 9)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_))
    runs = [r for r in load_runs([synthetic_runs]) if (r.task, r.algorithm, r.seed) == ("toolcall", "grpo", 0)]
    rows = csv_rows(training_table(runs, "toolcall").csv())
    assert float(rows["grpo"]["toolcall_format_final5_mean"]) == pytest.approx((4 + 5 + 6 + 7 + 8) / 5)
    assert float(rows["grpo"]["val_toolcall_format_last_mean"]) == pytest.approx(0.6)  # step 6
    assert float(rows["grpo"]["val_toolcall_format_first_mean"]) == pytest.approx(0.3)  # step 3
    assert "val_toolcall_correctness_last_mean" not in rows["grpo"]


def test_paired_table_by_hand(synthetic_runs):
    runs = load_runs([synthetic_runs])
    rows = csv_rows(paired_table(runs, "toolcall").csv())
    assert list(rows) == ["grpo_saw"]  # grpo has no host; base has no metrics
    # final-5 means: seed 0 saw 0.2 vs grpo 0.2 (offsets 0, 0) -> 0; seed 1 saw +0.1 vs grpo +0.2 -> -0.1
    assert float(rows["grpo_saw"]["toolcall_format_final5_diff_mean"]) == pytest.approx(-0.05)
    assert float(rows["grpo_saw"]["toolcall_format_final5_diff_std"]) == pytest.approx(math.sqrt(0.005))
    assert float(rows["grpo_saw"]["toolcall_format_final5_higher_mean"]) == 0.0
    assert int(rows["grpo_saw"]["n_runs"]) == 2
    assert paired_table(runs, "summarize") is None  # grpo and gdpo_saw: no weighting with its host
