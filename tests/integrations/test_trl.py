"""The TRL plug-in (saw/integrations/trl.py): TRL's GRPOTrainer with this repo's weightings.

With fixed rewards (reward functions that return a fixed matrix, whatever was generated), the
advantages TRL computes with the plug-in equal ``compute_advantages`` on the same matrix and
groups, for both of TRL's aggregation modes; with weighting "static" they equal an unmodified
GRPOTrainer's; a two-step training run logs reward/<name>/cv and reward/<name>/weight.
"""

import json
import math
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl")

from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from rewards.base import Reward  # noqa: E402
from saw.algo import compute_advantages  # noqa: E402
from saw.integrations.trl import (  # noqa: E402
    TRL_VERSION, SAWGRPOTrainer, compute_advantages_options, declare_reward_min, trl_reward,
)

G = 4  # completions per prompt
PROMPTS = ["the weather in the city", "search a paper summary"]
NAN = float("nan")
# fixed rewards [N=8, K=2], rows in TRL's order (prompt 0 x 4, prompt 1 x 4); values exact in binary.
# correct (min 0, nearly saturated): group 1 is flat where valid (one NaN = "not applicable"); short (min -1).
R = torch.tensor([
    [1.0, -0.25], [0.5, -0.5], [1.0, NAN], [1.0, -1.0],
    [1.0, 0.0], [1.0, -0.75], [NAN, -0.25], [1.0, -0.5],
], dtype=torch.float64)
REWARD_MIN = [0.0, -1.0]
GROUP_IDS = torch.arange(8) // G
# the compute_advantages options that match TRL 1.16 (written out here, not taken from the plug-in)
MATCHING = {
    ("sum_then_normalize", "group"): dict(estimator="grpo", eps=1e-4, whiten="none"),
    ("sum_then_normalize", "none"): dict(estimator="grpo_nostd", eps=1e-4, whiten="none"),
    ("normalize_then_sum", "group"): dict(estimator="gdpo", eps=1e-4, whiten="sequence"),
}


def _fixed(column):
    values = [None if math.isnan(v) else float(v) for v in R[:, column].tolist()]

    def fn(completions, **kwargs):
        assert len(completions) == len(values)
        return list(values)

    return fn


def correct(completions, **kwargs):
    return _fixed(0)(completions)


def short(completions, **kwargs):
    return _fixed(1)(completions)


def _config(tmp_path, **over):
    kw = dict(
        output_dir=str(tmp_path), max_steps=2, seed=0, per_device_train_batch_size=len(PROMPTS) * G,
        gradient_accumulation_steps=1, num_generations=G, max_completion_length=4, temperature=1.0,
        learning_rate=1e-4, lr_scheduler_type="constant", beta=0.0, num_iterations=1, loss_type="dapo",
        use_cpu=True, bf16=False, gradient_checkpointing=False, use_vllm=False, logging_steps=1,
        save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True, shuffle_dataset=False,
        dataloader_num_workers=0, log_completions=False,
    )
    kw.update(over)
    return GRPOConfig(**kw)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="module")
def dataset():
    return Dataset.from_list([{"prompt": p} for p in PROMPTS])


def _trainer(cls, tiny_model_dir, tokenizer, dataset, tmp_path, reward_funcs=(correct, short), config=None, **kw):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return cls(model=model, reward_funcs=list(reward_funcs), args=config or _config(tmp_path),
               train_dataset=dataset, processing_class=tokenizer, **kw)


def _trl_advantages(trainer, aggregation, scale_rewards="group"):
    """Advantages of one generation batch (the prompts, G rows each, as TRL's sampler lays them out)."""
    trainer.multi_objective_aggregation = aggregation
    trainer.scale_rewards = scale_rewards
    trainer.model.train()
    torch.manual_seed(0)
    out = trainer._generate_and_score_completions([{"prompt": p} for p in PROMPTS for _ in range(G)])
    return out["advantages"].detach().to(torch.float64)


def _saw_weights_by_hand(r, rmin, delta=1e-8):
    """SAW's w' (DESIGN.md section 1), written independently of saw.algo: per column, valid entries only."""
    cvs = []
    for k in range(r.shape[1]):
        col = [v - rmin[k] + delta for v in r[:, k].tolist() if not math.isnan(v)]
        mean = sum(col) / len(col)
        std = math.sqrt(sum((v - mean) ** 2 for v in col) / (len(col) - 1))
        cvs.append(std / (abs(mean) + delta))
    return [c / sum(cvs) for c in cvs], cvs


@pytest.fixture(scope="module")
def saw_trainer(tiny_model_dir, tokenizer, dataset, tmp_path_factory):
    return _trainer(SAWGRPOTrainer, tiny_model_dir, tokenizer, dataset, tmp_path_factory.mktemp("saw"),
                    weighting="saw", reward_min={"correct": 0.0, "short": -1.0})


@pytest.mark.parametrize("aggregation,scale", list(MATCHING))
def test_saw_advantages_equal_compute_advantages(saw_trainer, aggregation, scale):
    got = _trl_advantages(saw_trainer, aggregation, scale)
    expected, _ = compute_advantages(R, GROUP_IDS, weighting="saw", reward_min=REWARD_MIN,
                                     **MATCHING[aggregation, scale])
    assert got.shape == (8,)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # the weights TRL applied are SAW's (K x w' on the GDPO host), computed by hand here
    w, cv = _saw_weights_by_hand(R, REWARD_MIN)
    k_scale = 2 if aggregation == "normalize_then_sum" else 1
    assert saw_trainer.reward_weights.tolist() == pytest.approx([k_scale * x for x in w], rel=1e-6)
    metrics = saw_trainer._metrics["train"]
    assert metrics["reward/correct/cv"][-1] == pytest.approx(cv[0], rel=1e-9)
    assert metrics["reward/short/weight"][-1] == pytest.approx(k_scale * w[1], rel=1e-9)
    # SAW's weights are far from equal here: the static result differs (the comparison can fail)
    static, _ = compute_advantages(R, GROUP_IDS, weighting="static", **MATCHING[aggregation, scale])
    assert (static - got).abs().max() > 1e-2
    assert w[0] < 0.4  # the nearly saturated "correct" gets the smaller weight


@pytest.mark.parametrize("aggregation", ["sum_then_normalize", "normalize_then_sum"])
def test_static_plugin_leaves_trl_unchanged(tiny_model_dir, tokenizer, dataset, tmp_path, aggregation):
    config = _config(tmp_path, reward_weights=[1.0, 0.5], multi_objective_aggregation=aggregation)
    plain = _trainer(GRPOTrainer, tiny_model_dir, tokenizer, dataset, tmp_path, config=config)
    plugin = _trainer(SAWGRPOTrainer, tiny_model_dir, tokenizer, dataset, tmp_path, config=config,
                      weighting="static")
    a_plain = _trl_advantages(plain, aggregation)
    a_plugin = _trl_advantages(plugin, aggregation)
    assert torch.equal(a_plain, a_plugin)
    assert plugin.reward_weights.tolist() == [1.0, 0.5]
    expected, _ = compute_advantages(R, GROUP_IDS, weighting="static", weights=[1.0, 0.5],
                                     **MATCHING[aggregation, "group"])
    torch.testing.assert_close(a_plugin, expected, atol=1e-5, rtol=0)
    assert plugin._metrics["train"]["reward/short/weight"] == [0.5]


@declare_reward_min(0.0)
def has_space(completions, **kwargs):
    return [float(" " in c) for c in completions]


@declare_reward_min(-1.0)
def brevity(completions, **kwargs):
    return [-min(len(c), 40) / 40 for c in completions]


def test_two_step_training_logs_cv_and_weight(tiny_model_dir, tokenizer, dataset, tmp_path):
    trainer = _trainer(SAWGRPOTrainer, tiny_model_dir, tokenizer, dataset, tmp_path,
                       reward_funcs=(has_space, brevity), config=_config(tmp_path, max_completion_length=8))
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "reward/brevity/weight" in entry]
    assert [entry["step"] for entry in logs] == [1, 2]
    for entry in logs:
        for name in ("has_space", "brevity"):
            assert math.isfinite(entry[f"reward/{name}/cv"]) and entry[f"reward/{name}/cv"] >= 0
        assert entry["reward/has_space/weight"] + entry["reward/brevity/weight"] == pytest.approx(1.0, abs=1e-6)
    assert trainer.state.global_step == 2


def test_reward_minima_are_required_before_the_model_loads():
    with pytest.raises(ValueError, match=r"theoretical minimum.*\['correct', 'short'\]"):
        SAWGRPOTrainer(model="/nonexistent/model", reward_funcs=[correct, short])
    with pytest.raises(ValueError, match=r"unknown reward functions \['typo'\]"):
        SAWGRPOTrainer(model="/nonexistent/model", reward_funcs=[correct, short], reward_min={"typo": 0.0})
    with pytest.raises(ValueError, match="per-objective policy gradients"):
        SAWGRPOTrainer(model="/nonexistent/model", reward_funcs=[correct, short], weighting="gradient",
                       reward_min=REWARD_MIN)
    with pytest.raises(ValueError, match="saw"):  # unknown names list the valid ones
        SAWGRPOTrainer(model="/nonexistent/model", reward_funcs=[correct, short], weighting="nope")


def test_compute_advantages_options():
    for (aggregation, scale), options in MATCHING.items():
        assert compute_advantages_options(aggregation, scale) == options
    assert compute_advantages_options("normalize_then_sum", "batch")["whiten"] == "sequence"  # TRL ignores it there
    assert compute_advantages_options("sum_then_normalize", True)["estimator"] == "grpo"
    with pytest.raises(ValueError, match="no estimator"):
        compute_advantages_options("sum_then_normalize", "batch")
    with pytest.raises(ValueError, match="multi_objective_aggregation"):
        compute_advantages_options("sum", "group")


def test_trl_reward_wraps_a_repo_reward():
    class Echo(Reward):
        name, min, max = "echo", -2.0, 3.0

        def _score_one(self, completion, record):
            if record["ground_truth"] == "boom":
                raise RuntimeError("scorer failure")
            return len(completion) + record["extra_info"]["bonus"]

    logged = {}
    fn = trl_reward(Echo())
    assert fn.__name__ == "echo" and fn.reward_min == -2.0 and fn.reward_max == 3.0
    out = fn(prompts=["p", "q", "r"], completions=["a", [{"role": "assistant", "content": ""}], "x"],
             ground_truth=["g", "h", "boom"], extra_info=['{"bonus": 1}', '{"bonus": -5}', "{}"],
             completion_ids=[[1], [2], [3]], trainer_state=None, log_metric=lambda k, v: logged.__setitem__(k, v))
    assert out == [2.0, -2.0, -2.0]  # 1 + 1; 0 - 5 clipped to min; failure -> min
    assert logged == {"reward/echo/failures": 1.0}


def _hashed_a(completions, **kwargs):
    """Rewards that depend on the text only (the same on every process): {0, .25, .5, .75, 1}."""
    return [(zlib.crc32(c.encode()) % 5) / 4 for c in completions]


def _hashed_b(completions, **kwargs):
    return [-(zlib.crc32(c.encode()[::-1]) % 3) / 2 for c in completions]


def _distributed_worker(model_dir: str, out_dir: str) -> None:
    """One process of a 2-process CPU run (torchrun): each scores its own prompt's G completions."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    config = _config(out_dir, per_device_train_batch_size=G, max_completion_length=6)
    trainer = _trainer(SAWGRPOTrainer, model_dir, tokenizer, Dataset.from_list([{"prompt": p} for p in PROMPTS]),
                       out_dir, reward_funcs=(_hashed_a, _hashed_b), config=config, reward_min=[0.0, -1.0])
    rank = trainer.accelerator.process_index
    captured = {}
    hook = trainer._calculate_rewards

    def capture(*args):
        captured["rewards"] = hook(*args)
        return captured["rewards"]

    trainer._calculate_rewards = capture
    result = {"world": trainer.accelerator.num_processes}
    for aggregation in ("sum_then_normalize", "normalize_then_sum"):
        trainer.multi_objective_aggregation = aggregation
        trainer.model.train()
        out = trainer._generate_and_score_completions([{"prompt": PROMPTS[rank]}] * G)
        result[aggregation] = {"rewards": captured["rewards"].tolist(), "weights": trainer.reward_weights.tolist(),
                               "advantages": out["advantages"].tolist()}
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # exit-time hooks of the trainer stack can hang a gloo worker after its parent is gone


@pytest.mark.slow
def test_two_processes_apply_the_same_weights_to_the_gathered_rewards(tiny_model_dir, tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, "--worker", str(tiny_model_dir), str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its two workers
        output, _ = proc.communicate()
    assert proc.returncode == 0, output[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    for aggregation, options in (("sum_then_normalize", MATCHING["sum_then_normalize", "group"]),
                                 ("normalize_then_sum", MATCHING["normalize_then_sum", "group"])):
        a, b = ranks[0][aggregation], ranks[1][aggregation]
        assert a["rewards"] == b["rewards"] and a["weights"] == b["weights"]  # gathered; bitwise the same weights
        r = torch.tensor(a["rewards"], dtype=torch.float64)
        assert r.shape == (2 * G, 2) and r.std(dim=0).min() > 0
        expected, _ = compute_advantages(r, torch.arange(2 * G) // G, weighting="saw", reward_min=REWARD_MIN, **options)
        got = torch.tensor(a["advantages"] + b["advantages"], dtype=torch.float64)  # rank 0's rows, then rank 1's
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_version_pin():
    import trl

    assert trl.__version__ == TRL_VERSION


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _distributed_worker(sys.argv[2], sys.argv[3])
