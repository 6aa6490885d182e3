"""Step time of one rank against two ranks on the same work: driver rollout (rank 0 generates the
whole step) and colocated rollout (each rank generates its half), each run as a real training job.

    python scripts/bench/ranks.py                          # random 4 x 512 Llama, hf engine (~2 min on 2 cores)
    python scripts/bench/ranks.py --model PATH --engine vllm --steps 4 --prompts 8

Every layout gets the same prompts per step, samples per prompt, max new tokens and steps; the
cores are split evenly between the ranks (``trainer.torch_threads`` = cores / ranks). The first
step of each run is dropped (engine warm-up); the table gives the mean of the rest. On a machine
with one accelerator per rank, run it with ``--threads`` left at its default and read the
colocated row against the one-rank row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

LAYOUTS = (("1 rank", 1, "driver"), ("2 ranks, driver", 2, "driver"), ("2 ranks, colocated", 2, "colocated"))
COLUMNS = ("time/step", "time/rollout", "time/update", "time/sync", "perf/rollout_tokens_per_s")


def run_layout(args, model: str, ranks: int, placement: str, out: Path, port: int) -> list[dict]:
    """Train ``args.steps`` steps in a fresh job; returns its metric records."""
    threads = max(1, (os.cpu_count() or 2) // ranks) if args.threads is None else args.threads
    overrides = [
        "model=tiny", f"model.path={model}", f"rollout={args.engine}", "logger=none", "task=summarize",
        "task.max_train_records=64", "task.max_eval_records=4", "task.filter_overlong_prompts=false",
        f"trainer.total_steps={args.steps}", f"trainer.prompts_per_step={args.prompts}", f"sampling.n={args.n}",
        f"sampling.max_new_tokens={args.max_new_tokens}", f"trainer.micro_batch_size={args.n}",
        "trainer.max_prompt_length=192", "trainer.val_every=0", "trainer.save_every=0", "trainer.lr=1e-4",
        f"trainer.torch_threads={threads}", f"trainer.rollout_placement={placement}", "trainer.resume=never",
        f"hydra.run.dir={out}", f"cache_dir={out.parent}/cache"]
    if args.engine == "vllm":
        overrides += ["rollout.max_model_len=512", "rollout.cpu_kvcache_gib=1", f"rollout.threads={threads}"]
    else:
        overrides += [f"rollout.threads={threads}"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    launch = [sys.executable] if ranks == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                  f"--nproc_per_node={ranks}", f"--master_port={port}"]
    t0 = time.time()
    proc = subprocess.run(launch + [str(ROOT / "scripts" / "train.py"), *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{ranks} rank(s), {placement}: training failed\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    print(f"  {ranks} rank(s), {placement}: {len(rows)} steps in {time.time() - t0:.0f} s (job)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="HF model folder (default: a random Llama of --layers x --hidden)")
    ap.add_argument("--hidden", type=int, default=512, help="hidden size of the default random model")
    ap.add_argument("--layers", type=int, default=4, help="layers of the default random model")
    ap.add_argument("--engine", default="hf", choices=("hf", "vllm"))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads per rank (default: cores / ranks)")
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first step is dropped)")
    with tempfile.TemporaryDirectory(prefix="bench_ranks_") as tmp:
        model = args.model
        if model is None:
            from saw.models.tiny import build_tiny_model

            model = str(build_tiny_model(Path(tmp) / "model", hidden_size=args.hidden, num_layers=args.layers))
        print(f"model {model}, engine {args.engine}, {args.prompts} prompts x {args.n} samples x "
              f"{args.max_new_tokens} new tokens, {args.steps} steps per layout, {os.cpu_count()} cores")
        table = []
        for i, (name, ranks, placement) in enumerate(LAYOUTS):
            rows = run_layout(args, model, ranks, placement, Path(tmp) / f"run{i}", 29700 + i)[1:]
            table.append((name, {c: sum(r[c] for r in rows) / len(rows) for c in COLUMNS}))
    print(f"\n{'layout':<22}" + "".join(f"{c:>28}" for c in COLUMNS))
    for name, vals in table:
        print(f"{name:<22}" + "".join(f"{vals[c]:>28.3f}" for c in COLUMNS))
    base = table[0][1]["time/step"]
    for name, vals in table[1:]:
        print(f"{name}: step time x{vals['time/step'] / base:.2f} of one rank's")


if __name__ == "__main__":
    main()
