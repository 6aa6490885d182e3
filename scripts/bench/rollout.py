"""Rollout throughput of the vLLM and transformers engines on the embedded SmolLM2-135M-Instruct.

    python scripts/bench/rollout.py                      # both engines, both shapes
    python scripts/bench/rollout.py --engines vllm --repeats 3 --threads 2

Shapes: ``chat`` = 16 short chat prompts x 1 sample x 128 new tokens; ``train`` = the embedded
training batch, 8 prompts (~360 tokens) x 4 samples x 128 new tokens. Sampling at temperature 1
(as in training); completions may end before 128 tokens at EOS, so tokens/s counts the tokens
actually generated (the mean completion length is printed next to it). Also times one weight
sync (all parameters) per engine.

The engines alternate within each repeat so that both see the same background load, and the load
average is printed. On shared cores prefer ``--threads 1``: with 2 OpenMP threads on 2 busy cores
both engines slow down by up to 10x (threads spin-wait for a descheduled partner).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SENTENCES = [
    "We study multi-reward reinforcement learning for language models, where several reward signals are mixed.",
    "Static weights ignore that each reward saturates at a different stage of training.",
    "Our method measures the coefficient of variation of every reward over the batch.",
    "Rewards whose values still vary receive more weight, while saturated rewards fade out.",
    "Experiments on tool calling and summarisation show consistent gains over fixed weighting.",
    "The overhead of computing the weights is below three percent of a training step.",
    "We release code, configurations and evaluation scripts to reproduce every table.",
    "Ablations show that the gains come from the stage-aware schedule rather than the scale.",
    "The approach plugs into group relative policy optimisation without extra forward passes.",
    "Gradient-based alternatives need one extra backward pass per objective and cost far more.",
]


def chat_prompts(count: int, seed: int = 0) -> list[list[dict]]:
    rnd = random.Random(seed)
    topics = ["a robot learning to cook", "the history of tea", "a city under the sea", "how rainbows form",
              "a chess match", "bees and flowers", "a lighthouse keeper", "the first computer"]
    return [[{"role": "user", "content": f"Write a long, detailed story about {rnd.choice(topics)}. "
              f"Use at least {rnd.randint(300, 500)} words."}] for _ in range(count)]


def summary_prompts(engine, count: int, target_tokens: int = 360, seed: int = 0) -> list[list[dict]]:
    """Summarisation-style chat prompts of about ``target_tokens`` tokens (with the chat template)."""
    rnd = random.Random(seed)
    prompts = []
    for _ in range(count):
        sentences: list[str] = []
        while True:
            text = " ".join(sentences)
            msg = [{"role": "user", "content": f"Summarise the abstract below in two sentences.\n\n{text}"}]
            n = len(engine.encode_prompts([msg])[0])
            if n >= target_tokens:
                break
            sentences.append(rnd.choice(SENTENCES))
        prompts.append(msg)
    return prompts


def model_folder(path: str | None) -> Path:
    """``path``, or the embedded SmolLM2 prepared by ``saw.models.prepare`` (built once, then cached)."""
    if path:
        return Path(path)
    from saw.models.prepare import build_smollm2_from_gguf, default_model_path

    return build_smollm2_from_gguf(default_model_path("embedded_smollm2"))


def build(name: str, model: Path, args):
    from rollout import build_engine

    cfg = {"engine": name, "dtype": args.dtype, "max_model_len": 1024, "seed": 0, "threads": args.threads}
    if name == "vllm":
        cfg.update(cpu_kvcache_gib=args.kv_gib, enforce_eager=not args.compiled, in_process=True)
    else:
        cfg.update(batch_size=64)
    t0 = time.perf_counter()
    engine = build_engine(cfg, model)
    return engine, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the prepared embedded SmolLM2)")
    p.add_argument("--engines", default="hf,vllm")
    p.add_argument("--shapes", default="chat,train")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--kv-gib", type=int, default=2)
    p.add_argument("--compiled", action="store_true", help="vLLM: torch.compile instead of eager")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    import torch
    from safetensors.torch import load_file

    from rollout import SamplingConfig

    torch.set_num_threads(args.threads)
    model = model_folder(args.model)
    names = args.engines.split(",")
    print(f"model {model}  threads {args.threads}  dtype {args.dtype}  load average before {os.getloadavg()}")
    engines, info = {}, {}
    for name in names:
        engines[name], start = build(name, model, args)
        engines[name].generate(chat_prompts(2, seed=9), SamplingConfig(n=1, max_new_tokens=8))  # warm-up
        info[name] = {"start_seconds": round(start, 1)}
    shapes = {"chat": (chat_prompts(16), 1), "train": (summary_prompts(engines[names[0]], 8), 4)}
    runs: dict = {(name, shape): [] for name in names for shape in shapes}
    loads = []
    # engines alternate within each repeat so that both see the same background load
    for rep in range(args.repeats):
        for shape in args.shapes.split(","):
            prompts, n = shapes[shape]
            for name in names:
                loads.append(os.getloadavg()[0])
                cpu0 = time.process_time()
                batch = engines[name].generate(prompts, SamplingConfig(n=n, temperature=1.0, max_new_tokens=128,
                                                                      seed=rep))
                runs[(name, shape)].append((batch, time.process_time() - cpu0))
                print(f"  repeat {rep} {shape:5} {name:5} {batch.completion_tokens:6d} tokens in {batch.seconds:7.2f} s "
                      f"= {batch.tokens_per_second:7.1f} tok/s  (load {loads[-1]:.1f})", flush=True)
    weights = load_file(str(model / "model.safetensors"))
    for name in names:
        info[name]["sync_seconds"] = round(engines[name].update_weights(weights.items()), 2)
        engines[name].close()
    print(f"load average (1 min) during the runs: {min(loads):.1f} .. {max(loads):.1f} on "
          f"{len(os.sched_getaffinity(0))} cores")
    print(f"\n{'engine':7} {'shape':6} {'P x n':7} {'prompt':>6} {'compl':>6} {'tok/s med':>9} {'best':>7} "
          f"{'tok/cpu-s':>9}")
    results = []
    for (name, shape), rs in runs.items():
        if not rs:
            continue
        batches = [b for b, _ in rs]
        tps = [b.tokens_per_second for b in batches]
        row = {"engine": name, "shape": shape, "prompts": len(shapes[shape][0]), "n": shapes[shape][1],
               "mean_prompt_tokens": round(batches[0].prompt_tokens / len(batches[0].samples), 1),
               "mean_completion_tokens": round(statistics.mean(b.completion_tokens / len(b.samples) for b in batches), 1),
               "seconds": [round(b.seconds, 2) for b in batches], "tokens_per_s_median": round(statistics.median(tps), 1),
               "tokens_per_s_best": round(max(tps), 1),
               "tokens_per_cpu_s": round(sum(b.completion_tokens for b in batches) / sum(c for _, c in rs), 1)}
        results.append(row)
        print(f"{name:7} {shape:6} {row['prompts']:>2} x {row['n']:<2} {row['mean_prompt_tokens']:>6} "
              f"{row['mean_completion_tokens']:>6} {row['tokens_per_s_median']:>9} {row['tokens_per_s_best']:>7} "
              f"{row['tokens_per_cpu_s']:>9}")
    for name in names:
        print(f"{name:7} start {info[name]['start_seconds']} s, weight sync {info[name]['sync_seconds']} s")
    if "hf" in names and "vllm" in names:
        for shape in args.shapes.split(","):
            pairs = [v[0].tokens_per_second / h[0].tokens_per_second
                     for v, h in zip(runs[("vllm", shape)], runs[("hf", shape)])]
            print(f"vllm / hf tokens/s on {shape}: median {statistics.median(pairs):.2f}x "
                  f"(per repeat: {', '.join(f'{x:.2f}' for x in pairs)})")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "engines": info, "load": loads}, indent=2))


if __name__ == "__main__":
    main()
