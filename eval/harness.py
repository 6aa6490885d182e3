"""Evaluate a checkpoint or the base model: generate with the rollout engine, score, write eval.json.

Used by ``scripts/evaluate.py`` (config section ``eval``, conf/eval/default.yaml).

What is evaluated (:func:`resolve_target`):

1. ``eval.run_dir=<run>``: the run's final policy ``<run>/policy`` with the run's own config
   (``<run>/config.yaml``: task, model, sampling, seed, algorithm); the ``eval`` and ``rollout``
   sections come from the current command line (how to evaluate and how to generate are not
   properties of the trained run). eval.json goes into ``<run>``.
2. ``eval.model=<path>``: that model. When ``<path>/..`` is a run directory (``<run>/policy``)
   this is case 1 for that run (its config, eval.json into ``<run>``); otherwise the composed
   config is used and eval.json goes into
   ``${output_root}/${experiment_name}/${task.name}-<model folder name>-s${seed}``.
3. neither: the base model of ``model`` (``saw.models.prepare.prepare_model``), labelled algorithm
   ``base``; eval.json and a config.yaml (algorithm.name = base) go into
   ``${output_root}/${experiment_name}/${task.name}-base-s${seed}``, a run directory that
   scripts/make_tables.py reads like the others.

``eval.out_dir`` overrides the output folder and ``eval.algorithm`` the algorithm label.

Records: tool calling is scored on BFCL v4 (``eval.bfcl.categories``; default Non-Live = the six
AST categories incl. Java/JavaScript, Live = the four live AST categories, the relevance
categories as extra columns, and Multi-Turn = the four multi_turn categories; web_search and
memory are not run: they need the network or files outside the package). Each single-turn
entry becomes a prompt with the rendering the run was trained with (:func:`eval_tool_render`:
``eval.bfcl.tool_render``, else ``task.tool_render``, else ``toolrl`` for ToolRL's rlla data)
and is decoded with :func:`eval_decoder` (``toolrl`` for toolrl renderings, else ``strict``);
multi-turn entries are dialogues run against BFCL's simulated APIs (:mod:`eval.multiturn`,
``eval.multi_turn.*``: dialogues per category, step cap per user turn, prompt limit), all
active dialogues generating together; their transcripts go to
``<out_dir>/<output_name stem>_multi_turn.jsonl``. ``eval.max_records`` limits each category
(``eval.multi_turn.max_records`` the multi-turn ones). Summarisation uses ``eval.split`` of the
task (``max_records`` in all). Subsamples are drawn with ``eval.subsample_seed`` (the same
records for every run).

``eval.policy=oracle`` evaluates no model: every BFCL entry is answered with its ground truth
(single-turn: the possible answer in the model's output format; multi-turn: each turn's
ground-truth calls, executed) and scored through the same decoder and checkers (a self-check
of the scorer; the output folder gets eval.json only, labelled ``oracle``).

Generation: ``eval.repeats`` (k) samples per prompt with ``eval.temperature`` (0 = greedy),
``eval.top_p`` and ``eval.max_new_tokens`` (null: ``sampling.max_new_tokens``); prompts are
cut from the left to ``eval.max_prompt_length`` (null: the trainer's limit, i.e.
``trainer.max_prompt_length`` or else ``task.max_prompt_length``) as in training. Run r of the
k runs is the r-th sample of every prompt; metrics are the mean over
runs and ``metrics_std`` the std over runs (the paper's 4 runs: ``repeats=4 temperature=...``).

eval.json schema: {"task", "model", "algorithm", "seed", "split", "repeats", "temperature",
"metrics", "metrics_std", "runs", "per_category" (tool calling), "n_records", "samples",
"notes", ...}; see :mod:`eval.bfcl` and :mod:`eval.summarize` for the metrics.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from importlib.metadata import version
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from eval.bfcl import DECODERS, aggregate_runs, bfcl_category_sizes, check_completion, oracle_completion
from eval.multiturn import EnginePolicy, bfcl_step_limit, evaluate_multi_turn, load_multi_turn_entries, oracle_policy
from eval.runs import canonical_task
from eval.summarize import aggregate_summaries, judge_specs, score_summaries
from rewards import build_reward, build_rewards
from rollout import build_engine
from rollout.base import SamplingConfig
from saw.core.io import atomic_write_text
from saw.models.prepare import prepare_model
from saw.tasks import build_task
from saw.tasks.base import Task, subsample
from saw.tasks.toolcall import (ALL_CATEGORIES, LIVE_CATEGORIES, MULTI_TURN_CATEGORIES, NON_LIVE_CATEGORIES,
                                TOOL_RENDERS, bfcl_to_record, load_bfcl_category)

log = logging.getLogger(__name__)

EVAL_FILE = "eval.json"


# ----------------------------------------------------------------------------- target
@dataclass
class EvalTarget:
    """What to evaluate and where the result goes."""
    cfg: DictConfig  # the config to evaluate with (a run's own config for eval.run_dir)
    model_path: str | None  # None: prepare the base model of cfg.model
    out_dir: Path
    algorithm: str
    write_config: bool  # write a config.yaml into out_dir (base-model evaluations)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def resolve_target(cfg: DictConfig) -> EvalTarget:
    """Pick model, config, output folder and label from ``cfg.eval`` (see the module docstring)."""
    ev = cfg.eval
    run_dir = ev.get("run_dir")
    model = ev.get("model")
    if model and not run_dir and (Path(str(model)).resolve().parent / "config.yaml").is_file():
        run_dir = Path(str(model)).resolve().parent  # <run>/policy or a checkpoint inside a run
    if run_dir:
        run = Path(str(run_dir))
        cfg_path = run / "config.yaml"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"eval.run_dir={run}: no config.yaml there (is it a run directory of "
                                    "scripts/train.py?)")
        run_cfg = OmegaConf.load(cfg_path)
        run_cfg.eval = cfg.eval
        run_cfg.rollout = cfg.rollout
        model_path = str(model) if model else str(run / "policy")
        if not Path(model_path).exists():
            raise FileNotFoundError(f"eval.run_dir={run}: {model_path} does not exist (the run has not "
                                    "finished; its final model is written to <run>/policy)")
        algorithm = ev.get("algorithm") or str(run_cfg.algorithm.name)
        return EvalTarget(run_cfg, model_path, Path(str(ev.get("out_dir") or run)), algorithm, False)
    if model:
        model_path = str(model)
        if not Path(model_path).exists():
            raise FileNotFoundError(f"eval.model={model_path} does not exist")
        algorithm = ev.get("algorithm") or Path(model_path).name
        out = ev.get("out_dir") or Path(str(cfg.output_root)) / str(cfg.experiment_name) / \
            f"{cfg.task.name}-{algorithm}-s{cfg.seed}"
        return EvalTarget(cfg, model_path, Path(str(out)), algorithm, True)
    algorithm = ev.get("algorithm") or ("oracle" if ev.get("policy") == "oracle" else "base")
    out = ev.get("out_dir") or Path(str(cfg.output_root)) / str(cfg.experiment_name) / \
        f"{cfg.task.name}-{algorithm}-s{cfg.seed}"
    return EvalTarget(cfg, None, Path(str(out)), algorithm, True)


# ----------------------------------------------------------------------------- generation
def sampling_for_eval(cfg: DictConfig, chunk_index: int = 0):
    """The SamplingConfig of evaluation (k repeats, eval temperature/top_p, max_new_tokens)."""
    ev = cfg.eval
    temperature = float(ev.temperature)
    greedy = temperature == 0.0
    max_new = ev.get("max_new_tokens") or OmegaConf.select(cfg, "sampling.max_new_tokens") or 128
    return SamplingConfig(n=int(ev.repeats), temperature=temperature, top_p=1.0 if greedy else float(ev.top_p),
                          top_k=-1, max_new_tokens=int(max_new),
                          stop=list(OmegaConf.select(cfg, "sampling.stop") or []),
                          seed=None if greedy else int(cfg.seed) * 1_000_003 + chunk_index)


def generate_texts(engine, task, records: Sequence[dict], cfg: DictConfig) -> list[list[str]]:
    """Completions ``[n_records][k]`` for ``records``, generated in chunks of ``eval.batch_size``
    prompts. ``task.encode_prompt`` builds the prompt ids (chat template, left truncation)."""

    ev = cfg.eval
    k = int(ev.repeats)
    if k < 1:
        raise ValueError(f"eval.repeats must be >= 1, got {k}")
    if k > 1 and float(ev.temperature) == 0.0:
        log.warning("eval.repeats=%d with temperature 0: greedy runs are identical", k)
    limit = (ev.get("max_prompt_length") or OmegaConf.select(cfg, "trainer.max_prompt_length")
             or cfg.task.get("max_prompt_length") or 1024)  # as the trainer does
    tokenizer = engine.tokenizer
    batch = max(1, int(ev.get("batch_size") or 64))
    texts: list[list[str]] = [[] for _ in records]
    for c, start in enumerate(tqdm(range(0, len(records), batch), desc="generate", dynamic_ncols=True)):
        chunk = records[start: start + batch]
        ids = [task.encode_prompt(tokenizer, rec, int(limit))[0] for rec in chunk]
        out = engine.generate(ids, sampling_for_eval(cfg, c))
        for s in out.samples:
            texts[start + s.group_id].append(s.text)
    bad = [i for i, t in enumerate(texts) if len(t) != k]
    if bad:
        raise RuntimeError(f"the rollout engine returned a wrong number of samples for records {bad[:5]} "
                           f"(expected {k} each)")
    return texts


# ----------------------------------------------------------------------------- tool calling
def eval_tool_render(cfg: DictConfig) -> str:
    """The prompt rendering of the evaluation: ``eval.bfcl.tool_render``, else the one the run was
    trained with (``task.tool_render``; ``toolrl`` for ToolRL's rlla data, ``task.source=toolrl``)."""

    render = cfg.eval.bfcl.get("tool_render") or cfg.task.get("tool_render") or \
        ("toolrl" if cfg.task.get("source") == "toolrl" else "compact")
    if render not in TOOL_RENDERS:
        raise ValueError(f"tool_render {render!r}; valid: {', '.join(TOOL_RENDERS)}")
    return str(render)


def eval_decoder(cfg: DictConfig) -> str:
    """``eval.bfcl.decoder``, else ``toolrl`` for toolrl-rendered runs and ``strict`` otherwise."""
    decoder = cfg.eval.bfcl.get("decoder") or ("toolrl" if eval_tool_render(cfg) == "toolrl" else "strict")
    if decoder not in DECODERS:
        raise ValueError(f"eval.bfcl.decoder={decoder!r}; valid: {', '.join(DECODERS)}")
    return str(decoder)


def _eval_categories(cfg: DictConfig) -> tuple[list[str], list[str]]:
    """(single-turn, multi-turn) categories of ``eval.bfcl.categories``."""
    cats = list(cfg.eval.bfcl.categories)
    unknown = [c for c in cats if c not in ALL_CATEGORIES]
    if unknown:
        raise ValueError(f"eval.bfcl.categories has {unknown}; valid: {', '.join(ALL_CATEGORIES)} "
                         "(web_search and memory need network or files outside the package: not run)")
    return [c for c in cats if c not in MULTI_TURN_CATEGORIES], [c for c in cats if c in MULTI_TURN_CATEGORIES]


def bfcl_eval_records(cfg: DictConfig) -> list[dict]:
    """Single-turn BFCL v4 records of ``eval.bfcl.categories`` rendered with :func:`eval_tool_render`,
    at most ``eval.max_records`` per category (drawn with ``eval.subsample_seed``)."""

    ev = cfg.eval
    single, _ = _eval_categories(cfg)
    tool_render = eval_tool_render(cfg)
    data_dir = cfg.task.get("bfcl_data_dir")
    records = []
    for cat in single:
        recs = [bfcl_to_record(q, a, cat, tool_render) for q, a in load_bfcl_category(cat, data_dir)]
        records += subsample(recs, ev.get("max_records"), int(ev.get("subsample_seed", 0)))
    return records


def multi_turn_eval_entries(cfg: DictConfig) -> list[dict]:
    """BFCL multi-turn entries of ``eval.bfcl.categories``, at most ``eval.multi_turn.max_records``
    (null: ``eval.max_records``) per category, drawn with ``eval.subsample_seed``."""

    ev = cfg.eval
    _, multi = _eval_categories(cfg)
    mt = ev.get("multi_turn") or {}
    limit = mt.get("max_records") if mt.get("max_records") is not None else ev.get("max_records")
    entries = []
    for cat in multi:
        entries += subsample(load_multi_turn_entries(cat), limit, int(ev.get("subsample_seed", 0)))
    return entries


def training_categories(cfg: DictConfig) -> set[str]:
    """BFCL categories the run trained on (the embedded source trains on the Live ones)."""
    if (cfg.task.get("source") or "bfcl") != "bfcl":
        return set()
    return set(cfg.task.get("train_categories") or LIVE_CATEGORIES)


def _pick_samples(items: Sequence[dict], group_key: str, limit: int) -> list[dict]:
    """Up to ``limit`` items, round-robin over the values of ``group_key``."""
    groups: dict[Any, list[dict]] = {}
    for it in items:
        groups.setdefault(it.get(group_key), []).append(it)
    out, depth = [], 0
    while len(out) < limit and any(depth < len(g) for g in groups.values()):
        for g in groups.values():
            if depth < len(g) and len(out) < limit:
                out.append(g[depth])
        depth += 1
    return out


def _group_of(cat: str) -> str:

    if cat in NON_LIVE_CATEGORIES:
        return "non_live"
    if cat in LIVE_CATEGORIES:
        return "live"
    if cat in MULTI_TURN_CATEGORIES:
        return "multi_turn"
    return "relevance"


def evaluate_toolcall(cfg: DictConfig, engine, oracle: bool = False,
                      out_dir: Path | None = None) -> dict[str, Any]:
    """Answer the BFCL entries (the engine, or the ground truth when ``oracle``), score them with
    BFCL's checkers and aggregate; returns the eval.json fields of the results. Multi-turn
    transcripts go to ``<out_dir>/<output_name stem>_multi_turn.jsonl`` when ``out_dir`` is given."""

    if str(cfg.eval.split) != "test":
        raise ValueError(f"eval.split={cfg.eval.split}: tool calling is evaluated on BFCL v4 "
                         "(eval.bfcl.categories); leave eval.split=test")
    k = int(cfg.eval.repeats)
    if k < 1:
        raise ValueError(f"eval.repeats must be >= 1, got {k}")
    tool_render, decoder = eval_tool_render(cfg), eval_decoder(cfg)
    records = bfcl_eval_records(cfg)
    entries = multi_turn_eval_entries(cfg)
    if not records and not entries:
        raise ValueError("eval.bfcl.categories is empty")
    log.info("BFCL v4: %d single-turn records, %d multi-turn dialogues x %d runs; rendering %s, decoder %s%s",
             len(records), len(entries), k, tool_render, decoder, " (oracle)" if oracle else "")
    task = Task(name="toolcall", train=records, validation=[], test=records, reward_specs=[]) if records else None
    if oracle:
        texts = [[oracle_completion(rec)] * k for rec in records]
    else:
        texts = generate_texts(engine, task, records, cfg) if records else []
    fmt = build_reward("toolcall_format")
    cats = list(dict.fromkeys(r["extra_info"]["category"] for r in records))
    valid: dict[str, list[list[bool]]] = {c: [[] for _ in range(k)] for c in cats}
    formats: dict[str, list[float]] = {c: [] for c in cats}
    errors: dict[str, Counter] = {c: Counter() for c in cats}
    failed_ids: dict[str, list[str]] = {c: [] for c in cats}
    sample_pool = []
    for rec, outs in zip(records, texts):
        extra = rec["extra_info"]
        cat = extra["category"]
        f_scores = fmt(outs, [rec] * k)
        for r, text in enumerate(outs):
            res = check_completion(text, extra["functions"], extra["possible_answer"], cat, decoder)
            valid[cat][r].append(res.valid)
            formats[cat].append(float(f_scores[r]))
            if not res.valid:
                errors[cat][res.error_type or "unknown"] += 1
                if r == 0:
                    failed_ids[cat].append(rec["id"])
            if r == 0:
                sample_pool.append({"id": rec["id"], "category": cat, "question": extra.get("question", ""),
                                    "completion": text, "ground_truth": rec["ground_truth"], "valid": res.valid,
                                    "error_type": res.error_type, "format": float(f_scores[r])})
    mt_result = None
    if entries:
        mt_cfg = cfg.eval.get("multi_turn") or {}
        if oracle:
            policy = oracle_policy
        else:
            max_new = sampling_for_eval(cfg).max_new_tokens
            limit = mt_cfg.get("max_prompt_length") or max(1, int(engine.max_model_len) - int(max_new) - 1)
            policy = EnginePolicy(engine, lambda i: sampling_for_eval(cfg, 10_000 + i), tool_render, int(limit),
                                  int(cfg.eval.get("batch_size") or 64))
        mt_result = evaluate_multi_turn(entries, policy, decoder, k, mt_cfg.get("step_limit"),
                                        max_turns=mt_cfg.get("max_turns"))
        if not oracle:
            mt_result["stats"]["tokens_per_second"] = round(policy.tokens_per_second, 1)
            mt_result["stats"]["truncated_prompts"] = policy.num_truncated
        log.info("multi-turn: %s", json.dumps(mt_result["stats"]))
        for cat, runs in mt_result["valid"].items():
            valid[cat] = runs
            errors[cat] = Counter(mt_result["errors"].get(cat, {}))
            failed_ids[cat] = [t["id"] for t in mt_result["transcripts"] if t["category"] == cat
                               and t["repeat"] == 0 and not t["valid"]]
    all_cats = list(valid)
    sizes = bfcl_category_sizes(all_cats, cfg.task.get("bfcl_data_dir"))
    all_formats = [f for c in cats for f in formats[c]]
    agg = aggregate_runs(valid, sizes, all_formats if all_formats else None)
    trained = training_categories(cfg)
    for cat in all_cats:
        agg["per_category"][cat].update(
            group=_group_of(cat), bfcl_size=sizes[cat], error_types=dict(errors[cat].most_common()),
            failed_ids_run0=failed_ids[cat], in_training_data=cat in trained)
        if cat in formats:
            agg["per_category"][cat]["format_rate"] = sum(formats[cat]) / len(formats[cat])
    live_in_training = any(c in trained for c in all_cats if c in LIVE_CATEGORIES)
    notes = ["Non-Live = mean(simple, multiple, parallel, parallel_multiple), simple = mean of simple_python, "
             "simple_java, simple_javascript; Live = size-weighted mean of the four live AST categories; "
             "Multi-Turn = mean of the four multi_turn categories; Overall = mean(Non-Live, Live, Multi-Turn).",
             f"Prompt rendering {tool_render!r}, decoder {decoder!r}."]
    if oracle:
        notes.append("Oracle: every entry answered with its ground truth (no model), scored by the same decoder and "
                     "checkers.")
    if live_in_training:
        notes.append("Live is the training data of this run (embedded BFCL source): it measures fit, not "
                     "generalisation.")
    if cfg.eval.get("max_records") or (entries and (cfg.eval.get("multi_turn") or {}).get("max_records")):
        notes.append(f"Subsample: at most {cfg.eval.get('max_records')} records per single-turn category, "
                     f"{len(entries) // max(1, len(set(e['category'] for e in entries)))} dialogues per multi-turn "
                     f"category (subsample seed {cfg.eval.get('subsample_seed', 0)}); Live weights are the full "
                     "category sizes.")
    if mt_result and mt_result["stats"]["step_limit"] != _bfcl_step_limit():
        notes.append(f"Multi-Turn step cap {mt_result['stats']['step_limit']} per user turn (BFCL: "
                     f"{_bfcl_step_limit()}).")
    if mt_result and mt_result["stats"].get("max_turns"):
        notes.append(f"Multi-Turn dialogues cut to their first {mt_result['stats']['max_turns']} user turns "
                     "(smoke scale; BFCL scores whole dialogues).")
    transcripts_file = None
    if mt_result and out_dir is not None:
        stem = Path(str(cfg.eval.get("output_name") or EVAL_FILE)).stem
        transcripts_file = Path(out_dir) / f"{stem}_multi_turn.jsonl"
        transcripts_file.parent.mkdir(parents=True, exist_ok=True)
        with transcripts_file.open("w", encoding="utf-8") as fh:
            for t in mt_result["transcripts"]:
                fh.write(json.dumps(json_safe(t), ensure_ascii=False, default=str) + "\n")

    n_samples = int(cfg.eval.get("num_samples", 8))
    return {"benchmark": "bfcl_v4", "checker": f"bfcl-eval {version('bfcl-eval')} ast_checker + multi_turn_checker",
            "policy": "oracle" if oracle else "model", "tool_render": tool_render, "decoder": decoder,
            "categories": {"non_live": [c for c in all_cats if _group_of(c) == "non_live"],
                           "live": [c for c in all_cats if _group_of(c) == "live"],
                           "multi_turn": [c for c in all_cats if _group_of(c) == "multi_turn"],
                           "relevance": [c for c in all_cats if _group_of(c) == "relevance"]},
            "metrics": agg["metrics"], "metrics_std": agg["metrics_std"],
            "runs": [{k2: v for k2, v in run.items() if k2 != "per_category"} for run in agg["runs"]],
            "per_category": agg["per_category"], "n_records": len(records), "n_dialogues": len(entries),
            "multi_turn_stats": mt_result["stats"] if mt_result else None,
            "multi_turn_transcripts": str(transcripts_file) if transcripts_file else None,
            "multi_turn_samples": (mt_result["transcripts"][:n_samples] if mt_result else []),
            "live_in_training_data": live_in_training, "truncated_prompts": task.num_truncated if task else 0, "notes": notes,
            "samples": _pick_samples(sample_pool, "category", n_samples)}


def _bfcl_step_limit() -> int:

    return bfcl_step_limit()


def format_category_table(payload: Mapping[str, Any]) -> str:
    """Per-category accuracy (%), count and std as a plain-text table, then the group metrics."""
    rows = [f"{'category':28s} {'group':10s} {'n':>5s} {'acc %':>7s} {'std':>6s}  failed (run 0)"]
    for cat, pc in (payload.get("per_category") or {}).items():
        failed = pc.get("failed_ids_run0") or []
        shown = ", ".join(failed[:6]) + (f", ... (+{len(failed) - 6})" if len(failed) > 6 else "")
        std = pc.get("accuracy_std")
        rows.append(f"{cat:28s} {pc.get('group', ''):10s} {pc['n']:5d} {100 * pc['accuracy']:7.2f} "
                    f"{'' if std is None else f'{100 * std:6.2f}':>6s}  {shown}")
    m = payload.get("metrics") or {}
    for key in ("non_live", "live", "multi_turn", "overall"):
        v = m.get(key)
        rows.append(f"{key:28s} {'':10s} {'':5s} {'n/a' if v is None else f'{100 * v:7.2f}':>7s}")
    return "\n".join(rows)


# ----------------------------------------------------------------------------- summarisation
def evaluate_summarize(cfg: DictConfig, engine) -> dict[str, Any]:
    """Generate summaries for ``eval.split`` of the task and score them."""
    ev = cfg.eval
    task = build_task(cfg.task)
    records = subsample(task.split(str(ev.split)), ev.get("max_records"), int(ev.get("subsample_seed", 0)))
    if not records:
        raise ValueError(f"split {ev.split!r} of task {cfg.task.name!r} is empty")
    judge_cfg = _plain(ev.get("judge"))
    specs = _plain(task.reward_specs)
    for judge in build_rewards(judge_specs(judge_cfg, specs)):
        judge.preflight()  # before generating: a judge that does not answer stops here
    texts = generate_texts(engine, task, records, cfg)
    k = int(ev.repeats)
    rows_per_run = [score_summaries([t[r] for t in texts], records, specs, judge_cfg) for r in range(k)]
    agg = aggregate_summaries(rows_per_run)
    samples = [{"id": rec["id"], "completion": texts[i][0], "reference": rec["ground_truth"], **rows_per_run[0][i]}
               for i, rec in enumerate(records[: int(ev.get("num_samples", 8))])]
    notes = ["total = quality + conciseness, each on its 0-1 scale (0-2); judge_total (0-20) is the paper's scale."]
    return {"metrics": agg["metrics"], "metrics_std": agg["metrics_std"], "runs": agg["runs"],
            "n_records": len(records), "truncated_prompts": task.num_truncated if task else 0, "notes": notes,
            "samples": samples}


# ----------------------------------------------------------------------------- orchestration
def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by None (strict JSON), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_eval_json(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as strict JSON (NaN -> null) atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(json_safe(payload), indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def _task_kind(cfg: DictConfig) -> str:

    name = canonical_task(str(cfg.task.name))
    if name not in ("toolcall", "summarize"):
        raise ValueError(f"no evaluation for task {cfg.task.name!r}; valid: toolcall, summarize")
    return name


def run_evaluation(cfg: DictConfig, engine=None) -> tuple[dict[str, Any], Path]:
    """Evaluate per ``cfg.eval``; writes and returns (eval.json payload, its path).

    ``engine``: an already built rollout engine (tests); by default one is built from
    ``cfg.rollout`` for the model and closed afterwards.
    """
    target = resolve_target(cfg)
    run_cfg = target.cfg
    kind = _task_kind(run_cfg)
    policy = str(cfg.eval.get("policy") or "model")
    if policy not in ("model", "oracle"):
        raise ValueError(f"eval.policy={policy!r}; valid: model, oracle")
    oracle = policy == "oracle"
    if oracle and kind != "toolcall":
        raise ValueError("eval.policy=oracle is a self-check of the tool-calling scorer (task=toolcall)")
    model_path = "oracle" if oracle else target.model_path
    if model_path is None:

        model_path = str(prepare_model(run_cfg.model))
    own_engine = engine is None and not oracle
    if own_engine:

        engine = build_engine(run_cfg.rollout, model_path)
    t0 = time.time()
    try:
        result = (evaluate_toolcall(run_cfg, engine, oracle, target.out_dir) if kind == "toolcall"
                  else evaluate_summarize(run_cfg, engine))
    finally:
        if own_engine:
            engine.close()
    ev = run_cfg.eval
    payload = {"task": kind, "model": str(model_path), "algorithm": target.algorithm, "seed": int(run_cfg.seed),
               "split": str(ev.split), "repeats": int(ev.repeats), "temperature": float(ev.temperature),
               "max_new_tokens": sampling_for_eval(run_cfg).max_new_tokens,
               "experiment_name": str(run_cfg.get("experiment_name", "")), "seconds": round(time.time() - t0, 2)}
    payload.update(result)
    target.out_dir.mkdir(parents=True, exist_ok=True)
    if target.write_config and not oracle and not (target.out_dir / "config.yaml").exists():

        saved = OmegaConf.to_container(run_cfg, resolve=True)
        saved["algorithm"] = {"name": target.algorithm}
        saved["model_path"] = str(model_path)
        atomic_write_text(target.out_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(saved)))
    payload = json_safe(payload)
    path = write_eval_json(target.out_dir / str(ev.get("output_name") or EVAL_FILE), payload)
    return payload, path
