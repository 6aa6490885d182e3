"""Dataset sizes and token-length statistics of the tasks.

    python -m saw.tasks.stats                      # both embedded tasks, SmolLM2's tokenizer
    python -m saw.tasks.stats --model PATH --task toolcall --tool-render full

Prompt lengths count the chat-templated prompt with the generation prompt (what the rollout
engine receives); target lengths count the ground-truth text alone.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any, Sequence

from transformers import AutoTokenizer

from saw.core.tokens import chat_template_ids
from saw.models.prepare import default_model_path, prepare_model
from saw.tasks import build_task
from saw.tasks.base import SPLITS, Task


def length_summary(lengths: Sequence[int]) -> dict[str, float]:
    """{"n", "mean", "median", "p90", "max"} of a list of lengths (zeros for an empty list)."""
    if not lengths:
        return {"n": 0, "mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0}
    ordered = sorted(lengths)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"n": len(ordered), "mean": statistics.fmean(ordered), "median": statistics.median(ordered),
            "p90": p90, "max": ordered[-1]}


def task_length_stats(task: Task, tokenizer: Any) -> dict[str, dict[str, dict[str, float]]]:
    """{split: {"prompt": summary, "target": summary}} in tokens of ``tokenizer``; the prompt
    summary also counts ``over_limit``: prompts longer than the task's ``max_prompt_length``."""
    out = {}
    for split in SPLITS:
        records = task.split(split)
        prompt = [len(chat_template_ids(tokenizer, r["prompt"])) for r in records]
        target = [len(tokenizer(r["ground_truth"], add_special_tokens=False)["input_ids"]) for r in records]
        prompt_summary = length_summary(prompt)
        limit = task.max_prompt_length
        prompt_summary["over_limit"] = sum(n > limit for n in prompt) if limit else 0
        out[split] = {"prompt": prompt_summary, "target": length_summary(target)}
    return out


def format_stats(label: str, stats: dict[str, dict[str, dict[str, float]]]) -> str:
    """A small text table of ``task_length_stats`` output."""
    lines = [f"{label}", f"  {'split':<11}{'n':>6}  {'what':<7}{'mean':>8}{'median':>8}{'p90':>7}{'max':>7}"
                         f"{'>limit':>8}"]
    for split, parts in stats.items():
        for what, s in parts.items():
            over = f"{s['over_limit']:>8}" if "over_limit" in s else ""
            lines.append(f"  {split:<11}{s['n']:>6}  {what:<7}{s['mean']:>8.1f}{s['median']:>8.1f}"
                         f"{s['p90']:>7}{s['max']:>7}{over}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="tokenizer folder (default: prepare the embedded SmolLM2)")
    parser.add_argument("--task", choices=["toolcall", "summarize", "all"], default="all")
    parser.add_argument("--tool-render", choices=["compact", "full", "both"], default="both")
    parser.add_argument("--max-prompt-length", type=int, default=512, help="count prompts longer than this")
    args = parser.parse_args(argv)

    if args.model is None:
        model_path = prepare_model({"source": "embedded_smollm2", "path": str(default_model_path("embedded_smollm2"))})
    else:
        model_path = args.model
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    configs = []
    if args.task in ("toolcall", "all"):
        renders = ["compact", "full"] if args.tool_render == "both" else [args.tool_render]
        configs += [(f"toolcall (BFCL v4, tool_render={r}, limit {args.max_prompt_length})",
                     {"name": "toolcall", "tool_render": r, "max_prompt_length": args.max_prompt_length}) for r in renders]
    if args.task in ("summarize", "all"):
        configs.append((f"summarize (ACLSum, limit {args.max_prompt_length})",
                        {"name": "summarize", "max_prompt_length": args.max_prompt_length}))
    print(f"tokenizer: {model_path}")
    for label, cfg in configs:
        task = build_task(cfg)
        print(format_stats(label, task_length_stats(task, tokenizer)))


if __name__ == "__main__":
    main()
