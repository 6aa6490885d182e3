"""End-to-end training on a tiny model: every algorithm runs, resume reproduces, bad configs fail early."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from saw.rl.validation import ConfigError, validate_config
from saw.core.io import read_metrics
from saw.rl.job import run_training

ROOT = Path(__file__).resolve().parents[2]


def standalone_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that sets up its own single-process world: without the
    rank variables that in-process tests leave behind (their MASTER_PORT is still bound here)."""
    env = dict(os.environ, **extra)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    return env


def make_cfg(tiny_model_dir, tmp_path, *extra):
    overrides = [
        "model=tiny", f"model.path={tiny_model_dir}", "rollout=hf", "logger=none", "task=toolcall",
        "task.max_train_records=16", "task.max_eval_records=4", "++task.validation_size=4",
        "trainer.total_steps=2", "trainer.prompts_per_step=2", "sampling.n=2", "sampling.max_new_tokens=8",
        "trainer.micro_batch_size=2", "trainer.max_prompt_length=192", "task.filter_overlong_prompts=false", "trainer.val_every=2",
        "trainer.val_records=2", "trainer.lr=1e-3", "trainer.gradient_checkpointing=false",
        f"cache_dir={tmp_path}/cache", f"output_root={tmp_path}/out", *extra,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.mark.parametrize("algorithm", ["grpo", "gdpo", "grpo_saw", "gdpo_saw", "grpo_nostd", "drgrpo", "grpo_gradient",
                                       "gdpo_sa_mrpo", "grpo_mo", "gdpo_dvao"])
def test_two_steps_per_algorithm(algorithm, tiny_model_dir, tmp_path):

    cfg = make_cfg(tiny_model_dir, tmp_path, f"algorithm={algorithm}")
    run_dir = tmp_path / "run"
    summary = run_training(cfg, run_dir)
    assert summary["steps"] == 2
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    names = ["toolcall_format", "toolcall_correctness"]
    for r in rows:
        for name in names:
            for stat in ("mean", "std", "cv", "weight", "zero_var_frac", "adv_share"):
                assert f"reward/{name}/{stat}" in r
        for key in ("time/rollout", "time/rewards", "time/advantages", "time/update", "time/sync",
                    "actor/pg_loss", "actor/lr", "adv/mean", "response/length_mean"):
            assert r[key] is not None, key
        w = [r[f"reward/{n}/weight"] for n in names]
        if algorithm.endswith("saw") or algorithm.endswith("gradient"):
            k = 2 if algorithm.startswith("gdpo") else 1
            assert sum(w) == pytest.approx(k, abs=1e-6)
        elif algorithm.endswith("sa_mrpo"):  # (1 - saturation)^0.5 with the rewards' declared maxima
            assert all(0.0 <= x <= 1.0 for x in w)
        else:
            assert w == [1.0, 1.0]
    assert "val/toolcall_format" in rows[-1]
    assert (run_dir / "policy" / "config.json").exists() and (run_dir / "done.json").exists()
    weights_mode = (run_dir / "policy" / "model.safetensors").stat().st_mode
    assert weights_mode & 0o044 == (run_dir / "config.yaml").stat().st_mode & 0o044  # same modes as other files
    assert (run_dir / "config.yaml").exists()
    assert not (run_dir / "checkpoints").exists()  # removed once the run finished
    # a finished run is skipped when launched again
    assert run_training(cfg, run_dir)["steps"] == 2
    if algorithm == "grpo_gradient":  # the stateful weighting reports its influences every step
        assert all(f"reward/{n}/influence" in r for r in rows for n in names)
    assert all(r[f"reward/{n}/failures"] == 0 for r in rows for n in names)


def test_validation_before_training_is_step_zero(tiny_model_dir, tmp_path):
    """trainer.val_before_train: the starting policy's greedy validation is logged as step 0 (and
    equals a validation of the starting model: same prompts, greedy), before step 1."""
    run_dir = tmp_path / "run"
    run_training(make_cfg(tiny_model_dir, tmp_path, "trainer.val_before_train=true", "trainer.total_steps=1",
                          "trainer.val_every=0"), run_dir)
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1]
    assert set(rows[0]) == {"step", "val/toolcall_format", "val/toolcall_correctness", "val/response_length"}
    assert not any(key.startswith("val/") for key in rows[1])  # val_every=0: no validation after training


def test_authors_kl_penalises_the_grpo_reward(tiny_model_dir, tmp_path):
    """kl=authors: plain GRPO gets coef * sum_t KL_t (k1) subtracted from its reward. At step 1 the
    policy is the reference (penalty 0); after an update at lr 1e-3 it is not (the entropy bonus
    moves the policy even when the random model's rewards are flat)."""
    cfg = make_cfg(tiny_model_dir, tmp_path, "algorithm=grpo", "kl=authors", "trainer.entropy_coef=0.5")
    assert cfg.kl.reward_coef == 0.001 and cfg.kl.loss_coef == 0.0
    run_training(cfg, tmp_path / "run")
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert rows[0]["actor/reward_kl_penalty"] == pytest.approx(0.0, abs=1e-6)
    assert rows[1]["actor/reward_kl_penalty"] != pytest.approx(0.0, abs=1e-9)
    assert "actor/kl" not in rows[0]  # no KL loss term
    saw_cfg = make_cfg(tiny_model_dir, tmp_path, "algorithm=grpo_saw", "kl=authors")
    assert saw_cfg.kl.reward_coef == 0.0  # the SAW variants have no KL at all


def test_shared_prefix_forward_gives_the_same_training(tiny_model_dir, tmp_path):
    """The shared-prefix update is exact: same rewards, losses and gradients as padded sequences,
    also with two PPO epochs (old logprobs recomputed). One mini-batch: the two layouts shuffle
    samples differently, so with several mini-batches their optimizer steps would see other samples."""

    common = ["algorithm=grpo_saw", "task=summarize", "sampling.n=4", "sampling.max_new_tokens=12",
              "trainer.ppo_epochs=2", "trainer.mini_batches=1", "trainer.micro_batch_size=4",
              "trainer.precision=fp32", "trainer.val_every=0",
              "task.rewards=[{name: summary_quality}, {name: summary_conciseness, budget_words: 3}]"]
    a_dir, b_dir = tmp_path / "shared", tmp_path / "padded"
    run_training(make_cfg(tiny_model_dir, tmp_path, *common, "trainer.shared_prefix=true"), a_dir)
    run_training(make_cfg(tiny_model_dir, tmp_path, *common, "trainer.shared_prefix=false"), b_dir)
    a, b = read_metrics(a_dir / "metrics.jsonl"), read_metrics(b_dir / "metrics.jsonl")
    assert any(r["actor/grad_norm"] > 0 for r in a)
    for ra, rb in zip(a, b):
        for key in ("reward/summary_conciseness/mean", "adv/abs_mean", "actor/pg_loss", "actor/grad_norm",
                    "actor/clip_frac", "actor/entropy"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), key


def test_resume_reproduces_uninterrupted_run(tiny_model_dir, tmp_path):

    # a 3-word budget makes the tiny random model's word counts matter: rewards vary within groups
    common = ["algorithm=gdpo_saw", "task=summarize", "trainer.total_steps=4", "sampling.max_new_tokens=12", "sampling.n=4",
              "trainer.mini_batches=2", "trainer.micro_batch_size=4",
              "task.rewards=[{name: summary_quality}, {name: summary_conciseness, budget_words: 3}]", "trainer.save_every=2", "trainer.val_every=0",
              "trainer.keep_final_checkpoint=true"]
    full = tmp_path / "full"
    run_training(make_cfg(tiny_model_dir, tmp_path, *common), full)
    part = tmp_path / "part"
    run_training(make_cfg(tiny_model_dir, tmp_path, *common, "trainer.stop_after_steps=2"), part)
    assert not (part / "done.json").exists() and (part / "checkpoints" / "step_000002").exists()
    run_training(make_cfg(tiny_model_dir, tmp_path, *common), part)  # resume=auto
    a, b = read_metrics(full / "metrics.jsonl"), read_metrics(part / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert sum(r["adv/abs_mean"] > 0 and r["actor/grad_norm"] > 0 for r in a) >= 3  # real updates happen
    for ra, rb in zip(a, b):
        for key in ra:
            if key.startswith(("reward/", "adv/", "actor/", "response/")):
                assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), (ra["step"], key)


@pytest.mark.parametrize("override, match", [
    ("trainer.mini_batches=3", "mini_batches"),
    ("algorithm.estimator=ppo", "valid names"),
    ("trainer.precision=fp8", "bf16_autocast"),
    ("algorithm.weights=[1,2,3]", "3 entries"),
    ("trainer.clip_ratio_c=0.5", "clip_ratio_c=0.5 must be > 1"),
    ("sampling.n=1", "sampling.n=1: group-normalised advantages need >= 2"),
    ("sampling.max_new_tokens=0", "sampling.max_new_tokens must be >= 1"),
    ("task.rewards=[toolcall_format,no_such_reward]", "task.rewards: unknown reward 'no_such_reward'"),
])
def test_bad_configs_fail_before_loading(tiny_model_dir, tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(make_cfg(tiny_model_dir, tmp_path, override))


def test_colocated_rollout_needs_prompts_that_split_over_the_ranks(tiny_model_dir, tmp_path):
    cfg = make_cfg(tiny_model_dir, tmp_path, "trainer.rollout_placement=colocated", "trainer.prompts_per_step=3",
                   "trainer.micro_batch_size=1")
    validate_config(cfg, world_size=1)
    with pytest.raises(ConfigError, match="prompts_per_step=3 cannot be split evenly over 2 ranks"):
        validate_config(make_cfg(tiny_model_dir, tmp_path, "trainer.rollout_placement=colocated",
                                 "trainer.prompts_per_step=3", "trainer.micro_batch_size=1", "sampling.n=4"), world_size=2)
    with pytest.raises(ConfigError, match="tensor_parallel_size=2 does not divide the 3 ranks"):
        validate_config(make_cfg(tiny_model_dir, tmp_path, "trainer.rollout_placement=colocated", "rollout=vllm",
                                 "rollout.tensor_parallel_size=2", "trainer.prompts_per_step=3",
                                 "trainer.micro_batch_size=1", "trainer.shared_prefix=false"), world_size=3)
    with pytest.raises(ConfigError, match="trainer.rollout_placement='everywhere' is not valid"):
        validate_config(make_cfg(tiny_model_dir, tmp_path, "trainer.rollout_placement=everywhere"))


def test_an_empty_model_folder_is_named(tiny_model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=f"model.path={tmp_path / 'empty'} holds no config.json"):
        validate_config(make_cfg(tiny_model_dir, tmp_path, f"model.path={tmp_path / 'empty'}", "model.source=hf"))


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_relaunch_resumes(tiny_model_dir, tmp_path):
    """SIGTERM during training: the current step finishes, a checkpoint is written, the process
    exits with 128 + 15; the log reached the run directory; relaunching finishes the run with
    every step once. The run is long (40 tiny steps) so that on a fast machine the signal still
    lands mid-run."""
    import signal
    import time

    total = 40
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "model=tiny", f"model.path={tiny_model_dir}",
           "rollout=hf", "logger=none", "task=summarize", "task.max_train_records=16", "task.max_eval_records=4",
           f"trainer.total_steps={total}", "trainer.prompts_per_step=2", "sampling.n=2", "sampling.max_new_tokens=8",
           "trainer.micro_batch_size=2", "trainer.val_every=0", "trainer.save_every=100", "trainer.lr=1e-3",
           "trainer.torch_threads=1", "trainer.max_prompt_length=192", "task.filter_overlong_prompts=false",
           f"hydra.run.dir={out}", f"cache_dir={tmp_path}/cache"]
    env = standalone_env(OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not ((out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text().strip()):
        assert proc.poll() is None, "training ended before the signal"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 128 + signal.SIGTERM
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl")]
    assert 1 <= len(steps) < total and (out / "checkpoints" / f"step_{steps[-1]:06d}").is_dir()
    assert "finishing step" in (out / "train.log").read_text()
    assert subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=600).returncode == 0
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == list(range(1, total + 1))


def test_missing_model_and_unknown_algorithm_fail_before_writing(tiny_model_dir, tmp_path):
    cfg = make_cfg(tiny_model_dir, tmp_path, "model.path=/nonexistent/model", "model.source=hf")
    with pytest.raises(ConfigError, match="/nonexistent/model does not exist"):
        run_training(cfg, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # failed before writing anything
    with pytest.raises(Exception, match="algorithm"):
        make_cfg(tiny_model_dir, tmp_path, "algorithm=nope")


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage,placement,engine", [(0, "driver", "hf"), (3, "driver", "hf"), (0, "colocated", "hf"),
                                                        (3, "colocated", "hf"), (0, "colocated", "vllm"),
                                                        (0, "colocated", "vllm-tp2")])
def test_two_processes_stay_in_sync(zero_stage, placement, engine, tiny_model_dir, tmp_path):
    """torchrun with 2 CPU processes (gloo): both ranks end with identical parameters and computed
    identical advantages. Under ZeRO-3 the weights are gathered parameter by parameter for the
    rollout sync and the final save. Colocated: each rank generates with its own engine (vLLM's
    engines join the training world through its external_launcher executor), or both ranks drive
    one tensor-parallel vLLM engine (vllm-tp2)."""
    out = tmp_path / "ddp"
    port = 29517 + zero_stage + (10 if placement == "colocated" else 0) + {"hf": 0, "vllm": 20, "vllm-tp2": 30}[engine]
    extra = [f"trainer.zero_stage={zero_stage}", f"trainer.rollout_placement={placement}"] + \
        (["trainer.shared_prefix=false"] if zero_stage == 3 else [])
    if engine.startswith("vllm"):
        extra += ["rollout.max_model_len=256", "rollout.cpu_kvcache_gib=1", "rollout.threads=1"]
    if engine == "vllm-tp2":
        extra += ["rollout.tensor_parallel_size=2"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(ROOT / "scripts" / "train.py"), "model=tiny", f"model.path={tiny_model_dir}", f"rollout={engine.split('-')[0]}",
           "logger=none", "task=summarize", "task.max_train_records=16", "task.max_eval_records=4",
           "task.rewards=[{name: summary_quality}, {name: summary_conciseness, budget_words: 3}]",
           "trainer.total_steps=2", "trainer.prompts_per_step=2", "sampling.n=4", "sampling.max_new_tokens=12",
           "trainer.micro_batch_size=4", "trainer.max_prompt_length=192", "task.filter_overlong_prompts=false", "trainer.val_every=0",
           "trainer.gradient_checkpointing=false", "trainer.torch_threads=1", "trainer.lr=1e-3",
           "trainer.check_sync=true", f"hydra.run.dir={out}", f"cache_dir={tmp_path}/cache", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["dist/param_sum_spread"] == 0.0 for r in rows)
    assert all(r["dist/advantage_sum_spread"] == 0.0 for r in rows)
    per_rank = [key for key in rows[0] if key.startswith("perf/rank")]
    if placement == "colocated" and engine != "vllm-tp2":  # both engines generated: throughput of each
        assert sorted(per_rank) == ["perf/rank0/rollout_tokens_per_s", "perf/rank1/rollout_tokens_per_s"]
        assert all(r[key] > 0 for r in rows for key in per_rank)
    else:
        assert per_rank == []
    assert json.loads((out / "done.json").read_text())["steps"] == 2
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(out / "policy")  # gathered full weights, not shards
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert all(a.shape == b.shape for a, b in zip(saved.parameters(), start.parameters()))
    assert any(not torch.equal(a.float(), b.float()) for a, b in zip(saved.parameters(), start.parameters()))


def test_distributed_world_can_be_recreated_in_one_process(tmp_path):
    """A second DeepSpeed engine after the world was destroyed (vLLM's shutdown does this between
    the jobs of a Hydra multirun) must not reuse the old world's cached groups."""
    script = tmp_path / "recreate.py"
    script.write_text(
        "import torch, torch.distributed as dist, deepspeed\n"
        "from saw.rl.distributed import init_distributed\n"
        "def engine():\n"
        "    m = torch.nn.Linear(4, 4)\n"
        "    cfg = {'train_micro_batch_size_per_gpu': 1}\n"
        "    return deepspeed.initialize(model=m, optimizer=torch.optim.AdamW(m.parameters()), config=cfg)[0]\n"
        "init_distributed(); engine()\n"
        "dist.destroy_process_group()\n"
        "init_distributed(); engine()\n"
        "print('second engine ok')\n")
    env = standalone_env(DS_ACCELERATOR="cpu", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "second engine ok" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.slow
def test_multirun_with_vllm_runs_every_job(tiny_model_dir, tmp_path):
    """`train.py -m` runs its jobs in one process; each job starts and shuts down a vLLM engine."""
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "model=tiny", f"model.path={tiny_model_dir}",
           "rollout=vllm", "rollout.dtype=float32", "rollout.max_model_len=256", "rollout.cpu_kvcache_gib=1",
           "logger=none", "task=summarize", "task.max_train_records=8", "task.max_eval_records=4",
           "trainer.total_steps=1", "trainer.prompts_per_step=2", "sampling.n=2", "sampling.max_new_tokens=8",
           "trainer.micro_batch_size=4", "trainer.max_prompt_length=192", "task.filter_overlong_prompts=false", "trainer.val_every=0",
           "trainer.gradient_checkpointing=false", "algorithm=grpo,grpo_saw", f"output_root={tmp_path}/out",
           "experiment_name=multi", f"cache_dir={tmp_path}/cache"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, env=standalone_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    for algorithm in ("grpo", "grpo_saw"):
        run = tmp_path / "out" / "multi" / f"summarize-{algorithm}-s0"
        assert json.loads((run / "done.json").read_text())["steps"] == 1, algorithm


def test_one_writer_per_run_directory(tmp_path):
    """A second process cannot take a run directory that a live process holds; a dead holder's
    lock is taken over (the OS dropped it)."""
    from saw.core.io import RunLock, RunLockedError

    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; sys.path.insert(0, sys.argv[1]);"
                               "from saw.core.io import RunLock; lock = RunLock(sys.argv[2]).acquire();"
                               "print('held', flush=True); time.sleep(60)", str(ROOT), str(run_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"in use by pid {holder.pid}"):
            RunLock(run_dir).acquire()
    finally:
        holder.kill()
        holder.wait()
    RunLock(run_dir).acquire().release()  # stale lock of a dead process: taken over


def test_relaunch_with_another_config_is_refused(tiny_model_dir, tmp_path):
    from saw.rl.job import config_differences

    cfg = make_cfg(tiny_model_dir, tmp_path, "trainer.total_steps=1", "trainer.keep_final_checkpoint=true")
    run_dir = tmp_path / "run"
    run_training(cfg, run_dir)
    changed = make_cfg(tiny_model_dir, tmp_path, "trainer.total_steps=1", "trainer.lr=5e-4")
    with pytest.raises(ConfigError, match=r"started with another config; differing keys:\n  trainer.lr: 0.001 -> 0.0005"):
        run_training(changed, run_dir)
    # bookkeeping keys may change; a longer run resumes from the kept checkpoint
    longer = make_cfg(tiny_model_dir, tmp_path, "trainer.total_steps=2", "trainer.keep_final_checkpoint=true",
                      "trainer.val_every=1")
    assert run_training(longer, run_dir)["steps"] == 2
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1, 2]  # each step once
    forced = make_cfg(tiny_model_dir, tmp_path, "trainer.total_steps=3", "trainer.lr=5e-4", "trainer.resume=force",
                      "trainer.keep_final_checkpoint=true")
    assert run_training(forced, run_dir)["steps"] == 3
    accepted = json.loads((run_dir / "resume_overrides.jsonl").read_text().splitlines()[-1])["accepted"]
    assert accepted == ["trainer.lr: 0.001 -> 0.0005"]
    assert config_differences({"a": {"b": 1}, "logger": {"x": 1}}, {"a": {"b": 2}, "logger": {"x": 2}}) == ["a.b: 1 -> 2"]
    judge = {"task": {"rewards": [{"name": "llm_judge", "base_url": "http://a:1/v1", "temperature": 0.1}]}}
    moved = {"task": {"rewards": [{"name": "llm_judge", "base_url": "http://b:2/v1", "temperature": 0.1}]}}
    regraded = {"task": {"rewards": [{"name": "llm_judge", "base_url": "http://a:1/v1", "temperature": 0.7}]}}
    assert config_differences(judge, moved) == []  # where the judge runs may change
    assert config_differences(judge, regraded) == ["task.rewards.0.temperature: 0.1 -> 0.7"]


def test_a_restart_without_checkpoint_starts_metrics_afresh(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"ste')  # an earlier attempt, torn
    run_training(make_cfg(tiny_model_dir, tmp_path, "trainer.total_steps=1"), run_dir)
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1]


@pytest.mark.slow
def test_soak_sigkill_at_random_moments_then_resume(tiny_model_dir, tmp_path):
    """kill -9 at seeded random moments (startup, mid-step, inside checkpoint writes), resumed each
    time: the run ends with the metrics and weights of an uninterrupted run, every step once.
    A concurrent second launch of the same run fails fast."""
    import random
    import signal
    import time

    from safetensors.torch import load_file

    def cmd(out):
        return [sys.executable, str(ROOT / "scripts" / "train.py"), "model=tiny", f"model.path={tiny_model_dir}",
                "rollout=hf", "logger=none", "task=summarize", "task.max_train_records=16", "task.max_eval_records=4",
                "task.rewards=[{name: summary_quality}, {name: summary_conciseness, budget_words: 3}]",
                "algorithm=gdpo_saw", "trainer.total_steps=48", "trainer.prompts_per_step=2", "sampling.n=4",
                "sampling.max_new_tokens=12", "trainer.micro_batch_size=4", "trainer.val_every=0",
                "trainer.save_every=1", "trainer.lr=1e-3", "trainer.torch_threads=1",
                "trainer.max_prompt_length=192", "task.filter_overlong_prompts=false",
                f"hydra.run.dir={out}", f"cache_dir={tmp_path}/cache"]

    env = standalone_env(OMP_NUM_THREADS="1")
    full = tmp_path / "full"
    assert subprocess.run(cmd(full), cwd=ROOT, env=env, capture_output=True, timeout=600).returncode == 0
    soak = tmp_path / "soak"
    from saw.core.io import RunLock

    with RunLock(soak):  # a launch of a run that another process holds is refused at once
        second = subprocess.run(cmd(soak), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode != 0 and f"is in use by pid {os.getpid()}" in second.stderr + second.stdout
    rnd = random.Random(7)
    kills = 0
    for _attempt in range(4):
        proc = subprocess.Popen(cmd(soak), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        lock = soak / ".lock"
        while time.time() < deadline and proc.poll() is None and \
                not (lock.is_file() and f"pid {proc.pid} " in lock.read_text()):
            time.sleep(0.1)
        time.sleep(rnd.uniform(0.5, 5.0))  # model load, a step, or a checkpoint write (save_every=1)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3
    assert subprocess.run(cmd(soak), cwd=ROOT, env=env, capture_output=True, timeout=600).returncode == 0
    a, b = read_metrics(full / "metrics.jsonl"), read_metrics(soak / "metrics.jsonl")
    assert [r["step"] for r in b] == list(range(1, 49))
    for ra, rb in zip(a, b):
        for key in ra:
            if key.startswith(("reward/", "adv/", "actor/", "response/")):
                assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), (ra["step"], key)
    wa, wb = load_file(full / "policy" / "model.safetensors"), load_file(soak / "policy" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
