"""The whole pipeline in one command (``make reproduce``): model, SFT warm start, training grid,
evaluation, tables.

    python scripts/reproduce.py                       # smoke profile (CPU, under 60 min on 2 cores)
    python scripts/reproduce.py --profile long        # more steps and seeds (CPU, hours)
    python scripts/reproduce.py --profile paper       # Qwen2.5 paper configs (GPUs; see README)
    python scripts/reproduce.py --profile compare     # 4 methods x 3 seeds that move the policy (CPU, ~2 h)
    python scripts/reproduce.py --ranks 2             # each run on 2 processes, colocated rollout
    python scripts/reproduce.py --tasks summarize --seeds 0 1 --algorithms grpo grpo_saw

Every stage is resumable: a finished training run (done.json) or evaluation (eval.json) is
skipped, an interrupted run continues from its last checkpoint, so re-running after an
interruption picks up where it stopped. Results land in ``results/`` (markdown, LaTeX, CSV,
PNG) and the tables are printed at the end.

Where the embedded (CPU) reproduction deviates from the paper:
1. SmolLM2-135M-Instruct instead of Qwen2.5-1.5B/3B-Instruct, a few RL steps of 4 prompts x 4
   samples instead of ~100 steps of 512 x 4: a smoke-scale run that exercises the full method.
2. Tool calling trains on BFCL v4 Live (not ToolRL's rlla_4k) and is tested on BFCL v4 Non-Live
   (incl. Java/JavaScript) and Multi-Turn; Live scores are on training data. Smoke Multi-Turn:
   one dialogue per category, cut to its first 2 turns, 1 tool step per turn, prompts cut to 640
   tokens.
3. Summarisation uses ACLSum with ROUGE (quality) and a length rule (conciseness) instead of
   Reddit TL;DR scored by an LLM judge.
4. Evaluation subsamples each BFCL category (``--eval-records``) to fit the time budget.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (sweep files in conf/sweep/ that define the grid, seeds (None = the sweep's), extra training
# overrides, eval records per category/split (None = all)). The sweep files are the one definition
# of each grid: `python scripts/train.py -m +sweep=embedded` trains the same runs.
PROFILES = {
    "smoke": (["embedded"], None, [], 8),
    "long": (["embedded"], [0, 1, 2], ["trainer.total_steps=30"], None),
    "paper": (["table1", "table2"], None, [], None),
    # the 4 paper methods x 3 seeds on embedded tool calling, 12 steps at lr 3e-5 (conf/experiment/
    # embedded_toolcall_compare.yaml); judged by the greedy validation before and after training
    "compare": (["compare"], None, [], None),
}
TRAINING_ONLY = {"compare"}  # profiles whose table is the training and validation table (no BFCL pass)


def sweep_grid(name: str) -> dict[str, list[str]]:
    """The sweeper params of conf/sweep/<name>.yaml as lists: experiment, algorithm, seed."""
    from omegaconf import OmegaConf

    params = OmegaConf.load(ROOT / "conf" / "sweep" / f"{name}.yaml").hydra.sweeper.params
    return {key: [v.strip() for v in str(params[key]).split(",")] for key in ("experiment", "algorithm", "seed")}


def experiment_task(experiment: str) -> str:
    """The task name an experiment composes to (conf/experiment/<experiment>.yaml)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return str(compose("config", overrides=[f"experiment={experiment}"]).task.name)


def training_commands(py: str, common: list[str], algorithms: list[str], seeds: list[int], overrides: list[str],
                      ranks: int = 1) -> list[list[str]]:
    """One Hydra multirun over the grid on one rank; with several ranks one torch.distributed.run
    launch per run (colocated rollout), in the same run directories."""
    if ranks < 1:
        raise SystemExit(f"--ranks must be >= 1, got {ranks}")
    if ranks == 1:
        return [[py, "scripts/train.py", "-m", *common, f"algorithm={','.join(algorithms)}",
                 f"seed={','.join(map(str, seeds))}", *overrides]]
    launch = [py, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "--master_port=29533"]
    return [[*launch, "scripts/train.py", *common, f"algorithm={algo}", f"seed={seed}",
             "trainer.rollout_placement=colocated", *overrides] for algo in algorithms for seed in seeds]


def sh(cmd: list[str], log_file: Path) -> None:
    """Run a stage, teeing its output to log_file; stop the pipeline on failure."""
    print(f"\n$ {' '.join(cmd)}", flush=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            # the console gets the story, the log file everything (vLLM's config dumps are pages long)
            if len(line) < 400 and not any(noise in line for noise in ("it/s]", "s/it]", "WARNING", "Loading weights")):
                sys.stdout.write(line)
        if proc.wait() != 0:
            raise SystemExit(f"stage failed ({proc.returncode}): {' '.join(cmd)}\n  full log: {log_file}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default=os.environ.get("PROFILE", "smoke"))
    ap.add_argument("--tasks", nargs="+", default=None, help="only these tasks (default: all of the grid's)")
    ap.add_argument("--algorithms", nargs="+", default=None, help="default: the grid's (conf/sweep/)")
    ap.add_argument("--seeds", nargs="+", type=int, default=None)
    ap.add_argument("--output-root", default="outputs")
    ap.add_argument("--results", default="results")
    ap.add_argument("--eval-records", type=int, default=None,
                    help="records per BFCL category / summarisation split (default: the profile's)")
    ap.add_argument("--ranks", type=int, default=1,
                    help="training processes per run (torch.distributed.run, colocated rollout: every rank "
                         "generates its shard of the prompts); default 1")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for training, e.g. trainer.total_steps=10")
    args = ap.parse_args()

    sweeps, profile_seeds, extra, eval_records = PROFILES[args.profile]
    eval_records = args.eval_records if args.eval_records is not None else eval_records
    grid = []  # (experiment, task, algorithms, seeds)
    for sweep in sweeps:
        params = sweep_grid(sweep)
        for exp in params["experiment"]:
            task = experiment_task(exp)
            if args.tasks is None or task in args.tasks:
                seeds = args.seeds or profile_seeds or [int(x) for x in params["seed"]]
                grid.append((exp, task, args.algorithms or params["algorithm"], seeds))
    py = sys.executable
    logs = ROOT / args.output_root / "logs"
    t_start = time.time()
    timings: dict[str, float] = {}

    t0 = time.time()
    paper = args.profile == "paper"
    sh([py, "scripts/prepare_model.py"] + (["model=qwen2.5-1.5b"] if paper else []), logs / "prepare.log")
    timings["prepare model"] = time.time() - t0

    run_dirs = []
    for exp, task, algorithms, seeds in grid:
        common = [f"experiment={exp}", f"output_root={args.output_root}"]
        t0 = time.time()
        for cmd in training_commands(py, common, algorithms, seeds, extra + args.overrides, args.ranks):
            sh(cmd, logs / f"train_{exp}.log")
        timings[f"train {exp}"] = time.time() - t0
        exp_dir = ROOT / args.output_root / exp
        if args.profile in TRAINING_ONLY:
            run_dirs += [str(exp_dir / f"{task}-{algo}-s{seed}") for algo in algorithms for seed in seeds]
            continue
        t0 = time.time()
        ev = [f"eval.max_records={eval_records}"] if eval_records else []
        if args.profile == "smoke":  # multi-turn kept cheap: 1 dialogue/category, first 2 turns, 1 step/turn
            ev += ["eval.multi_turn.max_records=1", "eval.multi_turn.max_turns=2",
                   "eval.multi_turn.step_limit=1", "eval.multi_turn.max_prompt_length=640"]
        base = exp_dir / f"{task}-base-s0"
        if not (base / "eval.json").exists():
            sh([py, "scripts/evaluate.py", *common, *ev], logs / f"eval_{exp}.log")
        # the SFT warm start (tool calling) is its own row: what RL starts from
        done_files = sorted(exp_dir.glob(f"{task}-*-s*/done.json"))
        sft_dir = exp_dir / f"{task}-sft-s0"
        if done_files:
            summary = json.loads(done_files[0].read_text())
            if summary.get("start_model") != summary.get("base_model"):
                if not (sft_dir / "eval.json").exists():
                    sh([py, "scripts/evaluate.py", *common, f"eval.model={summary['start_model']}",
                        "eval.algorithm=sft", f"eval.out_dir={sft_dir}", *ev], logs / f"eval_{exp}.log")
                run_dirs.append(str(sft_dir))
        for algo in algorithms:
            for seed in seeds:
                run = exp_dir / f"{task}-{algo}-s{seed}"
                if (run / "done.json").exists() and not (run / "eval.json").exists():
                    sh([py, "scripts/evaluate.py", f"eval.run_dir={run}", *ev], logs / f"eval_{exp}.log")
                run_dirs.append(str(run))
        timings[f"evaluate {exp}"] = time.time() - t0
        run_dirs.append(str(base))

    t0 = time.time()
    sh([py, "scripts/make_tables.py", *run_dirs, "--out", args.results], logs / "tables.log")
    timings["tables"] = time.time() - t0
    timings["total"] = time.time() - t_start
    (ROOT / args.results).mkdir(parents=True, exist_ok=True)
    (ROOT / args.results / "timings.json").write_text(json.dumps(timings, indent=1))
    print("\n" + (ROOT / args.results / "results.md").read_text())
    print("\nwall time per stage (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))


if __name__ == "__main__":
    main()
