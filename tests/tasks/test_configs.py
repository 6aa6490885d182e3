"""The task and model config groups compose with Hydra and build what they describe."""

from __future__ import annotations

from pathlib import Path

import pytest

from saw.tasks import TaskDataError, build_task

CONF = Path(__file__).resolve().parents[2] / "conf"
TASK_CONFIGS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
MODEL_CONFIGS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def compose(group: str, name: str, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose(config_name=None, overrides=[f"+{group}={name}", *overrides])
    return cfg[group]


def test_expected_configs_exist():
    assert {"toolcall", "toolcall_toolrl", "summarize", "summarize_tldr"} <= set(TASK_CONFIGS)
    assert {"smollm2-135m", "tiny", "qwen2.5-1.5b", "qwen2.5-3b"} <= set(MODEL_CONFIGS)


@pytest.mark.parametrize("name, sizes", [
    ("toolcall", {"train": 1315, "validation": 32, "test": 1000}),
    ("summarize", {"train": 100, "validation": 50, "test": 100}),
])
def test_embedded_task_configs_build(name, sizes):
    task = build_task(compose("task", name))
    assert task.sizes() == sizes
    assert task.max_prompt_length and task.reward_specs


def test_toolcall_config_rewards_and_overrides():
    cfg = compose("task", "toolcall", "task.tool_render=full", "task.max_train_records=20")
    task = build_task(cfg)
    assert task.reward_specs == ["toolcall_format", "toolcall_correctness"]
    assert len(task.train) == 20 and "# Available tools" in task.train[0]["prompt"][0]["content"]


def test_toolrl_config_requires_paths():
    cfg = compose("task", "toolcall_toolrl")
    assert cfg.source == "toolrl" and cfg.max_prompt_length == 2048
    with pytest.raises(ValueError, match="'train' is required"):
        build_task(cfg)


def test_tldr_config_offline_error_is_clear():
    cfg = compose("task", "summarize_tldr")
    assert cfg.hub_id == "trl-lib/tldr" and cfg.max_train_records == 2560 and cfg.max_eval_records == 256
    with pytest.raises(TaskDataError, match="trl-lib/tldr.*set the task's `paths`"):
        build_task(cfg)


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_model_configs_have_required_keys(name, monkeypatch, tmp_path):
    monkeypatch.setenv("SAW_CACHE", str(tmp_path))
    cfg = compose("model", name)
    assert set(cfg) >= {"path", "dtype", "trust_remote_code", "source"}
    assert cfg.trust_remote_code is False
    assert cfg.source in ("embedded_smollm2", "tiny", "hf")
    if cfg.source != "hf":
        assert str(cfg.path).startswith(str(tmp_path) + "/models/")


def test_model_path_default_uses_home(monkeypatch, tmp_path):
    monkeypatch.delenv("SAW_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert compose("model", "smollm2-135m").path == f"{tmp_path}/.cache/saw/models/SmolLM2-135M-Instruct"
