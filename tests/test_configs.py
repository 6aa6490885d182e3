"""Every experiment and sweep file composes with Hydra and passes the trainer's config checks."""

import itertools
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from saw.rl.validation import ConfigError, validate_config

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))
ALGORITHMS = sorted(p.stem for p in (CONF / "algorithm").glob("*.yaml") if not p.stem.startswith("_"))


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_validates(experiment):
    cfg = _compose([f"experiment={experiment}"])
    assert cfg.experiment_name == experiment
    validate_config(cfg, world_size=8 if experiment.startswith("paper") else 1)
    # everything resolves once the data paths the user must give are there
    if (OmegaConf.to_container(cfg.task, resolve=False).get("paths") or {}).get("train") == "???":
        cfg = _compose([f"experiment={experiment}", "task.paths.train=/d/train.parquet", "task.paths.test=/d/test.parquet"])
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved["trainer"]["total_steps"] >= 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_algorithms_compose(algorithm):
    cfg = _compose([f"algorithm={algorithm}"])
    validate_config(cfg)
    assert cfg.algorithm.name == algorithm
    base = OmegaConf.load(CONF / "algorithm" / "_base.yaml")
    assert set(base) <= set(cfg.algorithm)  # every algorithm carries the shared keys


def test_the_base_algorithm_file_is_not_an_algorithm():
    with pytest.raises(ConfigError, match="algorithm.name is not set: conf/algorithm/_base.yaml is the shared base"):
        validate_config(_compose(["algorithm=_base"]))


def test_paper_settings_match_design():
    cfg = _compose(["experiment=paper_toolcall_qwen2.5-1.5b"])
    t = cfg.trainer
    assert (t.prompts_per_step, cfg.sampling.n, t.lr, t.clip_ratio_low, t.total_steps) == (512, 4, 1e-6, 0.2, 100)
    assert (cfg.task.max_prompt_length, cfg.sampling.max_new_tokens, cfg.sampling.temperature) == (2048, 1024, 1.0)
    tl = _compose(["experiment=paper_tldr_qwen2.5-1.5b"])
    assert (tl.task.max_train_records, tl.task.max_eval_records) == (2560, 256)


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_combinations_compose(sweep):
    params = yaml.safe_load((CONF / "sweep" / f"{sweep}.yaml").read_text())["hydra"]["sweeper"]["params"]
    keys = list(params)
    values = [str(params[k]).split(",") for k in keys]
    combos = list(itertools.product(*values))
    assert len(combos) >= 2
    for combo in combos:
        overrides = [f"{k}={v}" for k, v in zip(keys, combo)]
        cfg = _compose([f"+sweep={sweep}", *overrides])
        validate_config(cfg, world_size=8 if cfg.experiment_name.startswith("paper") else 1)
