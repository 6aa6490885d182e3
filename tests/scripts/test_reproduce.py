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


def test_several_ranks_launch_each_run_with_colocated_rollout():
    mod = _load()
    one = mod.training_commands("py", ["experiment=e"], ["grpo", "gdpo_saw"], [0, 1], ["trainer.total_steps=3"])
    assert one == [["py", "scripts/train.py", "-m", "experiment=e", "algorithm=grpo,gdpo_saw", "seed=0,1",
                    "trainer.total_steps=3"]]
    two = mod.training_commands("py", ["experiment=e"], ["grpo", "gdpo_saw"], [0, 1], ["trainer.total_steps=3"], ranks=2)
    assert len(two) == 4 and all(c[:4] == ["py", "-m", "torch.distributed.run", "--nproc_per_node=2"] for c in two)
    assert [(c[-4], c[-3]) for c in two] == [("algorithm=grpo", "seed=0"), ("algorithm=grpo", "seed=1"),
                                             ("algorithm=gdpo_saw", "seed=0"), ("algorithm=gdpo_saw", "seed=1")]
    assert all("trainer.rollout_placement=colocated" in c and c[-1] == "trainer.total_steps=3" for c in two)
