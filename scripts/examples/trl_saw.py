"""SAW inside TRL's GRPOTrainer: two reward functions, weighted by SAW every step.

    python scripts/examples/trl_saw.py                                   # a tiny random model, CPU, 3 steps
    python scripts/examples/trl_saw.py --model PATH --aggregation normalize_then_sum
    python scripts/examples/trl_saw.py --weighting static                # TRL's own static weights

Needs the TRL extra (``pip install .[trl]``). The default model is a tiny random Llama built by
``saw.models.tiny.build_tiny_model`` in a temporary folder (a few seconds, no network), so the
completions are gibberish; the point is the plumbing. Prints, per step, each reward's mean, its
CV and the weight SAW gave it (``reward/<name>/cv``, ``reward/<name>/weight`` in TRL's logs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PROMPTS = [
    "What is the weather in the city?",
    "Call the search tool for a paper summary.",
    "Give the function name and parameters.",
    "Is the number a list or a string?",
]


def has_keyword(completions, **kwargs):
    """1 if the completion names one of a few task words, else 0 (range [0, 1])."""
    words = ("tool", "weather", "search", "function", "name")
    return [float(any(w in c for w in words)) for c in completions]


def brevity(completions, **kwargs):
    """Minus the length in characters over 64, clipped (range [-1, 0])."""
    return [-min(len(c), 64) / 64 for c in completions]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder or hub id (default: a tiny random model)")
    p.add_argument("--aggregation", default="sum_then_normalize", choices=["sum_then_normalize", "normalize_then_sum"],
                   help="TRL's multi_objective_aggregation: GRPO host or GDPO host (default sum_then_normalize)")
    p.add_argument("--weighting", default="saw", help="a weighting of saw.algo.WEIGHTINGS (default saw)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--n", type=int, default=4, help="completions per prompt (default 4)")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.model is None:  # the tiny model is built locally: nothing to download
        for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig

    from saw.integrations.trl import SAWGRPOTrainer

    with tempfile.TemporaryDirectory(prefix="trl_saw-") as tmp:
        model = args.model
        if model is None:
            from saw.models.tiny import build_tiny_model

            model = str(build_tiny_model(Path(tmp) / "tiny-llama"))

        class PrintWeights(TrainerCallback):
            def on_log(self, _args, state, control, logs=None, **kwargs):
                if not logs or "reward/brevity/weight" not in logs:
                    return
                parts = [f"{name}: mean {logs[f'rewards/{name}/mean']:+.3f} cv {logs[f'reward/{name}/cv']:.3f} "
                         f"weight {logs[f'reward/{name}/weight']:.3f}" for name in ("has_keyword", "brevity")]
                print(f"step {state.global_step}: " + " | ".join(parts), flush=True)

        config = GRPOConfig(
            output_dir=str(Path(tmp) / "out"), max_steps=args.steps, seed=args.seed, learning_rate=1e-5,
            per_device_train_batch_size=len(PROMPTS) * args.n, num_generations=args.n,
            max_completion_length=args.max_new_tokens, multi_objective_aggregation=args.aggregation,
            beta=0.0, use_cpu=True, logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
        )
        trainer = SAWGRPOTrainer(
            model=model, reward_funcs=[has_keyword, brevity], args=config,
            train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]),
            weighting=args.weighting, reward_min={"has_keyword": 0.0, "brevity": -1.0},
            callbacks=[PrintWeights()],
        )
        trainer.remove_callback(PrinterCallback)  # TRL's full log dicts: only our lines below
        print(f"{args.weighting} weighting on TRL's {args.aggregation} host, {args.steps} steps, model {model}")
        trainer.train()


if __name__ == "__main__":
    main()
