"""W&B run identity: one W&B run per training run, continued on resume on one step axis (offline)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from saw.core.io import read_metrics
from saw.rl.job import run_training
from saw.rl.tracking import RUN_ID_FILE, read_run_id

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_trainer import make_cfg

WANDB = str(Path(sys.executable).with_name("wandb"))


def offline_records(run_folder: Path) -> list[dict]:
    """Every record of an offline run's .wandb log, read with wandb's own reader (wandb leet inspect)."""
    out = subprocess.run([WANDB, "leet", "inspect", "--json", str(run_folder)], capture_output=True, text=True,
                         check=True, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def history_rows(run_folder: Path) -> list[dict]:
    return [r["history"]["item"] for r in offline_records(run_folder) if r.get("type") == "history"]


@pytest.fixture
def wandb_offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_resumed_run_continues_one_wandb_run(tiny_model_dir, tmp_path, wandb_offline):
    common = ["logger=wandb", "logger.sample_table_every=0", "algorithm=grpo_saw", "trainer.total_steps=3",
              "trainer.save_every=1", "trainer.val_every=0", "experiment_name=tracking", "trainer.torch_threads=1"]
    run_dir = tmp_path / "run"
    run_training(make_cfg(tiny_model_dir, tmp_path, *common, "trainer.stop_after_steps=1"), run_dir)
    run_id = read_run_id(run_dir)
    assert run_id and (run_dir / RUN_ID_FILE).is_file()
    assert not (run_dir / "done.json").exists()
    run_training(make_cfg(tiny_model_dir, tmp_path, *common), run_dir)  # trainer.resume=auto
    assert read_run_id(run_dir) == run_id  # reused, not replaced
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1, 2, 3]

    folders = sorted((run_dir / "wandb").glob("offline-run-*"))  # one folder per launch, in start order
    assert len(folders) == 2
    assert {f.name.rsplit("-", 1)[1] for f in folders} == {run_id}  # ...all of the same W&B run
    steps, train_steps = [], []
    for folder in folders:
        records = offline_records(folder)
        runs = [r["run"] for r in records if r.get("type") == "run"]
        assert runs and all(r["run_id"] == run_id for r in runs)
        assert runs[0]["run_group"] == "tracking" and "grpo_saw" in runs[0]["tags"]
        assert runs[0]["config"]["update"]["algorithm"]["name"] == "grpo_saw"
        metrics = {r["metric"].get("glob_name") or r["metric"].get("name"): r["metric"].get("step_metric")
                   for r in records if r.get("type") == "metric"}
        for family in ("reward/*", "time/*", "val/*", "actor/*"):
            assert metrics[family] == "step", family
        assert metrics["eval/*"] == "eval/step"
        rows = [r["history"]["item"] for r in records if r.get("type") == "history"]
        steps += [row["_step"] for row in rows]
        train_steps += [row["step"] for row in rows]
        assert all("reward/toolcall_format/weight" in row and "time/step" in row for row in rows)
    assert steps == [1, 2, 3] and train_steps == [1, 2, 3]  # continuous, no step logged twice
