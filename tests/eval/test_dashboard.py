"""The W&B dashboard as code, offline: every panel of the workspace view and the report reads a key
that a real (tiny, 2-step) training run and its evaluation logged to W&B."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from eval.dashboard import (
    EVAL_STEP,
    TaskSpec,
    log_eval_to_wandb,
    log_tables_to_wandb,
    logged_keys,
    offline_run_folders,
    panel_keys,
    report_panel_specs,
    spec_metric_keys,
    specs_from_runs,
    wandb_records,
    workspace_sections,
    write_dashboard_json,
)
from eval.runs import load_run
from eval.tables import write_tables

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "rl"))
from test_trainer import make_cfg

REWARDS = ["toolcall_format", "toolcall_correctness"]
EVAL = {"overall": None, "non_live": 0.5, "live": 0.25, "multi_turn": None, "overall_without_multi_turn": 0.375,
        "format_rate": 0.75}
SECTIONS = ["Reward mean", "Reward CV (SAW statistic)", "Reward weight", "Advantage share", "Response",
            "Actor diagnostics", "Time per phase (s)", "Validation (greedy)", "Evaluation"]


@pytest.fixture(scope="module")
def evaluated_run(tiny_model_dir, tmp_path_factory):
    """A 2-step run (logger=wandb, offline) evaluated into the same W&B run, and its logged keys."""
    from saw.rl.job import run_training

    tmp = tmp_path_factory.mktemp("dash")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        cfg = make_cfg(tiny_model_dir, tmp, "logger=wandb", "algorithm=gdpo_saw", "experiment_name=dash",
                       "logger.sample_table_every=1", "trainer.torch_threads=1")
        run_dir = tmp / "run"
        run_training(cfg, run_dir)
        (run_dir / "eval.json").write_text(json.dumps({"task": "toolcall", "algorithm": "gdpo_saw", "seed": 0,
                                                       "metrics": EVAL, "per_category": {}}))
        per_category = {"simple_python": {"accuracy": 0.5, "n": 4}, "live_simple": {"accuracy": 0.25, "n": 4}}
        run_id = log_eval_to_wandb(run_dir, EVAL, {"per_category": per_category})
        keys = logged_keys(run_dir)
    return run_dir, run_id, keys, tmp


def test_eval_goes_into_the_training_wandb_run(evaluated_run):
    run_dir, run_id, keys, _ = evaluated_run
    assert run_id == (run_dir / "wandb_run_id").read_text().strip()
    folders = offline_run_folders(run_dir)
    assert len(folders) == 2 and all(f.name.endswith(run_id) for f in folders)  # train, then eval: one run
    train, ev = ([r for r in wandb_records(f) if r.get("type") in ("history", "run")] for f in folders)
    train_run, eval_run = train[0]["run"], ev[0]["run"]
    for field in ("run_id", "run_group", "tags", "display_name", "project"):
        assert train_run.get(field) == eval_run.get(field), field  # same identity, group and tags
    assert eval_run["config"]["update"]["algorithm"]["name"] == "gdpo_saw"
    steps = [r["history"]["item"]["_step"] for r in train + ev if r.get("type") == "history"]
    assert steps == [1, 2, 3]  # eval after the training's last step, on one axis
    eval_row = ev[-1]["history"]["item"]
    assert eval_row[EVAL_STEP] == 2 and eval_row["eval/non_live"] == 0.5 and "eval/overall" not in eval_row
    assert eval_row["eval/per_category._type"] == "table-file"
    assert {"eval/per_category", "samples", "eval/non_live"} <= keys  # media keys unflattened


def test_every_panel_reads_a_logged_key(evaluated_run):
    run_dir, _, keys, _ = evaluated_run
    (spec,) = specs_from_runs([load_run(run_dir)])
    assert spec == TaskSpec("toolcall", REWARDS, ["gdpo_saw"], ["non_live", "live", "overall_without_multi_turn",
                                                                  "format_rate"])
    sections = workspace_sections(spec.rewards, eval_metrics=spec.eval_metrics)  # core panels: no filtering
    assert [s.name for s in sections] == SECTIONS
    missing = panel_keys(sections) - keys
    assert not missing, f"panels read keys the run never logged: {sorted(missing)}"
    report = {k for ps in report_panel_specs({"toolcall": spec.rewards}, {"toolcall": spec.eval_metrics}).values()
              for p in ps for k in p.metric_keys()}
    assert report and not report - keys, f"report panels read keys the run never logged: {sorted(report - keys)}"
    # a panel on a key nobody logged is caught
    assert panel_keys(workspace_sections(["not_a_reward"], eval_metrics=())) - keys


def test_rendered_wandb_view_and_report(evaluated_run):
    """The JSON W&B stores (built offline by wandb-workspaces) reads the same, logged, keys."""
    pytest.importorskip("wandb_workspaces")
    run_dir, _, keys, tmp = evaluated_run
    runs = [load_run(run_dir)]
    (spec,) = specs_from_runs(runs)
    results = tmp / "results"
    write_tables(runs, results)
    ws_path, report_path = write_dashboard_json(results / "dashboard", "me", "saw", [spec],
                                                results_md=(results / "results.md").read_text())
    view = json.loads(ws_path.read_text())["views"][0]
    rendered = spec_metric_keys(view["wandb_view"])
    assert rendered == set(view["panel_keys"]) == panel_keys(workspace_sections(spec.rewards,
                                                                                eval_metrics=spec.eval_metrics))
    assert not rendered - keys, sorted(rendered - keys)
    assert [s["name"] for s in view["wandb_view"]["spec"]["section"]["panelBankConfig"]["sections"]] == SECTIONS
    grouping = view["wandb_view"]["spec"]["section"]["runSets"][0]["grouping"]
    assert grouping == [{"section": "config", "name": "algorithm.value.name"}]  # seeds of a method: one band
    report = json.loads(report_path.read_text())
    report_keys = spec_metric_keys(report["wandb_report"])
    assert report_keys and report_keys == set(report["panel_keys"])
    assert not report_keys - keys, f"report panels read keys the run never logged: {sorted(report_keys - keys)}"
    blocks = json.dumps(report["wandb_report"]["spec"]["blocks"])
    assert "Table 1" in blocks or "Training" in blocks  # results.md's tables as markdown blocks
    assert "Our runs" in report["markdown_sections"]


def test_script_offline_writes_json_and_says_what_it_would_do(evaluated_run, capsys):
    pytest.importorskip("wandb_workspaces")
    spec = importlib.util.spec_from_file_location("wandb_dashboard_under_test", ROOT / "scripts" / "wandb_dashboard.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    run_dir, run_id, _, tmp = evaluated_run
    assert script.main(["--entity", "me", "--project", "p", "--runs", str(run_dir), "--results", str(tmp / "none"),
                 "--offline-json-only"]) == 0
    out = capsys.readouterr().out
    assert (tmp / "none" / "dashboard" / "workspace.json").is_file()
    assert (tmp / "none" / "dashboard" / "report.json").is_file()
    sync = next(line for line in out.splitlines() if " sync " in line)
    assert "--project p --entity me" in sync and sync.count(run_id) == 2  # training + evaluation folders
    assert "save the workspace view" in out and "save the report" in out


def test_optional_panels_follow_the_logged_keys(evaluated_run):
    _, _, keys, _ = evaluated_run
    with_keys = panel_keys(workspace_sections(REWARDS, eval_metrics=(), available_keys=keys))
    assert with_keys <= keys
    assert "actor/kl" not in with_keys and "actor/kl" not in panel_keys(workspace_sections(REWARDS))
    assert "actor/kl" in panel_keys(workspace_sections(REWARDS, available_keys=keys | {"actor/kl"}))


def test_tables_are_logged_to_wandb(evaluated_run, monkeypatch):
    run_dir, _, _, tmp = evaluated_run
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    results = tmp / "tables"
    write_tables([load_run(run_dir)], results)
    assert log_tables_to_wandb(results)
    keys = logged_keys(results)
    assert {"tables/training_toolcall", "tables/table1_toolcall"} <= keys
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert log_tables_to_wandb(results) is None
