"""The evaluation harness with the real configs and a scripted rollout engine (fast), and
scripts/evaluate.py end to end on the tiny model (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from eval import bfcl
from eval.harness import resolve_target, run_evaluation
from rollout.base import RolloutEngine, RolloutSample

REPO = Path(__file__).resolve().parents[2]


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


class PromptIndexTokenizer:
    """Tokenises a conversation to one id: its position in the list of conversations seen."""

    def __init__(self):
        self.prompts: list[str] = []

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=True):
        key = json.dumps(list(messages), sort_keys=True)
        if key not in self.prompts:
            self.prompts.append(key)
        return [self.prompts.index(key)]


def prompt_key(record: dict) -> str:
    return json.dumps(list(record["prompt"]), sort_keys=True)


class ScriptedEngine(RolloutEngine):
    """Answers prompt i with ``script(i, sample_index)`` (what a model would have written)."""

    def __init__(self, script):
        super().__init__()
        self._tok = PromptIndexTokenizer()
        self.script = script
        self.closed = False

    @property
    def tokenizer(self):
        return self._tok

    @property
    def max_model_len(self) -> int:
        return 10**6

    def _generate(self, prompt_ids, sampling):
        out = []
        for g, ids in enumerate(prompt_ids):
            for r in range(sampling.n):
                out.append(RolloutSample(g, list(ids), [1], self.script(ids[0], r), [0.0], "stop"))
        return out

    def _update_weights(self, named_tensors):
        raise NotImplementedError

    def close(self):
        self.closed = True


@pytest.fixture
def dummy_model(tmp_path):
    path = tmp_path / "some-model"
    path.mkdir()
    return path


def test_toolcall_evaluation_with_scripted_answers(tmp_path, dummy_model):
    """Run 0 answers with the task's ground truth, run 1 with nothing: run accuracies are the
    checker's verdicts on the ground truth and 0; eval.json has the documented schema."""
    out_dir = tmp_path / "out"
    cats = "[" + ",".join(bfcl.NON_LIVE_CATEGORIES + bfcl.LIVE_CATEGORIES) + "]"
    cfg = compose_cfg("task=toolcall", "eval.max_records=3", "eval.repeats=2", "eval.temperature=0.7",
                      f"eval.model={dummy_model}", f"eval.out_dir={out_dir}", "seed=5", f"eval.bfcl.categories={cats}")
    from eval.harness import bfcl_eval_records

    records = bfcl_eval_records(cfg)
    assert len(records) == 10 * 3
    by_prompt = {prompt_key(r): r for r in records}
    engine = ScriptedEngine(None)
    engine.script = lambda i, r: (by_prompt[engine.tokenizer.prompts[i]]["ground_truth"] if r == 0
                                  else "<think> no idea </think>")
    payload, path = run_evaluation(cfg, engine=engine)
    assert path == out_dir / "eval.json" and json.loads(path.read_text()) == payload
    assert payload["task"] == "toolcall" and payload["algorithm"] == "some-model" and payload["seed"] == 5
    assert payload["split"] == "test" and payload["repeats"] == 2 and payload["n_records"] == 30
    assert payload["checker"].startswith("bfcl-eval 20")
    # the checker's own verdicts on the ground truth give run 0
    verdicts = bfcl.check_records([r["ground_truth"] for r in records], records)
    acc = {}
    for rec, v in zip(records, verdicts):
        acc.setdefault(rec["extra_info"]["category"], []).append(v.valid)
    acc = {c: sum(v) / len(v) for c, v in acc.items()}
    sizes = bfcl.bfcl_category_sizes()
    run0 = payload["runs"][0]
    assert run0["non_live"] == pytest.approx(bfcl.non_live_accuracy(acc))
    assert run0["live"] == pytest.approx(bfcl.live_accuracy(acc, sizes))
    assert payload["runs"][1]["non_live"] == 0.0 and payload["runs"][1]["live"] == 0.0
    m = payload["metrics"]
    assert m["non_live"] == pytest.approx(run0["non_live"] / 2)
    assert m["multi_turn"] is None and m["overall"] is None
    assert m["format_rate"] == pytest.approx(0.5)  # ground truth is well formatted, the other is not
    pc = payload["per_category"]["live_simple"]
    assert pc["n"] == 3 and pc["bfcl_size"] == 258 and pc["in_training_data"] is True and pc["group"] == "live"
    assert payload["per_category"]["simple_python"]["in_training_data"] is False
    assert payload["live_in_training_data"] is True
    assert 0 < len(payload["samples"]) <= 8 and {"id", "completion", "valid"} <= set(payload["samples"][0])
    # a base-style output folder gets a config.yaml that make_tables can read
    saved = yaml.safe_load((out_dir / "config.yaml").read_text())
    assert saved["algorithm"] == {"name": "some-model"} and saved["task"]["name"] == "toolcall"
    from eval.runs import load_run

    run = load_run(out_dir)
    assert run.algorithm == "some-model" and run.eval["metrics"] == m


def test_summarize_evaluation_with_reference_answers(tmp_path, dummy_model):
    """Answering with the reference gives ROUGE 1, quality 1, conciseness 1, total 2."""
    cfg = compose_cfg("task=summarize", "eval.max_records=4", f"eval.model={dummy_model}",
                      f"eval.out_dir={tmp_path / 'out'}")
    from saw.tasks import build_task

    task = build_task(cfg.task)
    refs = {prompt_key(rec): rec["ground_truth"] for rec in task.test}
    engine = ScriptedEngine(None)
    engine.script = lambda i, r: refs[engine.tokenizer.prompts[i]]
    payload, path = run_evaluation(cfg, engine=engine)
    m = payload["metrics"]
    assert payload["task"] == "summarize" and payload["n_records"] == 4
    for key in ("rouge1", "rouge2", "rougeL", "quality", "conciseness"):
        assert m[key] == pytest.approx(1.0), key
    assert m["total"] == pytest.approx(2.0)
    assert "judge_quality" not in m
    words = [len(payload["samples"][i]["reference"].split()) for i in range(4)]
    assert m["mean_words"] == pytest.approx(sum(words) / 4)


def test_target_resolution(tmp_path):
    run = tmp_path / "exp" / "toolcall-gdpo_saw-s2"
    (run / "policy").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "toolcall"}, "algorithm": {"name": "gdpo_saw"},
                                                     "seed": 2, "sampling": {"max_new_tokens": 16}}))
    cfg = compose_cfg(f"eval.run_dir={run}", "rollout=hf")
    t = resolve_target(cfg)
    assert t.model_path == str(run / "policy") and t.out_dir == run and t.algorithm == "gdpo_saw"
    assert t.cfg.seed == 2 and t.cfg.rollout.engine == "hf" and not t.write_config
    # eval.model=<run>/policy writes next to the run
    t = resolve_target(compose_cfg(f"eval.model={run / 'policy'}"))
    assert t.out_dir == run.resolve() and t.algorithm == "gdpo_saw"
    # nothing given: the base model, as its own run directory
    t = resolve_target(compose_cfg("task=summarize", f"output_root={tmp_path}", "experiment_name=e", "seed=3"))
    assert t.model_path is None and t.algorithm == "base" and t.write_config
    assert t.out_dir == tmp_path / "e" / "summarize-base-s3"
    with pytest.raises(FileNotFoundError, match="not finished"):
        (run / "policy").rmdir()
        resolve_target(cfg)


def test_toolcall_rejects_other_splits(dummy_model, tmp_path):
    cfg = compose_cfg("task=toolcall", "eval.split=validation", f"eval.model={dummy_model}",
                      f"eval.out_dir={tmp_path}")
    with pytest.raises(ValueError, match="BFCL"):
        run_evaluation(cfg, engine=ScriptedEngine(lambda i, r: ""))


@pytest.mark.slow
def test_evaluate_script_on_tiny_model(tmp_path):
    """scripts/evaluate.py with the tiny random model and the transformers engine: the base model
    run directory gets config.yaml + eval.json, and make_tables reads it."""
    env = dict(os.environ, SAW_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    common = ["model=tiny", "rollout=hf", f"output_root={tmp_path / 'outputs'}", "experiment_name=embedded_smoke",
              "eval.max_new_tokens=8", "eval.batch_size=16"]
    for task, extra in (("toolcall", ["eval.max_records=2"]), ("summarize", ["eval.max_records=3"])):
        proc = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate.py"), f"task={task}", *common, *extra],
                              capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        run = tmp_path / "outputs" / "embedded_smoke" / f"{task}-base-s0"
        payload = json.loads((run / "eval.json").read_text())
        assert payload["algorithm"] == "base" and payload["task"] == task
        assert (run / "config.yaml").is_file()
    tool = json.loads((tmp_path / "outputs/embedded_smoke/toolcall-base-s0/eval.json").read_text())
    assert tool["n_records"] == 10 * 2 and tool["n_dialogues"] == 4 * 2
    assert tool["metrics"]["format_rate"] == 0.0 and tool["metrics"]["multi_turn"] == 0.0  # a random model
    assert tool["tool_render"] == "compact" and tool["decoder"] == "strict"
    lines = Path(tool["multi_turn_transcripts"]).read_text().splitlines()
    assert len(lines) == 8 and all(json.loads(line)["turns"] for line in lines)
    assert not (tmp_path / ".hydra").exists() and not list(tmp_path.glob("*.log"))  # Hydra wrote nothing
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "make_tables.py"), str(tmp_path / "outputs"),
                           "--out", str(tmp_path / "results")], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "results" / "results.md").read_text()
    assert "Base model" in md and "Smoke-scale" in md


def test_write_eval_json_is_strict_and_atomic(tmp_path):
    from eval.harness import write_eval_json

    path = write_eval_json(tmp_path / "run" / "eval.json", {"metrics": {"a": float("nan"), "b": [1.5, float("inf")]}})
    assert json.loads(path.read_text()) == {"metrics": {"a": None, "b": [1.5, None]}}
    assert [p.name for p in path.parent.iterdir()] == ["eval.json"]  # no temporary file left


def test_oracle_policy_scores_every_group(tmp_path):
    """eval.policy=oracle: no model, the ground truth through the same decoder and checkers; on
    entries BFCL can score, every category is at 100 % and Overall is the mean of the three groups."""
    out_dir = tmp_path / "oracle"
    cats = "[" + ",".join(bfcl.ALL_CATEGORIES) + "]"  # with the relevance extras
    cfg = compose_cfg("task=toolcall", "task.tool_render=toolrl", "eval.policy=oracle", "eval.max_records=3",
                      "eval.multi_turn.max_records=2", "eval.repeats=2", f"eval.out_dir={out_dir}",
                      f"eval.bfcl.categories={cats}")
    payload, path = run_evaluation(cfg)
    assert payload["policy"] == "oracle" and payload["model"] == "oracle" and payload["algorithm"] == "oracle"
    assert payload["tool_render"] == "toolrl" and payload["decoder"] == "toolrl"
    assert payload["n_records"] == 13 * 3 and payload["n_dialogues"] == 4 * 2
    pc = payload["per_category"]
    # the three-record subsample holds none of BFCL's unsolvable entries
    assert all(v["accuracy"] == 1.0 for v in pc.values()), {c: v["failed_ids_run0"] for c, v in pc.items()}
    assert pc["multi_turn_base"]["n"] == 2 and pc["multi_turn_base"]["group"] == "multi_turn"
    m = payload["metrics"]
    assert m["overall"] == pytest.approx((m["non_live"] + m["live"] + m["multi_turn"]) / 3) == 1.0
    assert m["irrelevance"] == m["live_relevance"] == m["live_irrelevance"] == 1.0
    assert payload["metrics_std"]["overall"] == 0.0
    lines = Path(payload["multi_turn_transcripts"]).read_text().splitlines()
    assert len(lines) == 8 * 2 and not (out_dir / "config.yaml").exists()
    from eval.harness import format_category_table

    table = format_category_table(payload)
    assert "multi_turn_long_context" in table and "overall" in table


def test_tool_render_and_decoder_follow_the_run(tmp_path):
    """A run is evaluated with the rendering it was trained with; toolrl renders decode with toolrl."""
    from eval.harness import eval_decoder, eval_tool_render

    cfg = compose_cfg("task=toolcall")
    assert eval_tool_render(cfg) == "compact" and eval_decoder(cfg) == "strict"
    cfg = compose_cfg("task=toolcall_toolrl")
    assert eval_tool_render(cfg) == "toolrl" and eval_decoder(cfg) == "toolrl"
    cfg = compose_cfg("task=toolcall", "eval.bfcl.tool_render=full", "eval.bfcl.decoder=toolrl")
    assert eval_tool_render(cfg) == "full" and eval_decoder(cfg) == "toolrl"
    with pytest.raises(ValueError, match="decoder"):
        eval_decoder(compose_cfg("task=toolcall", "eval.bfcl.decoder=loose"))
    with pytest.raises(ValueError, match="web_search"):
        from eval.harness import bfcl_eval_records

        bfcl_eval_records(compose_cfg("task=toolcall", "eval.bfcl.categories=[web_search_base]"))


def test_multi_turn_only_evaluation(tmp_path):
    """Only multi-turn categories: Non-Live / Live / Overall stay null, Multi-Turn is scored."""
    cfg = compose_cfg("task=toolcall", "eval.policy=oracle", "eval.max_records=1", f"eval.out_dir={tmp_path}",
                      "eval.bfcl.categories=[multi_turn_base,multi_turn_miss_func,multi_turn_miss_param,"
                      "multi_turn_long_context]", "eval.multi_turn.max_turns=2", "eval.multi_turn.step_limit=1")
    payload, _ = run_evaluation(cfg)
    m = payload["metrics"]
    assert m["multi_turn"] == 1.0 and m["non_live"] is None and m["overall"] is None and m.get("format_rate") is None
    assert payload["n_records"] == 0 and payload["n_dialogues"] == 4
    assert any("first 2 user turns" in n for n in payload["notes"])
    assert any("step cap 1" in n for n in payload["notes"])
