"""scripts/bench/gpu_check.py (the GPU check's driver): its pieces on their own, the budget, and its
CPU dry run end to end through run_training with a tiny model of the same architecture."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child that sets up its own one-process world (as tests/rl/test_trainer.py's
    standalone_env: without the rank variables in-process tests leave behind)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "OUT"):
        env.pop(var, None)
    return env


def run_driver(*args: str, timeout: int = 900) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], check=False, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=child_env())
    lines = [line for line in proc.stdout.splitlines() if line.startswith("GPU_CHECK_SUMMARY ")]
    assert lines, f"no summary line (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, json.loads(lines[-1].split(" ", 1)[1])


# ----------------------------------------------------------------------------- pieces
def test_arguments_and_per_device_defaults(gc):
    a = gc.parse_args([])
    assert a.shape == "qwen2.5-1.5b" and a.stages is None and a.n == 4
    gc.resolve_defaults(a, "cuda")
    assert (a.steps, a.prompts, a.max_new_tokens, a.micro_batch_size, a.precision) == (4, 16, 256, 16, "bf16")
    a = gc.parse_args(["--shape", "tiny", "--stages", "torch,model", "--steps", "3"])
    gc.resolve_defaults(a, "cpu")
    assert a.stages == ["model", "torch"] and (a.steps, a.prompts, a.precision) == (3, 4, "fp32")
    assert gc.SHAPES["qwen2.5-1.5b"]["vocab_size"] == 151936 and gc.SHAPES["qwen2.5-1.5b"]["num_hidden_layers"] == 28


@pytest.mark.parametrize("argv, message", [
    (["--stages", "env,warp"], "unknown stage"),
    (["--n", "1"], "at least two completions"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--budget-s", "0"], "--budget-s must be > 0"),
    (["--shape", "huge"], "invalid choice"),
])
def test_bad_arguments_are_refused(gc, argv, message, capsys):
    with pytest.raises(SystemExit):
        gc.parse_args(argv)
    assert message in capsys.readouterr().err


def test_train_stage_names_the_package_that_does_not_import(gc, monkeypatch):
    assert gc.import_problem("json") is None
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # any import of it now fails
    assert "deepspeed" in gc.import_problem("deepspeed")
    check = gc.Check.__new__(gc.Check)  # the stage refuses before it reads anything else
    check.args = gc.parse_args(["--shape", "tiny", "--stages", "train"])
    with pytest.raises(RuntimeError, match=r"the training path needs deepspeed \(ModuleNotFoundError.*gpu_wheels.sh"):
        check.stage_train()


def test_padded_tokenizer_decodes_every_id(gc):
    """Ids past the trained vocabulary decode to words (plain tokenizers drops them: empty text)."""
    tok, trained = gc.build_tokenizer(1024)
    assert len(tok) == 1024 and trained < 1024
    high = tok.decode(list(range(trained, 1024)), skip_special_tokens=True)
    assert len(high.split()) == 1024 - trained
    assert tok.decode([tok.eos_token_id], skip_special_tokens=True) == ""
    text = "the summary of the paper"
    assert tok.decode(tok(text)["input_ids"]) == text  # encoding is the trained BPE's, filler never produced
    assert max(tok(text * 20)["input_ids"]) < trained


def test_synthetic_data_loads_through_the_summarize_task(gc, tmp_path):
    from transformers import AutoTokenizer

    from saw.tasks import build_task

    assert gc.write_aclsum_data(tmp_path, 12, 3, 30) == {"train": 12, "val": 3, "test": 3}
    task = build_task({"name": "summarize", "aclsum_data_dir": str(tmp_path)})
    assert task.sizes() == {"train": 12, "validation": 3, "test": 3}
    records = gc.load_records(tmp_path)
    assert [r["id"] for r in records] == [r["id"] for r in task.train]
    tok, _ = gc.build_tokenizer(1024)
    tok.save_pretrained(tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    ids = gc.prompt_ids(tok, records[0], 10**6)
    assert ids == task.encode_prompt(tok, records[0], None)[0]
    assert gc.prompt_ids(tok, records[0], 50) == ids[-50:]


def test_step_figures_from_a_metrics_record(gc):
    row = {"step": 2, "time/step": 10.0, "time/rollout": 6.0, "time/rewards": 0.1, "time/advantages": 0.01,
           "time/update": 2.5, "time/sync": 1.0, "perf/tokens_per_s": 2000.0, "perf/rollout_tokens_per_s": 500.0,
           "response/length_mean": 200.0, "response/clip_frac": 0.5}
    s = gc.step_figures(row, {"seconds": 10.2, "max_allocated_gib": 30.0, "max_reserved_gib": 40.0}, samples=16)
    assert s["step_tokens"] == 20000.0 and s["update_tokens_per_s"] == 8000.0  # 20,000 tokens in 2.5 s
    assert s["completion_tokens"] == 3200.0 and s["max_reserved_gib"] == 40.0 and "seconds" not in s
    line = gc.format_step(s)
    assert "update 8000 tokens/s" in line and "rollout 500 tokens/s" in line and "max reserved 40.00 GiB" in line


def test_step_probe_stops_before_a_step_past_the_budget(gc, monkeypatch, tmp_path):
    from saw.rl.trainer import RLTrainer

    monkeypatch.setattr(RLTrainer, "train_step", lambda self: {"step": 1})
    stub = RLTrainer.train_step
    args = gc.parse_args(["--shape", "tiny"])
    gc.resolve_defaults(args, "cpu")
    check = gc.Check(args, "cpu", tmp_path, None)
    records = []
    with check.step_probe(records):
        assert RLTrainer.train_step(object()) == {"step": 1}
        assert len(records) == 1 and records[0]["peak_rss_gib"] > 0
        check.deadline = time.monotonic()  # the next step cannot end in time
        with pytest.raises(gc.BudgetExceeded, match="before step 2"):
            RLTrainer.train_step(object())
    assert RLTrainer.train_step is stub  # restored


# ----------------------------------------------------------------------------- whole runs
def test_tiny_budget_skips_stages_with_a_message():
    proc, summary = run_driver("--shape", "tiny", "--device", "cpu", "--budget-s", "1", "--stages", "model,engine",
                               timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary["stages"]["model"] == {"status": "skipped", "reason": "budget"}
    assert summary["stages"]["engine"]["status"] == "skipped"
    assert "[model] SKIPPED" in proc.stdout and "[engine] SKIPPED: needs stage(s) model" in proc.stdout


@pytest.mark.slow
def test_cpu_dry_run_trains_and_reports_figures(tmp_path):
    """The dry run goes through saw.rl.job.run_training (Hydra config, DeepSpeed on CPU) and prints
    positive figures per step, the engine's and the torch update's tokens/s."""
    out = tmp_path / "out"
    proc, summary = run_driver("--shape", "tiny", "--device", "cpu", "--steps", "2", "--max-new-tokens", "8",
                               "--stages", "env,model,train,engine,torch", "--torch-iters", "2",
                               "--out", str(out), "--work-dir", str(tmp_path / "work"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary["ok"] and {n: s["status"] for n, s in summary["stages"].items()} == dict.fromkeys(
        ["env", "model", "train", "engine", "torch"], "ok")
    steps = summary["train"]["steps"]
    assert [s["step"] for s in steps] == [1, 2]
    for s in steps:
        for key in ("step_s", "rollout_s", "update_s", "rollout_tokens_per_s", "update_tokens_per_s",
                    "step_tokens", "completion_tokens", "peak_rss_gib"):
            assert s[key] > 0, key
        assert s["sync_s"] >= 0 and s["response_length_mean"] <= 8
        assert f"[train] step {s['step']}: " in proc.stdout
    assert summary["train"]["median"]["update_tokens_per_s"] > 0 and "rollout" in proc.stdout
    assert summary["engine"]["tokens_per_s"] > 0 and summary["torch"]["tokens_per_s"] > 0
    assert all(c["nonempty_text_frac"] == 1.0 for c in summary["engine"]["calls"])  # every id decodes
    assert summary["model"]["tokenizer_ids"] == 1024 and summary["model"]["prompt_tokens_max"] <= 512
    assert json.loads((out / "summary.json").read_text())["train"]["steps"] == steps
    assert len((out / "train_metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "work" / "model" / "config.json").is_file()  # --work-dir is kept
