"""GPU check: the repo's real training path on one GPU with a random model of Qwen2.5-1.5B's shape.

    python scripts/bench/gpu_check.py                              # GPU: Qwen2.5-1.5B shape, 4 steps
    python scripts/bench/gpu_check.py --shape tiny --device cpu    # CPU dry run (tiny model, ~1 min)
    bash scripts/gpu_check.sh                                      # on a bare, offline GPU image

Stages, in order. Each prints what it does and its figures; a failing stage prints its traceback
and the independent stages after it still run; a stage that no longer fits in the wall-clock
budget (--budget-s) is skipped with a message, and training stops between steps when the next
step would not fit.

1. env     versions, the device, whether DeepSpeed and Hydra import.
2. model   a randomly initialised Qwen2ForCausalLM of the chosen shape (``--shape qwen2.5-1.5b``:
           hidden 1536, 28 layers, 12/2 heads, vocabulary 151,936, tied embeddings, bf16), saved as a
           Hugging Face folder with a byte-level BPE tokenizer (saw.models.tiny, ChatML template),
           and synthetic ACLSum-shaped data (the summarize task's file format, read through
           ``task.aclsum_data_dir``). The tokenizer learns only a few hundred merges, so its vocabulary
           is padded with decode-only filler tokens (" <word><k>", never produced by encoding) up to
           the model's: every id the random model samples decodes to text. Without them, ids beyond
           the vocabulary decode to nothing (tokenizers drops unknown ids), so nearly every
           completion of a 151,936-way random model would be empty text.
3. train   ``saw.rl.job.run_training`` on a config composed with Hydra from conf/: task=summarize on
           the synthetic data (ROUGE quality + conciseness rewards), rollout=hf, logger=none,
           DeepSpeed ZeRO-0, ``--precision`` (bf16 on CUDA), the trainer's defaults otherwise
           (shared-prefix update, no gradient checkpointing; ``--gradient-checkpointing`` turns it
           on and the shared prefix off). Per step, from metrics.jsonl: time/step, rollout, update,
           sync, rollout tokens/s, update tokens/s (prompt + completion tokens of the step's samples
           / time/update), and the step's peak memory (CUDA: max allocated / reserved; CPU: peak RSS).
           If DeepSpeed's bf16 mode fails before a step is done, the stage is retried once with
           ``bf16_autocast``.
4. engine  ``rollout.hf_engine.HFEngine`` alone: a warm-up batch and a timed batch of the same size.
5. torch   (runs when train did not finish a step, e.g. DeepSpeed or Hydra missing; or when listed in
           --stages): a plain torch forward/backward of ``saw.algo.policy_loss`` + AdamW step on the same
           model, fp32 weights under bf16 autocast on CUDA, with the trainer's logprob code.

The last line is ``GPU_CHECK_SUMMARY {json}``; --out (default $OUT/gpu_check when $OUT is set) gets
summary.json and the training run's metrics.jsonl and config.yaml.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SHAPES: dict[str, dict[str, Any]] = {
    # Qwen2.5-1.5B(-Instruct)'s config.json
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6,
                         rms_norm_eps=1e-6, tie_word_embeddings=True, dtype="bfloat16"),
    # the same architecture, small enough for a CPU dry run
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1024, max_position_embeddings=2048, rope_theta=1e6,
                 rms_norm_eps=1e-6, tie_word_embeddings=True, dtype="float32"),
}
STAGES = ("env", "model", "train", "engine", "torch")
# least seconds a stage needs to be worth starting, per device kind
MIN_SECONDS = {"model": 20, "train": 60, "engine": 20, "torch": 20}
# words of the synthetic abstracts and summaries (those of saw.models.tiny's tokenizer corpus, plus some)
WORDS = ("the a tool call function name parameters think response summary abstract paper model reward weather "
         "city unit celsius get set search query result value true false json list number string of to in and "
         "is for with on we method task data training language learning results show approach problem").split()
FILLER_WORDS = ("alpha beta gamma delta model token paper result method data value summary reward policy "
                "group sample weight signal stage train").split()
SUMMARY_MARK = "GPU_CHECK_SUMMARY"

log = logging.getLogger("gpu_check")


class BudgetExceeded(RuntimeError):
    """Raised by the step probe when the next training step would not fit in the budget."""


# ============================================================================ arguments
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-1.5b", help="model shape (default qwen2.5-1.5b)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="auto: cuda when available; cpu hides the GPUs from this process")
    p.add_argument("--stages", default="auto",
                   help="comma list of env,model,train,engine,torch (default auto: all but torch, which runs "
                        "when train did not finish a step)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 4 on CUDA, 2 on CPU)")
    p.add_argument("--prompts", type=int, default=None, help="prompts per step (default 16 on CUDA, 4 on CPU)")
    p.add_argument("--n", type=int, default=4, help="completions per prompt (default 4)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default 256 on CUDA, 16 on CPU")
    p.add_argument("--micro-batch-size", type=int, default=None,
                   help="trainer.micro_batch_size, sequences (default 16 on CUDA, 8 on CPU)")
    p.add_argument("--max-prompt-length", type=int, default=512, help="task.max_prompt_length (default 512)")
    p.add_argument("--prompt-words", type=int, default=70,
                   help="words per synthetic abstract (default 70: ~330 prompt tokens with the chat template)")
    p.add_argument("--precision", choices=("bf16", "bf16_autocast", "fp32"), default=None,
                   help="trainer.precision (default bf16 on CUDA: DeepSpeed bf16 mode; fp32 on CPU)")
    p.add_argument("--algorithm", default="grpo_saw", help="conf/algorithm file (default grpo_saw)")
    p.add_argument("--kl", default="none", help="conf/kl file: none (default), authors (reward KL of plain GRPO, "
                                               "a reference model), uniform (a KL loss)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="trainer.gradient_checkpointing=true (and shared_prefix=false, which needs the KV cache)")
    p.add_argument("--torch-iters", type=int, default=3, help="iterations of the torch stage (default 3)")
    p.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget in seconds (default 420)")
    p.add_argument("--work-dir", default=None, help="model, data and run folder (default: a temporary folder, removed)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--out", default=None, help="where summary.json and the run's metrics go (default $OUT/gpu_check)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Hydra override for the train stage (repeatable)")
    args = p.parse_args(argv)
    args.stages = parse_stages(args.stages, p)
    for name in ("steps", "prompts", "n", "max_new_tokens", "micro_batch_size", "torch_iters", "prompt_words"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.n < 2:
        p.error("--n must be >= 2: group-normalised advantages need at least two completions per prompt")
    if args.budget_s <= 0:
        p.error(f"--budget-s must be > 0, got {args.budget_s}")
    return args


def parse_stages(text: str, parser: argparse.ArgumentParser | None = None) -> list[str] | None:
    """The stages asked for, in run order (None = auto)."""
    if text == "auto":
        return None
    asked = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in asked if s not in STAGES]
    if unknown or not asked:
        message = f"--stages: unknown stage(s) {unknown}; valid: auto or a comma list of {', '.join(STAGES)}"
        if parser is None:
            raise ValueError(message)
        parser.error(message)
    return [s for s in STAGES if s in asked]


def resolve_defaults(args: argparse.Namespace, device: str) -> None:
    """Fill the per-device defaults (a GPU run at paper-like sizes, a quick CPU run)."""
    cuda = device == "cuda"
    defaults = {"steps": 4 if cuda else 2, "prompts": 16 if cuda else 4, "max_new_tokens": 256 if cuda else 16,
                "micro_batch_size": 16 if cuda else 8, "precision": "bf16" if cuda else "fp32"}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


# ============================================================================ helpers
TRAIN_MODULES = ("deepspeed", "hydra", "omegaconf")  # the train stage's stack (the wheelhouse installs them)


def import_problem(module: str) -> str | None:
    """None when ``module`` imports, else the reason (exception type and message)."""
    try:
        __import__(module)
    except Exception as exc:  # noqa: BLE001 - reported: missing optional packages decide the stages
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return None


def say(stage: str, message: str) -> None:
    print(f"[{stage}] {message}", flush=True)


def gib(n_bytes: float) -> float:
    return round(n_bytes / 2**30, 3)


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_memory(device: str) -> dict[str, float]:
    """Peak memory since the last reset: CUDA max allocated / reserved, or the process's peak RSS on CPU."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        return {"max_allocated_gib": gib(torch.cuda.max_memory_allocated()),
                "max_reserved_gib": gib(torch.cuda.max_memory_reserved())}
    return {"peak_rss_gib": gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}


def format_memory(mem: dict[str, float]) -> str:
    if "max_allocated_gib" in mem:
        return f"max allocated {mem['max_allocated_gib']:.2f} GiB, max reserved {mem['max_reserved_gib']:.2f} GiB"
    return f"peak RSS {mem['peak_rss_gib']:.2f} GiB (CPU)"


def release_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def loopback_works(timeout: float = 2.0) -> bool:
    """True when a TCP connection to 127.0.0.1 succeeds (torch.distributed's default rendezvous)."""
    import socket

    try:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname(), timeout=timeout):
                return True
    except OSError:
        return False


def init_file_world(folder: Path, device: str) -> None:
    """A one-process torch.distributed world through a file store: the trainer's own set-up
    (saw.rl.distributed) finds it initialised and keeps it. Only used without loopback TCP."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    folder.mkdir(parents=True, exist_ok=True)
    dist.init_process_group("nccl" if device == "cuda" else "gloo", init_method=f"file://{folder / 'store'}",
                            rank=0, world_size=1)


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# ============================================================================ model and data
def build_tokenizer(vocab_size: int, trained_vocab: int = 1024):
    """saw.models.tiny's byte-level BPE tokenizer (ChatML template, specials <|endoftext|> (pad),
    <|im_start|>, <|im_end|> (EOS)) with its vocabulary padded to ``vocab_size`` ids by filler
    tokens " <word><k>": decode-only (no merge produces them), so that every id of the model decodes."""
    from tokenizers import Tokenizer  # heavy: only when a model is built
    from transformers import PreTrainedTokenizerFast  # heavy: only when a model is built

    from saw.models.tiny import build_tiny_tokenizer

    base = build_tiny_tokenizer(min(trained_vocab, vocab_size))
    data = json.loads(base.backend_tokenizer.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    used = set(vocab.values()) | {t["id"] for t in data.get("added_tokens", [])}
    next_id, k = max(used) + 1, 0
    space = "\u0120"  # the byte-level alphabet's space
    while next_id < vocab_size:
        token = f"{space}{FILLER_WORDS[k % len(FILLER_WORDS)]}{k // len(FILLER_WORDS)}"
        k += 1
        if token not in vocab:
            vocab[token] = next_id
            next_id += 1
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(data)), bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = base.chat_template
    if len(fast) != vocab_size:
        raise RuntimeError(f"padded tokenizer has {len(fast)} ids, expected {vocab_size}")
    return fast, len(base)


def build_model(out: Path, shape: str, device: str) -> dict[str, Any]:
    """A random Qwen2ForCausalLM of ``shape`` + padded tokenizer, saved to ``out``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    spec = dict(SHAPES[shape])
    dtype = spec.pop("dtype")
    tokenizer, trained = build_tokenizer(spec["vocab_size"])
    config = Qwen2Config(**spec, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, use_sliding_window=False, dtype=dtype)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):  # initialised where it runs: ~1.5e9 normal draws are slow on a CPU
        model = Qwen2ForCausalLM(config)
    model = model.to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    n_params = sum(p.numel() for p in model.parameters())
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())
    saved_dtype = saved.get("dtype", saved.get("torch_dtype"))
    if saved_dtype != dtype:  # the rollout's dtype=auto reads it: keep the engine in the intended dtype
        saved["dtype"] = saved["torch_dtype"] = dtype
        (out / "config.json").write_text(json.dumps(saved, indent=2))
    del model
    release_memory(device)
    return {"parameters": n_params, "dtype": dtype, "tokenizer_trained_ids": trained, "tokenizer_ids": len(tokenizer),
            "init_s": round(init_s, 2), "save_s": round(time.perf_counter() - t0, 2),
            "size_gib": gib(sum(f.stat().st_size for f in out.iterdir()))}


def _sentence(rnd: random.Random, low: int, high: int) -> str:
    words = [rnd.choice(WORDS) for _ in range(rnd.randint(low, high))]
    return " ".join(words) + " ."


def write_aclsum_data(folder: Path, n_train: int, n_eval: int, words: int, seed: int = 0) -> dict[str, int]:
    """Synthetic ACLSum-format files (train.jsonl, val.jsonl, test.jsonl) for ``task.aclsum_data_dir``:
    abstracts of about ``words`` words, three one-sentence aspect summaries of 12-20 words."""
    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for split, count in (("train", n_train), ("val", n_eval), ("test", n_eval)):
        rows = []
        for i in range(count):
            abstract, total = [], 0
            while total < words:
                abstract.append(_sentence(rnd, 10, 24))
                total += len(abstract[-1].split()) - 1
            rows.append({"id": f"gpu-check-{split}-{i}", "title": _sentence(rnd, 4, 9)[:-2],
                         "sentences": {"abstract": abstract},
                         "summary": {aspect: _sentence(rnd, 12, 20) for aspect in ("challenge", "approach", "outcome")}})
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        sizes[split] = count
    return sizes


def load_records(data_dir: Path) -> list[dict]:
    """The training records of the synthetic data, read by the summarize task's own ACLSum loader
    (plain config: no omegaconf needed, so the engine and torch stages run without the wheelhouse)."""
    from saw.tasks.summarize import load_aclsum_split

    return load_aclsum_split("train", {"aclsum_data_dir": str(data_dir)})


def prompt_ids(tokenizer, record: dict, limit: int | None = None) -> list[int]:
    """The record's chat-templated prompt ids, cut from the left to ``limit`` (as Task.encode_prompt;
    None: the whole prompt)."""
    from saw.core.tokens import chat_template_ids

    ids = chat_template_ids(tokenizer, record["prompt"])
    return ids if limit is None else ids[-limit:]


# ============================================================================ the check
class Check:
    """Runs the stages and collects the summary."""

    def __init__(self, args: argparse.Namespace, device: str, work: Path, out: Path | None):
        self.args, self.device, self.work, self.out = args, device, work, out
        self.start = time.monotonic()
        self.deadline = self.start + args.budget_s
        self.model_dir = work / "model"
        self.data_dir = work / "data"
        self.summary: dict[str, Any] = {"device": device, "shape": args.shape, "stages": {}}
        self.train_steps = 0
        self._records: list[dict] | None = None

    @property
    def records(self) -> list[dict]:
        if self._records is None:
            self._records = load_records(self.data_dir)
        return self._records

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run_stage(self, name: str, fn: Callable[[], dict[str, Any]], needs: Sequence[str] = ()) -> bool:
        """Run one stage: print its outcome, record it; False when it failed or was skipped."""
        status = self.summary["stages"]
        missing = [n for n in needs if status.get(n, {}).get("status") != "ok"]
        if missing:
            say(name, f"SKIPPED: needs stage(s) {', '.join(missing)}, which did not succeed")
            status[name] = {"status": "skipped", "reason": f"needs {', '.join(missing)}"}
            return False
        need = MIN_SECONDS.get(name, 0) * (1 if self.device == "cuda" else 0.25)
        if self.remaining() < need:
            say(name, f"SKIPPED: {self.remaining():.0f} s of the {self.args.budget_s:.0f} s budget left, "
                      f"the stage needs about {need:.0f} s (raise --budget-s)")
            status[name] = {"status": "skipped", "reason": "budget"}
            return False
        say(name, f"start ({time.monotonic() - self.start:.0f} s elapsed, {self.remaining():.0f} s of budget left)")
        t0 = time.monotonic()
        try:
            result = fn() or {}
        except Exception as exc:  # noqa: BLE001 - a stage's failure is reported, the others still run
            traceback.print_exc()
            say(name, f"FAILED after {time.monotonic() - t0:.1f} s: {type(exc).__name__}: {exc}")
            status[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000],
                            "seconds": round(time.monotonic() - t0, 2)}
            release_memory(self.device)
            return False
        status[name] = {"status": result.pop("_status", "ok"), "seconds": round(time.monotonic() - t0, 2)}
        if result:
            self.summary[name] = result
        say(name, f"{status[name]['status']} in {status[name]['seconds']:.1f} s")
        return status[name]["status"] == "ok"

    # ------------------------------------------------------------------ env
    def stage_env(self) -> dict[str, Any]:
        import platform

        import torch

        info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                                "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
        if self.device == "cuda":
            props = torch.cuda.get_device_properties(0)
            info.update(gpu=props.name, gpu_memory_gib=gib(props.total_memory),
                        capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                        bf16=torch.cuda.is_bf16_supported())
        info["cpu_threads"] = torch.get_num_threads()
        for module in ("transformers", "tokenizers", "safetensors", "deepspeed", "hydra", "omegaconf", "pydantic",
                       "nltk", "rouge_score"):
            problem = import_problem(module)
            info[module] = (f"NOT IMPORTABLE ({problem})" if problem
                            else getattr(sys.modules[module], "__version__", "?"))
        for key, value in info.items():
            say("env", f"{key}: {value}")
        missing = [m for m in TRAIN_MODULES if str(info[m]).startswith("NOT IMPORTABLE")]
        if missing:
            say("env", f"WARNING: {', '.join(missing)} do(es) not import: the train stage cannot run; the torch stage "
                       "(a plain torch update) reports instead")
        return info

    # ------------------------------------------------------------------ model
    def stage_model(self) -> dict[str, Any]:
        a = self.args
        say("model", f"random Qwen2ForCausalLM, shape {a.shape}: {json.dumps(SHAPES[a.shape])}")
        info = build_model(self.model_dir, a.shape, self.device)
        say("model", f"{info['parameters'] / 1e6:.1f} M parameters ({info['dtype']}), initialised in {info['init_s']} s, "
                     f"saved in {info['save_s']} s ({info['size_gib']} GiB) to {self.model_dir}")
        say("model", f"tokenizer: {info['tokenizer_trained_ids']} trained ids padded with decode-only filler tokens "
                     f"to {info['tokenizer_ids']} = the model's vocabulary: every sampled id decodes to text")
        n_train = max(a.prompts * a.steps, 32)
        sizes = write_aclsum_data(self.data_dir, n_train, 8, a.prompt_words)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.model_dir)
        lengths = [len(prompt_ids(tok, r)) for r in self.records]
        probe = tok.decode(list(range(info["tokenizer_ids"] - 5, info["tokenizer_ids"])), skip_special_tokens=True)
        if not probe.strip():
            raise RuntimeError("the highest token ids decode to empty text: the tokenizer padding did not work")
        info.update(data=sizes, prompt_tokens_mean=round(statistics.mean(lengths), 1), prompt_tokens_max=max(lengths))
        over = sum(n > a.max_prompt_length for n in lengths)
        if over:
            say("model", f"WARNING: {over} of {len(lengths)} prompts exceed --max-prompt-length {a.max_prompt_length}: "
                         "the trainer drops them (task.filter_overlong_prompts); lower --prompt-words")
        say("model", f"synthetic ACLSum-format data in {self.data_dir}: {sizes}; prompt tokens mean "
                     f"{info['prompt_tokens_mean']}, max {info['prompt_tokens_max']} (limit {a.max_prompt_length}); "
                     f"the 5 highest ids decode to {probe!r}")
        return info

    # ------------------------------------------------------------------ train
    def overrides(self, precision: str) -> list[str]:
        a = self.args
        max_len = min(a.max_prompt_length + a.max_new_tokens, SHAPES[a.shape]["max_position_embeddings"])
        out = [
            "model=qwen2.5-1.5b", "model.source=hf", f"model.path={self.model_dir}", f"model.name=random-{a.shape}",
            "task=summarize", f"++task.aclsum_data_dir={self.data_dir}", f"task.max_prompt_length={a.max_prompt_length}",
            "rollout=hf", f"rollout.device={self.device}", f"rollout.max_model_len={max_len}",
            f"rollout.batch_size={a.prompts * a.n}", "logger=none", "sft=none", f"kl={a.kl}", f"algorithm={a.algorithm}",
            f"trainer.total_steps={a.steps}", f"trainer.prompts_per_step={a.prompts}", f"sampling.n={a.n}",
            f"sampling.max_new_tokens={a.max_new_tokens}", f"trainer.micro_batch_size={a.micro_batch_size}",
            f"trainer.precision={precision}", "trainer.zero_stage=0", "trainer.val_every=0", "trainer.save_every=0",
            "trainer.resume=never", f"cache_dir={self.work / 'cache'}", f"output_root={self.work / 'outputs'}",
        ]
        if a.gradient_checkpointing:
            out += ["trainer.gradient_checkpointing=true", "trainer.shared_prefix=false"]
        return out + list(a.override)

    def compose(self, precision: str):
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose("config", overrides=self.overrides(precision))

    @contextlib.contextmanager
    def step_probe(self, records: list[dict[str, Any]]):
        """Wrap RLTrainer.train_step: peak memory per step, and a stop before a step that would not
        fit in the budget (raised at the start of the step, so every finished step is in metrics.jsonl)."""
        from saw.rl.trainer import RLTrainer

        original = getattr(RLTrainer, "train_step", None)
        if original is None:
            say("train", "RLTrainer.train_step not found: no per-step memory, no budget stop")
            yield
            return
        check = self

        def train_step(trainer, *a, **kw):
            if records and time.monotonic() + records[-1]["seconds"] > check.deadline:
                raise BudgetExceeded(f"stopped before step {len(records) + 1}: it would end past the budget")
            reset_peak(check.device)
            t0 = time.monotonic()
            metrics = original(trainer, *a, **kw)
            records.append({"seconds": time.monotonic() - t0, **peak_memory(check.device)})
            return metrics

        RLTrainer.train_step = train_step
        try:
            yield
        finally:
            RLTrainer.train_step = original

    def stage_train(self) -> dict[str, Any]:
        missing = [f"{m} ({problem})" for m in TRAIN_MODULES if (problem := import_problem(m))]
        if missing:
            raise RuntimeError("the training path needs " + ", ".join(missing) + "; scripts/gpu_check.sh installs them "
                               "from .gpu_wheels/ (bash scripts/gpu_wheels.sh builds it)")
        precision = self.args.precision
        try:
            return self._train(precision, "run")
        except BudgetExceeded:
            raise
        except Exception:
            if precision != "bf16" or self.train_steps > 0 or self.remaining() < MIN_SECONDS["train"]:
                raise
            traceback.print_exc()
            say("train", "FAILED with trainer.precision=bf16 (DeepSpeed bf16 mode) before any step; "
                         "retrying once with trainer.precision=bf16_autocast")
            release_memory(self.device)
            info = self._train("bf16_autocast", "run-bf16_autocast")
            info["note"] = "trainer.precision=bf16 failed before any step (traceback above); these are bf16_autocast"
            return info

    def _train(self, precision: str, run_name: str) -> dict[str, Any]:
        from saw.core.io import read_metrics
        from saw.rl.job import run_training

        cfg = self.compose(precision)
        run_dir = self.work / run_name
        if "RANK" not in os.environ and not loopback_works():
            say("train", "WARNING: no TCP on 127.0.0.1 (torch.distributed's rendezvous would wait 10 min): "
                         "starting the one-process world through a file store instead")
            init_file_world(self.work / "dist", self.device)
        say("train", "saw.rl.job.run_training with overrides: " + " ".join(self.overrides(precision)))
        say("train", f"trainer: shared_prefix={cfg.trainer.shared_prefix}, gradient_checkpointing="
                     f"{cfg.trainer.gradient_checkpointing}, mini_batches={cfg.trainer.mini_batches}, "
                     f"ppo_epochs={cfg.trainer.ppo_epochs}, lr={cfg.trainer.lr}")
        records: list[dict[str, Any]] = []
        reset_peak(self.device)
        t0 = time.monotonic()
        stopped = None
        with self.step_probe(records):
            try:
                run_training(cfg, run_dir)
            except BudgetExceeded as exc:
                stopped = str(exc)
                say("train", f"BUDGET: {exc}")
            except Exception:
                self.train_steps = len(records)  # steps finished before the failure
                raise
        seconds = time.monotonic() - t0
        run_peak = peak_memory(self.device)
        metrics_path = run_dir / "metrics.jsonl"
        rows = read_metrics(metrics_path) if metrics_path.is_file() else []
        self.train_steps = len(rows)
        if self.out is not None:
            for name in ("metrics.jsonl", "config.yaml"):
                if (run_dir / name).is_file():
                    shutil.copy(run_dir / name, self.out / f"train_{name}")
        if not rows:
            raise RuntimeError(f"run_training wrote no step to {metrics_path}")
        steps = [step_figures(row, records[i] if i < len(records) else {}, self.args.prompts * self.args.n)
                 for i, row in enumerate(rows)]
        for s in steps:
            say("train", format_step(s))
        measured = steps[1:] if len(steps) > 1 else steps
        median = {k: round(statistics.median(s[k] for s in measured), 4)
                  for k in steps[0] if k != "step" and all(isinstance(s.get(k), (int, float)) for s in measured)}
        label = (f"median of steps {measured[0]['step']}-{measured[-1]['step']} (step 1: warm-up)" if len(steps) > 1
                 else "only step")
        say("train", format_step(median, label))
        say("train", f"run_training call (model loads, {len(rows)} steps, final save): {seconds:.1f} s; "
                     f"{format_memory(run_peak)}")
        info = {"precision": precision, "steps": steps, "median": median, "run_seconds": round(seconds, 2),
                "run_peak_memory": run_peak}
        if stopped:
            info.update(stopped=stopped, _status="partial")
        return info

    # ------------------------------------------------------------------ engine
    def stage_engine(self) -> dict[str, Any]:
        from rollout.base import SamplingConfig
        from rollout.hf_engine import HFEngine

        a = self.args
        max_len = min(a.max_prompt_length + a.max_new_tokens, SHAPES[a.shape]["max_position_embeddings"])
        reset_peak(self.device)
        t0 = time.monotonic()
        engine = HFEngine(self.model_dir, {"dtype": "auto", "max_model_len": max_len, "batch_size": a.prompts * a.n,
                                           "device": self.device, "seed": 0})
        load_s = time.monotonic() - t0
        say("engine", f"HFEngine loaded in {load_s:.1f} s ({next(engine.model.parameters()).dtype} on {engine.device})")
        prompts = [prompt_ids(engine.tokenizer, r, a.max_prompt_length) for r in self.records[: a.prompts]]
        sampling = SamplingConfig(n=a.n, temperature=1.0, max_new_tokens=a.max_new_tokens, seed=0)
        calls = []
        try:
            for label in ("warm-up", "timed"):
                if calls and self.remaining() < calls[-1]["seconds"]:
                    say("engine", f"BUDGET: {label} batch skipped")
                    break
                sync(self.device)
                batch = engine.generate(prompts, sampling)
                sync(self.device)
                texts = [s.text for s in batch.samples]
                call = {"call": label, "sequences": len(batch.samples), "completion_tokens": batch.completion_tokens,
                        "prompt_tokens": batch.prompt_tokens, "seconds": round(batch.seconds, 3),
                        "tokens_per_s": round(batch.tokens_per_second, 1),
                        "nonempty_text_frac": round(sum(bool(t.strip()) for t in texts) / len(texts), 3),
                        "words_mean": round(statistics.mean(len(t.split()) for t in texts), 1)}
                calls.append(call)
                say("engine", f"{label}: {call['sequences']} sequences ({a.prompts} prompts x {a.n}), "
                              f"{call['completion_tokens']} new tokens in {call['seconds']:.2f} s = "
                              f"{call['tokens_per_s']:.0f} tokens/s; non-empty texts {call['nonempty_text_frac']:.0%}, "
                              f"{call['words_mean']} words each")
        finally:
            engine.close()
            del engine
        mem = peak_memory(self.device)
        say("engine", format_memory(mem))
        release_memory(self.device)
        return {"load_s": round(load_s, 2), "calls": calls, "tokens_per_s": calls[-1]["tokens_per_s"], "memory": mem}

    # ------------------------------------------------------------------ torch
    def stage_torch(self) -> dict[str, Any]:
        import torch
        from transformers import AutoTokenizer

        from saw.algo.policy_loss import PolicyLossConfig, policy_loss
        from saw.rl.engine import load_causal_lm
        from saw.rl.logprobs import build_token_batch, response_logprobs

        a = self.args
        precision = "bf16_autocast" if a.precision.startswith("bf16") else "fp32"
        autocast = torch.bfloat16 if precision == "bf16_autocast" else None
        reset_peak(self.device)
        model = load_causal_lm(str(self.model_dir), precision=precision,
                               gradient_checkpointing=a.gradient_checkpointing).to(self.device).train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6, eps=1e-8)
        tok = AutoTokenizer.from_pretrained(self.model_dir)
        gen = torch.Generator().manual_seed(0)
        rows = a.micro_batch_size
        records = self.records
        prompts = [prompt_ids(tok, records[i % len(records)], a.max_prompt_length) for i in range(rows)]
        vocab = model.config.vocab_size
        completions = [torch.randint(3, vocab, (a.max_new_tokens,), generator=gen).tolist() for _ in range(rows)]
        batch = build_token_batch(prompts, completions, tok.pad_token_id)
        advantages = torch.randn(rows, generator=gen).to(self.device)
        cfg = PolicyLossConfig()
        tokens = sum(len(p) + len(c) for p, c in zip(prompts, completions))
        say("torch", f"plain torch update ({precision}, AdamW, no DeepSpeed): {rows} sequences, {tokens} tokens "
                     f"per iteration, {a.torch_iters} iterations")
        iters: list[dict[str, Any]] = []
        lp = ent = loss = None
        for i in range(a.torch_iters):
            if iters and self.remaining() < iters[-1]["seconds"]:
                say("torch", f"BUDGET: stopped after {i} iterations")
                break
            sync(self.device)
            t0 = time.perf_counter()
            lp, ent = response_logprobs(model, batch, with_entropy=True, autocast_dtype=autocast)
            mask = batch.response_mask.to(lp.device)
            loss, _ = policy_loss(lp, lp.detach(), advantages, mask, cfg, entropy=ent)
            sync(self.device)
            t1 = time.perf_counter()
            loss.backward()
            sync(self.device)
            t2 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync(self.device)
            t3 = time.perf_counter()
            it = {"iter": i + 1, "forward_s": round(t1 - t0, 4), "backward_s": round(t2 - t1, 4),
                  "optimizer_s": round(t3 - t2, 4), "seconds": round(t3 - t0, 4),
                  "tokens_per_s": round(tokens / (t3 - t0), 1), "loss": float(loss.detach())}
            iters.append(it)
            say("torch", f"iter {it['iter']}: forward {it['forward_s']:.3f} s, backward {it['backward_s']:.3f} s, "
                         f"AdamW {it['optimizer_s']:.3f} s = {it['seconds']:.3f} s, {it['tokens_per_s']:.0f} tokens/s")
        mem = peak_memory(self.device)
        say("torch", format_memory(mem))
        del model, optimizer, lp, ent, loss
        release_memory(self.device)
        if not iters:
            raise BudgetExceeded("no iteration fitted in the budget")
        return {"precision": precision, "tokens_per_iter": tokens, "iters": iters,
                "tokens_per_s": iters[-1]["tokens_per_s"], "memory": mem}

    # ------------------------------------------------------------------ all
    def run(self) -> int:
        a = self.args
        auto = a.stages is None
        stages = list(STAGES[:4]) if auto else a.stages
        if "env" in stages:
            self.run_stage("env", self.stage_env)
        if "model" in stages:
            self.run_stage("model", self.stage_model)
        prepared = ["model"] if "model" in stages else []
        if not prepared and not (self.model_dir / "config.json").is_file():
            raise SystemExit(f"no model in {self.model_dir}: include the model stage in --stages")
        if "train" in stages:
            self.run_stage("train", self.stage_train, needs=prepared)
        if "engine" in stages:
            self.run_stage("engine", self.stage_engine, needs=prepared)
        if "torch" in stages or (auto and self.train_steps == 0):
            if auto:
                say("torch", "the train stage finished no step: running the plain torch update instead")
            self.run_stage("torch", self.stage_torch, needs=prepared)
        self.summary["total_seconds"] = round(time.monotonic() - self.start, 1)
        failed = [n for n, s in self.summary["stages"].items() if s["status"] == "failed"]
        self.summary["ok"] = not failed
        print_summary(self.summary)
        if self.out is not None:
            (self.out / "summary.json").write_text(json.dumps(self.summary, indent=1), encoding="utf-8")
        return 1 if failed else 0


# ============================================================================ figures
def step_figures(row: dict[str, Any], probe: dict[str, Any], samples: int) -> dict[str, Any]:
    """The figures of one metrics.jsonl record (+ the probe's peak memory of that step).

    update tokens/s: the step's prompt + completion tokens (``perf/tokens_per_s`` x ``time/step``, as
    the trainer counts them) over ``time/update``."""
    step_s = float(row["time/step"])
    tokens = float(row["perf/tokens_per_s"]) * step_s
    figures = {"step": row["step"], "step_s": step_s, "rollout_s": float(row["time/rollout"]),
               "rewards_s": float(row["time/rewards"]), "advantages_s": float(row["time/advantages"]),
               "update_s": float(row["time/update"]), "sync_s": float(row["time/sync"]),
               "rollout_tokens_per_s": float(row["perf/rollout_tokens_per_s"]),
               "update_tokens_per_s": tokens / max(float(row["time/update"]), 1e-9),
               "step_tokens_per_s": float(row["perf/tokens_per_s"]), "step_tokens": tokens,
               "completion_tokens": float(row["response/length_mean"]) * samples,
               "response_length_mean": float(row["response/length_mean"]),
               "clip_frac": float(row["response/clip_frac"])}
    figures.update({k: v for k, v in probe.items() if k != "seconds"})
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def format_step(s: dict[str, Any], label: str | None = None) -> str:
    text = (f"{label or 'step ' + str(s['step'])}: {s['step_s']:.2f} s | rollout {s['rollout_s']:.2f} s, rewards {s['rewards_s']:.3f} s, "
            f"advantages {s['advantages_s']:.4f} s, update {s['update_s']:.2f} s, sync {s['sync_s']:.2f} s | "
            f"rollout {s['rollout_tokens_per_s']:.0f} tokens/s, update {s['update_tokens_per_s']:.0f} tokens/s | "
            f"response length {s['response_length_mean']:.1f}, clipped {s['clip_frac']:.0%}")
    mem = {k: s[k] for k in ("max_allocated_gib", "max_reserved_gib", "peak_rss_gib") if k in s}
    if mem:
        text += " | " + format_memory(mem)
    return text


def print_summary(summary: dict[str, Any]) -> None:
    print("=" * 100, flush=True)
    for name, s in summary["stages"].items():
        detail = s.get("error") or s.get("reason") or ""
        print(f"  {name:7s} {s['status']:8s} {s.get('seconds', 0):7.1f} s  {detail[:160]}")
    train = summary.get("train")
    if train:
        m = train["median"]
        print(f"  train median: {m['step_s']:.2f} s/step, rollout {m['rollout_s']:.2f} s, update {m['update_s']:.2f} s, "
              f"sync {m['sync_s']:.2f} s; rollout {m['rollout_tokens_per_s']:.0f} tokens/s, update "
              f"{m['update_tokens_per_s']:.0f} tokens/s ({train['precision']})")
    if summary.get("engine"):
        print(f"  engine: {summary['engine']['tokens_per_s']:.0f} tokens/s")
    if summary.get("torch"):
        print(f"  torch update: {summary['torch']['tokens_per_s']:.0f} tokens/s")
    print(f"  total {summary['total_seconds']:.0f} s; {'OK' if summary['ok'] else 'SOME STAGES FAILED'}")
    print(f"{SUMMARY_MARK} {json.dumps(summary, separators=(',', ':'))}", flush=True)


def resolve_device(requested: str) -> str:
    """cuda or cpu; ``cpu`` hides the GPUs (before torch initialises CUDA) so every part stays on the CPU."""
    if requested == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device (torch.version.cuda="
                         f"{torch.version.cuda}); use --device cpu for a dry run")
    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for key, value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("DeepSpeed", "deepspeed", "torch.distributed", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    device = resolve_device(args.device)
    resolve_defaults(args, device)
    out = args.out or (os.path.join(os.environ["OUT"], "gpu_check") if os.environ.get("OUT") else None)
    out_path = Path(out) if out else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"gpu_check: device {device}, shape {args.shape}, {args.steps} steps x {args.prompts} prompts x {args.n} "
          f"completions, {args.max_new_tokens} new tokens, micro-batch {args.micro_batch_size}, precision "
          f"{args.precision}, budget {args.budget_s:.0f} s, work folder {work}", flush=True)
    try:
        return Check(args, device, work, out_path).run()
    finally:
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
