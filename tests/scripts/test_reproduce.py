"""scripts/reproduce.py reads its grids from conf/sweep/ (one definition with `+sweep=...`)."""

import importlib.util
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("reproduce_under_test", ROOT / "scripts" / "reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_profiles_read_the_sweep_files():
    mod = _load()
    for name in {s for sweeps, *_ in mod.PROFILES.values() for s in sweeps}:
        params = OmegaConf.load(ROOT / "conf" / "sweep" / f"{name}.yaml").hydra.sweeper.params
        grid = mod.sweep_grid(name)
        assert ",".join(grid["algorithm"]) == str(params.algorithm).replace(" ", "")
        assert ",".join(grid["experiment"]) == str(params.experiment).replace(" ", "")
    grid = mod.sweep_grid("embedded")
    assert grid["algorithm"] == ["grpo", "grpo_saw", "gdpo", "gdpo_saw"] and grid["seed"] == ["0"]
    assert [mod.experiment_task(e) for e in grid["experiment"]] == ["toolcall", "summarize"]
