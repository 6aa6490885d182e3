"""Launcher variables from SLURM (saw/rl/distributed.py): srun with one task per GPU needs no
wrapper script; an explicit launcher (torchrun, deepspeed) always wins."""

from __future__ import annotations

from saw.rl.distributed import slurm_world_from_env


def test_srun_tasks_become_ranks():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "4242",
           "SLURM_JOB_NODELIST": "gpu[03-06,09]"}
    assert slurm_world_from_env(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("5", "8", "1")
    assert env["MASTER_ADDR"] == "gpu03"  # the first host of the allocation
    assert env["MASTER_PORT"] == str(20000 + 4242)
    plain = {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_NODELIST": "nodeA,nodeB", "MASTER_PORT": "1234"}
    assert slurm_world_from_env(plain) and plain["MASTER_ADDR"] == "nodeA" and plain["MASTER_PORT"] == "1234"


def test_launcher_variables_and_single_tasks_are_left_alone():
    launched = {"RANK": "0", "SLURM_PROCID": "3", "SLURM_NTASKS": "4"}
    assert not slurm_world_from_env(launched) and launched["RANK"] == "0" and "WORLD_SIZE" not in launched
    single = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}
    assert not slurm_world_from_env(single) and "RANK" not in single
    assert not slurm_world_from_env({})
