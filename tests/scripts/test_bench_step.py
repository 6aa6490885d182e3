"""scripts/bench/step.py without models: arguments, TRL settings, the reward wrapper, and the
orchestration and tables driven by fake workers with hand-set timings."""

import importlib.util
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_step_under_test", ROOT / "scripts" / "bench" / "step.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


# ----------------------------------------------------------------------------- arguments
def test_defaults_are_the_documented_run(bench):
    a = bench.parse_args([])
    assert (a.prompts, a.n, a.max_new_tokens, a.warmup, a.steps) == (4, 4, 64, 1, 3)
    assert a.sides == ["ours", "trl"] and a.scaling is True and a.algorithm == "gdpo_saw"
    a = bench.parse_args(["--no-scaling", "--sides", "ours", "--steps", "5", "--prompts", "8", "--n", "2",
                          "--max-new-tokens", "32", "--algorithm", "grpo_saw"])
    assert (a.scaling, a.sides, a.steps, a.prompts, a.n, a.max_new_tokens) == (False, ["ours"], 5, 8, 2, 32)


@pytest.mark.parametrize("argv, message", [
    (["--n", "1"], "at least two completions"),
    (["--sides", "ours,verl"], "unknown"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--warmup", "-1"], "--warmup must be >= 0"),
    (["--algorithm", "ppo"], "invalid choice"),
])
def test_bad_arguments_are_refused_with_the_reason(bench, argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------- matched settings
@pytest.mark.parametrize("prompts, n, mbs, expected", [
    (4, 4, 4, (4, 4)),    # one group of 4 per micro-batch, 4 micro-batches
    (8, 4, 8, (8, 4)),    # two groups per micro-batch
    (4, 8, 4, (8, 4)),    # micro_batch_size < n: one whole group per micro-batch
])
def test_trl_batch_layout_matches_one_of_our_steps(bench, prompts, n, mbs, expected, tmp_path):
    a = bench.parse_args(["--prompts", str(prompts), "--n", str(n), "--micro-batch-size", str(mbs)])
    spec = bench.make_spec(a, tmp_path)
    per_micro, micro_batches = bench.step_layout(spec)
    assert (per_micro, micro_batches) == expected
    kw = bench.trl_config_kwargs(spec, per_micro, micro_batches, str(tmp_path))
    assert kw["per_device_train_batch_size"] * kw["gradient_accumulation_steps"] == prompts * n
    assert kw["generation_batch_size"] == prompts * n and kw["num_generations"] == n
    assert kw["max_completion_length"] == a.max_new_tokens and kw["learning_rate"] == a.lr
    assert (kw["beta"], kw["num_iterations"], kw["loss_type"], kw["gradient_checkpointing"]) == (0.0, 1, "dapo", False)
    assert kw["use_cpu"] and kw["bf16"] and kw["report_to"] == "none" and not kw["shuffle_dataset"]
    assert kw["multi_objective_aggregation"] == "normalize_then_sum"


def test_grpo_host_maps_to_sum_then_normalize(bench, tmp_path):
    spec = bench.make_spec(bench.parse_args(["--algorithm", "grpo_saw"]), tmp_path)
    assert bench.trl_config_kwargs(spec, 4, 4, str(tmp_path))["multi_objective_aggregation"] == "sum_then_normalize"
    assert "algorithm=grpo_saw" in bench.ours_overrides(spec, str(tmp_path))


def test_trl_accepts_the_settings(bench, tmp_path):
    """The keyword names exist in the installed TRL and give one generation per optimizer step."""
    trl = pytest.importorskip("trl")
    spec = bench.make_spec(bench.parse_args([]), tmp_path)
    config = trl.GRPOConfig(**bench.trl_config_kwargs(spec, 4, 4, str(tmp_path)))
    assert config.steps_per_generation == config.gradient_accumulation_steps == 4
    assert config.generation_batch_size == 16 and config.beta == 0.0 and config.bf16 and config.use_cpu


def test_rollout_context_follows_a_smaller_model_limit(bench, tmp_path):
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 1024}')
    assert bench.rollout_max_model_len(str(tmp_path)) == 1024
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 8192}')
    assert bench.rollout_max_model_len(str(tmp_path)) == 2048


# ----------------------------------------------------------------------------- reward wrapper
def test_trl_reward_wrapper_gives_our_rewards(bench):
    from rewards import build_rewards

    records = [
        {"id": "a", "prompt": [{"role": "user", "content": "Summarize: cats sleep a lot."}],
         "ground_truth": "Cats sleep for most of the day.", "data_source": "t", "extra_info": {"k": 1}},
        {"id": "b", "prompt": [{"role": "user", "content": "Summarize: dogs bark."}],
         "ground_truth": "Dogs bark at strangers.", "data_source": "t", "extra_info": {}},
    ]
    texts = ["Cats sleep most of the day.", "Dogs bark loudly at strangers " + "and more words " * 40]
    rows = [bench.trl_row(r) for r in records]
    columns = {key: [row[key] for row in rows] for key in rows[0] if key != "prompt"}
    for reward in build_rewards(["summary_quality", "summary_conciseness"]):
        fn = bench.trl_reward_function(reward)
        assert fn.__name__ == reward.name
        direct = reward(texts, records)
        # conversational completions and plain strings, plus the extra keywords TRL passes
        chat = fn(prompts=[r["prompt"] for r in records],
                  completions=[[{"role": "assistant", "content": t}] for t in texts],
                  completion_ids=[[1], [2]], trainer_state=None, log_extra=None, log_metric=None, **columns)
        plain = fn(prompts=[r["prompt"] for r in records], completions=texts, **columns)
        assert chat == plain == pytest.approx(direct)
    assert len(set(direct)) == 2  # the two completions really score differently (conciseness)


# ----------------------------------------------------------------------------- orchestration
class FakeWorker:
    """Returns preset step records; logs every call."""

    def __init__(self, side, spec, times, log, fail_at=None):
        self.side, self.spec, self.times, self.log, self.fail_at = side, spec, list(times), log, fail_at
        self.info = {"startup_s": 1.0}
        self.calls = 0
        self.stopped = False

    def step(self):
        self.calls += 1
        self.log.append(self.side)
        if self.fail_at == self.calls:
            raise RuntimeError("worker failed")
        t = self.times.pop(0)
        rec = {"step_s": t, "cpu_s": 2 * t, "rollout_s": t / 4, "rewards_s": 0.01, "update_s": t / 2,
               "rollout_tokens_per_s": 100.0, "completion_len": 60.0, "samples": self.spec["prompts"] * self.spec["n"],
               "peak_rss_mib": 1000.0 + t, "prompt_ids": [f"p{self.calls}"]}
        if self.side == "ours":
            rec.update(advantages_s=t / 1000, sync_s=0.1)
        else:
            rec.update(other_scoring_s=0.02)
        return rec

    def stop(self):
        self.stopped = True


def test_alternating_run_medians_ratio_and_scaling(bench, tmp_path):
    a = bench.parse_args(["--steps", "3", "--warmup", "1", "--scaling-steps", "2"])
    log, started = [], []
    times = {("ours", 4, 64): [50.0, 2.0, 4.0, 3.0], ("trl", 4, 64): [90.0, 9.0, 6.0, 12.0],
             ("ours", 8, 64): [70.0, 5.0, 7.0], ("ours", 4, 128): [70.0, 4.0, 5.0]}

    def start(side, spec):
        w = FakeWorker(side, spec, times[(side, spec["prompts"], spec["max_new_tokens"])], log)
        started.append(w)
        return w

    lines = []
    result = bench.run(a, str(tmp_path), start_worker=start, emit=lines.append)
    assert log[:8] == ["ours", "trl"] * 4  # one step each, alternating, warm-up included
    ours, trl = result["comparison"]["ours"], result["comparison"]["trl"]
    assert ours["step_s"] == 3.0 and trl["step_s"] == 9.0  # warm-up (50, 90) dropped
    assert ours["step_times"] == [2.0, 4.0, 3.0]
    assert ours["peak_rss_mib"] == 1050.0  # peak over every step, warm-up included
    assert ours["rewards_per_s"] == pytest.approx(16 / 0.01)
    assert ours["advantages_share"] == pytest.approx(0.001)
    assert result["same_prompts"] is True
    text = "\n".join(lines)
    assert "ratio of medians TRL / ours: 3.00x wall time, 3.00x CPU time" in text
    assert len(result["load"]["during"]) == 8 + 2 * 3 and "1-minute load after each step: max" in text
    assert "same prompts on both sides at every step: yes" in text
    assert "TRL 1.16 supports vllm<=0.31" in text
    rows = result["scaling"]
    assert [(r["prompts"], r["max_new_tokens"]) for r in rows] == [(4, 64), (8, 64), (4, 128)]
    assert [r["step_s"] for r in rows] == [3.0, 6.0, 4.5]
    scaling = bench.format_scaling(rows).splitlines()
    assert scaling[3].split()[:6] == ["8", "4", "64", "60.0", "6.00", "2.00"]
    assert scaling[4].split()[:6] == ["4", "4", "128", "60.0", "4.50", "1.50"]
    assert all(w.stopped for w in started) and len(started) == 4


def test_a_failing_worker_still_stops_every_process(bench, tmp_path):
    a = bench.parse_args(["--steps", "2", "--no-scaling"])
    log, started = [], []

    def start(side, spec):
        w = FakeWorker(side, spec, [1.0] * 3, log, fail_at=2 if side == "trl" else None)
        started.append(w)
        return w

    with pytest.raises(RuntimeError, match="worker failed"):
        bench.run(a, str(tmp_path), start_worker=start, emit=lambda s: None)
    assert [w.stopped for w in started] == [True, True]


def test_summary_needs_measured_steps_and_detects_other_prompts(bench):
    recs = [{"step_s": 1.0, "rewards_s": 0.1, "samples": 4, "peak_rss_mib": 1.0, "prompt_ids": ["a"]}]
    with pytest.raises(ValueError, match="no measured steps"):
        bench.summarise(recs, warmup=1)
    other = [dict(recs[0], prompt_ids=["b"])]
    assert bench.same_prompts(recs, recs) and not bench.same_prompts(recs, other)
    s = bench.summarise(recs * 2 + [dict(recs[0], step_s=7.0)], warmup=0)
    assert s["step_s"] == statistics.median([1.0, 1.0, 7.0])
