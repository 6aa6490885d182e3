"""The paper experiments carry the SAW authors' recipe for every algorithm.

Values are the authors' (Zhaolutuan/SAW @119951f): train_gdpo.sh (the one script; the README runs
the four methods by changing algorithm.adv_estimator to grpo | gdpo | grpo-h | gdpo-h), verl's
ppo_trainer.yaml and fsdp_workers.py defaults. Line numbers refer to that commit.
"""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pathlib import Path

from saw.rl.validation import ConfigError, validate_config

CONF = Path(__file__).resolve().parents[2] / "conf"
PAPER_ALGORITHMS = ["grpo", "grpo_saw", "gdpo", "gdpo_saw"]


def compose_paper(experiment, algorithm, *extra):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}", f"algorithm={algorithm}",
                                           "task.paths.train=/data/train.parquet", "task.paths.test=/data/test.parquet",
                                           *extra])
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("experiment", ["paper_toolcall_qwen2.5-1.5b", "paper_toolcall_qwen2.5-3b"])
@pytest.mark.parametrize("algorithm", PAPER_ALGORITHMS)
def test_toolcall_recipe_is_the_authors(experiment, algorithm):
    c = compose_paper(experiment, algorithm)
    t, kl = c["trainer"], c["kl"]
    # train_gdpo.sh:46 train_batch_size=512, :65 rollout.n=4, :53 ppo_mini_batch_size=128 (4 mini-batches)
    assert (t["prompts_per_step"], c["sampling"]["n"], t["mini_batches"]) == (512, 4, 4)
    # :51 lr 1e-6; ppo_trainer.yaml:27-29 clip_ratio 0.2, grad_clip 1.0, entropy_coeff 0.001; :38-40 constant, no warmup
    assert (t["lr"], t["clip_ratio_low"], t["clip_ratio_high"], t["grad_clip"], t["entropy_coef"]) == \
        (1e-6, 0.2, None, 1.0, 0.001)
    assert (t["lr_schedule"], t["warmup_steps"], t["ppo_epochs"]) == ("constant", 0, 1)
    # fsdp_workers.py:229-232 AdamW weight_decay 1e-2, betas (0.9, 0.999)
    assert (t["weight_decay"], list(t["betas"])) == (0.01, [0.9, 0.999])
    # :48-49 prompt/response 2048/1024; rl_dataset.py:113-116 filter commented out; ray_trainer.py:477 truncation left
    assert (c["task"]["max_prompt_length"], c["sampling"]["max_new_tokens"]) == (2048, 1024)
    assert c["task"]["filter_overlong_prompts"] is False
    # :44-45 train on train.parquet, validate on test.parquet
    assert c["task"]["paths"]["validation"] == c["task"]["paths"]["test"] == "/data/test.parquet"
    assert c["task"]["drop_test_questions"] is False  # the whole train file, no de-duplication against test
    # ppo_trainer.yaml:63-65 temperature 1, top_p 1, top_k -1
    assert (c["sampling"]["temperature"], c["sampling"]["top_p"], c["sampling"]["top_k"]) == (1.0, 1.0, -1)
    # :55 use_kl_loss=False; :67 kl_ctrl.kl_coef=0.001 (k1, ppo_trainer.yaml:142-145) read by the grpo branch only
    # (ray_trainer.py:153 token_level_rewards; gdpo/grpo-h/gdpo-h read token_level_scores_*: l.171, 191, 222)
    assert kl["loss_coef"] == 0.0 and kl["reward_estimator"] == "k1"
    assert kl["reward_coef"] == (0.001 if algorithm == "grpo" else 0.0)
    # ray_trainer.py:179-186 GDPO whitens per token (verl masked_whiten); GRPO hosts do not whiten
    a = c["algorithm"]
    assert a["whiten"] is None and a["loss_agg_mode"] is None and t["loss_agg_mode"] == "token-mean"
    # equal static weights (rlla.py:303 format + correctness), SAW with delta 1e-8 (ray_trainer.py:200-208)
    assert a["weights"] is None and a["delta"] == 1e-8
    assert a["weighting"] == ("saw" if algorithm.endswith("_saw") else "static")
    assert c["task"]["rewards"] == ["toolcall_format", "toolcall_correctness"]
    # ppo_trainer.yaml:14 hybrid_engine (a vLLM rollout on every GPU), train_gdpo.sh:19 TP 1, :64 memory 0.6,
    # ppo_trainer.yaml:73 free_cache_engine (the cache is released while the actor updates), :72 enforce_eager
    r = c["rollout"]
    assert t["rollout_placement"] == "colocated" and r["in_process"] is True and r["enforce_eager"] is True
    assert (r["tensor_parallel_size"], r["gpu_memory_utilization"], r["sleep_between_steps"]) == (1, 0.6, True)


@pytest.mark.parametrize("algorithm", PAPER_ALGORITHMS)
def test_paper_configs_validate(algorithm):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=paper_toolcall_qwen2.5-1.5b", f"algorithm={algorithm}"])
    validate_config(cfg, world_size=8)


def test_uniform_kl_is_an_ablation_for_every_method():
    for algorithm in PAPER_ALGORITHMS:
        kl = compose_paper("paper_toolcall_qwen2.5-1.5b", algorithm, "kl=uniform")["kl"]
        assert (kl["loss_coef"], kl["loss_estimator"], kl["reward_coef"]) == (0.001, "k3", 0.0)


def test_reward_kl_on_a_per_reward_estimator_is_refused():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["algorithm=gdpo", "kl.reward_coef=0.001"])
    with pytest.raises(ConfigError, match="kl.reward_coef=0.001 needs an estimator that scalarises"):
        validate_config(cfg)


def test_drgrpo_changes_both_halves():
    c = compose_paper("paper_toolcall_qwen2.5-1.5b", "drgrpo")
    assert (c["algorithm"]["estimator"], c["algorithm"]["loss_agg_mode"]) == ("grpo_nostd", "seq-mean-token-sum-norm")
    nostd = compose_paper("paper_toolcall_qwen2.5-1.5b", "grpo_nostd")["algorithm"]
    assert nostd["loss_agg_mode"] is None  # grpo_nostd keeps the trainer's token-mean: not Dr.GRPO
