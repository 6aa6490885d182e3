"""The paper's tables from finished runs, as markdown, LaTeX and CSV.

- Table 1 (tool calling, BFCL v4): Non-Live, Live, Multi-Turn, Overall, Overall without
  Multi-Turn and format rate per method, in percent, mean +- std over seeds (sample std, ddof=1;
  one seed shows the mean alone). Values come from each run's eval.json (scripts/evaluate.py).
- Table 2 (summarisation): quality, conciseness, total (= quality + conciseness, each on its
  0-1 scale), ROUGE-1/2/L, mean summary length, and the judge grades (0-10, total 0-20) when
  the runs were judged.
- Overhead: per-step wall time and its phases (time/rollout, rewards, advantages, update, sync)
  per method: the median over a run's steps, skipping the first step (warm-up), then the mean
  over seeds; the last columns give what a method adds to its host (grpo_saw vs grpo, gdpo_saw
  vs gdpo, *_gradient likewise) in percent of the host's step time, and in the advantage phase.
- Training curves: per method, each reward's batch mean at the first and the last logged step
  and the change between them (mean over seeds), i.e. the endpoints of the reward curves.
- Paired: each dynamic weighting minus its host, seed by seed (the same prompts).

The markdown report (:func:`markdown_report`) puts the SAW paper's numbers (eval/paper.py)
beside ours, clearly labelled, and says when the runs are the embedded smoke-scale setup.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from eval import paper
from eval.runs import HOST_OF, GroupKey, Run, group_by_method, group_label, method_label

NOT_RUN = "not run"
MISSING = "n/a"
TIME_PHASES = ("step", "rollout", "rewards", "advantages", "update", "sync")


# ----------------------------------------------------------------------------- statistics
def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample std with ddof=1 or None for a single value, count) of the non-None values;
    (None, None, 0) when there are none."""
    xs = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not xs:
        return None, None, 0
    mean = sum(xs) / len(xs)
    std = statistics.stdev(xs) if len(xs) > 1 else None
    return mean, std, len(xs)


def format_mean_std(mean: float | None, std: float | None, digits: int = 2, missing: str = MISSING,
                    latex: bool = False) -> str:
    """``"m ± s"`` (``"m"`` without a std, ``missing`` without a mean), ``digits`` decimals."""
    if mean is None:
        return missing
    if std is None:
        return f"{mean:.{digits}f}"
    pm = " $\\pm$ " if latex else " ± "
    return f"{mean:.{digits}f}{pm}{std:.{digits}f}"


# ----------------------------------------------------------------------------- table object
@dataclass
class Column:
    """One numeric column: header, how to read a run's value, display scale and decimals."""

    key: str
    header: str
    value: Callable[[Run], float | None]
    scale: float = 1.0
    digits: int = 2
    missing: str = MISSING


@dataclass
class Table:
    """A rendered table: display rows (text cells) and machine-readable CSV rows."""

    name: str
    title: str
    header: list[str]
    rows: list[list[str]]
    latex_rows: list[list[str]]
    csv_header: list[str]
    csv_rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    # markdown-only columns after ours (the paper's numbers beside ours)
    md_extra_header: list[str] = field(default_factory=list)
    md_extra_rows: list[list[str]] = field(default_factory=list)

    def markdown(self) -> str:
        header = self.header + self.md_extra_header
        extra = self.md_extra_rows or [[] for _ in self.rows]
        lines = [f"### {self.title}", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(r + e) + " |" for r, e in zip(self.rows, extra)]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        spec = "l" + "r" * (len(self.header) - 1)
        lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{latex_escape(self.title)}}}",
                 f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                 " & ".join(latex_escape(h) for h in self.header) + " \\\\", "\\midrule"]
        lines += [" & ".join(r) + " \\\\" for r in self.latex_rows]
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.csv_header)
        for row in self.csv_rows:
            writer.writerow(["" if v is None else v for v in row])
        return buf.getvalue()

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``<name>.md``, ``<name>.tex`` and ``<name>.csv`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for ext, text in (("md", self.markdown()), ("tex", self.latex()), ("csv", self.csv())):
            path = out / f"{self.name}.{ext}"
            path.write_text(text, encoding="utf-8")
            paths.append(path)
        return paths


_LATEX_SPECIAL = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_",
                  "{": "\\{", "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text)).replace("±", "$\\pm$")


def build_table(name: str, title: str, groups: dict[GroupKey, list[Run]], columns: Sequence[Column],
                notes: Sequence[str] = ()) -> Table:
    """One row per (experiment, method) group, one mean +- std cell per column."""
    header = ["Method", "Seeds"] + [c.header for c in columns]
    csv_header = ["method", "experiment", "algorithm", "n_runs"]
    for c in columns:
        csv_header += [f"{c.key}_mean", f"{c.key}_std"]
    rows, latex_rows, csv_rows = [], [], []
    unfinished_seen = False
    for key, runs in groups.items():
        label = group_label(key, groups)
        unfinished = sum(not r.finished for r in runs)
        if unfinished:  # an interrupted run's numbers come from fewer steps than its config asked for
            label += f" (unfinished: {unfinished} of {len(runs)})"
            unfinished_seen = True
        row = [label, str(len(runs))]
        lrow = [latex_escape(label), str(len(runs))]
        crow: list[Any] = [method_label(key[1]), key[0], key[1], len(runs)]
        for c in columns:
            values = [c.value(r) for r in runs]
            mean, std, _ = mean_std(None if v is None else v * c.scale for v in values)
            row.append(format_mean_std(mean, std, c.digits, c.missing))
            lrow.append(latex_escape(format_mean_std(mean, std, c.digits, c.missing)) if mean is None
                        else format_mean_std(mean, std, c.digits, c.missing, latex=True))
            crow += [mean, std]
        rows.append(row)
        latex_rows.append(lrow)
        csv_rows.append(crow)
    notes = list(notes)
    if unfinished_seen:
        notes.append("unfinished: runs without done.json (interrupted or still training); their rows cover fewer "
                     "steps than configured. Resume them (same command) before reading these rows.")
    return Table(name, title, header, rows, latex_rows, csv_header, csv_rows, notes)


# ----------------------------------------------------------------------------- eval tables
def _metric(key: str) -> Callable[[Run], float | None]:
    def read(run: Run) -> float | None:
        value = ((run.eval or {}).get("metrics") or {}).get(key)
        return None if value is None else float(value)

    return read


def _evaluated(runs: Iterable[Run], task: str) -> dict[GroupKey, list[Run]]:
    return group_by_method([r for r in runs if r.eval is not None], task)


def toolcall_table(runs: Sequence[Run]) -> Table | None:
    """Table 1 from the tool-calling runs with an eval.json; None when there are none."""
    groups = _evaluated(runs, "toolcall")
    if not groups:
        return None
    columns = [
        Column("non_live", "Non-Live", _metric("non_live"), 100.0),
        Column("live", "Live", _metric("live"), 100.0),
        Column("multi_turn", "Multi-Turn", _metric("multi_turn"), 100.0, missing=NOT_RUN),
        Column("overall", "Overall", _metric("overall"), 100.0, missing=f"{MISSING} (needs Multi-Turn)"),
        Column("overall_without_multi_turn", "Mean(Non-Live, Live)", _metric("overall_without_multi_turn"), 100.0),
        Column("format_rate", "Format rate", _metric("format_rate"), 100.0),
    ]
    all_runs = [r for rs in groups.values() for r in rs]
    # relevance detection: extra columns, only when some run has them
    for key, header in (("live_relevance", "Live relevance"), ("irrelevance", "Irrelevance"),
                        ("live_irrelevance", "Live irrelevance")):
        if any(_metric(key)(r) is not None for r in all_runs):
            columns.append(Column(key, header, _metric(key), 100.0))
    notes = ["BFCL v4 accuracy in %, scored with the bfcl-eval package's checkers (AST; multi-turn state and "
             "response checks); mean ± sample std over seeds (Seeds = number of runs; one run shows the mean alone).",
             "Non-Live (1150 entries) = unweighted mean of simple, multiple, parallel, parallel_multiple with simple = "
             "mean of simple_python, simple_java, simple_javascript. Live (1351) = the four live AST categories "
             "weighted by their sizes (BFCL v4's Live Overall). Multi-Turn (800) = mean of multi_turn_base, "
             "miss_func, miss_param, long_context, run against BFCL's simulated APIs (web_search and memory "
             "are not run: they need the network / extra files).",
             "Overall = mean of Non-Live, Live and Multi-Turn (the paper's definition); Format rate = share "
             "of completions in the exact ToolRL format (toolcall_format reward = 1)."]
    renders = sorted({str((r.eval or {}).get("tool_render")) for r in all_runs if (r.eval or {}).get("tool_render")})
    if renders:
        notes.append("Prompt rendering: " + ", ".join(renders) + " (each run evaluated with the rendering it was "
                     "trained with; toolrl = ToolRL's BFCL handler prompt and decoder).")
    subsampled = sorted({int(r.eval["n_records"]) for r in all_runs if (r.eval or {}).get("n_dialogues") is not None
                         and int(r.eval.get("n_dialogues") or 0) < 800})
    if subsampled:
        notes.append("Subsampled evaluation (smoke scale): a fixed subset of every category, including fewer than "
                     "200 dialogues per Multi-Turn category; not comparable with full-set numbers.")
    if all(_metric("multi_turn")(r) is None for r in all_runs):
        notes.append("Multi-Turn was not run for these runs, so Overall is not available; Mean(Non-Live, Live) is "
                     "shown instead and is not the paper's Overall.")
    if any((r.eval or {}).get("live_in_training_data") for r in all_runs):
        notes.append("Live is the training data on this setup (the embedded task trains on BFCL's Live "
                     "categories): Live measures fit to the training set, not generalisation.")
    repeats = sorted({int((r.eval or {}).get("repeats", 1)) for r in all_runs})
    if repeats != [1]:
        notes.append(f"Each run's value is the mean over its k sampled repeats (k = {', '.join(map(str, repeats))}).")
    table = build_table("table1_toolcall", "Table 1: tool calling (BFCL v4)", groups, columns, notes)
    models = list(paper.BFCL_OVERALL)
    add_paper_column(table, groups, "Paper Overall† (" + " / ".join(m.split("-")[1] for m in models) + ")",
                     [paper.BFCL_OVERALL[m] for m in models])
    table.notes.append(f"† Reported in the {paper.PAPER_LABEL} for " + " / ".join(models)
                       + " (BFCL v4 Overall, 4 runs): not our runs.")
    return table


def add_paper_column(table: Table, groups: dict[GroupKey, list[Run]], header: str,
                     sources: Sequence[dict[str, float]]) -> None:
    """Append a markdown-only column with the paper's value(s) for each method ("-" if none)."""
    table.md_extra_header.append(header)
    table.md_extra_rows = [row + [" / ".join(f"{src[alg]:.2f}" for src in sources) if all(alg in src for src in sources)
                                  else "-"]
                           for row, (_, alg) in zip(table.md_extra_rows or [[] for _ in groups], groups)]


def summarize_table(runs: Sequence[Run]) -> Table | None:
    """Table 2 from the summarisation runs with an eval.json; None when there are none."""
    groups = _evaluated(runs, "summarize")
    if not groups:
        return None
    columns = [
        Column("quality", "Quality", _metric("quality"), 1.0, 3),
        Column("conciseness", "Conciseness", _metric("conciseness"), 1.0, 3),
        Column("total", "Total", _metric("total"), 1.0, 3),
        Column("rouge1", "ROUGE-1", _metric("rouge1"), 100.0),
        Column("rouge2", "ROUGE-2", _metric("rouge2"), 100.0),
        Column("rougeL", "ROUGE-L", _metric("rougeL"), 100.0),
        Column("mean_words", "Words", _metric("mean_words"), 1.0, 1),
    ]
    all_runs = [r for rs in groups.values() for r in rs]
    judged = any(_metric("judge_quality")(r) is not None for r in all_runs)
    if judged:
        columns += [Column("judge_quality", "Judge quality", _metric("judge_quality"), 1.0),
                    Column("judge_conciseness", "Judge conciseness", _metric("judge_conciseness"), 1.0),
                    Column("judge_total", "Judge total (0-20)", _metric("judge_total"), 1.0)]
    notes = ["Quality = summary_quality reward (mean ROUGE F1 vs the reference), Conciseness = "
             "summary_conciseness reward (word budget), each on a 0-1 scale; Total = Quality + Conciseness "
             "(0-2). ROUGE F1 in % (rouge_score, stemmer on); Words = mean summary length.",
             "Mean ± sample std over seeds (Seeds = number of runs)."]
    if judged:
        notes.append("Judge grades: LLM judge, 0-10 each; Judge total (0-20) is on the paper's scale.")
    else:
        notes.append("No LLM judge was configured: the paper's Total (0-20, judge grades) has no counterpart "
                     "here; Total above is the rule-based 0-2 score.")
    table = build_table("table2_summarize", "Table 2: summarisation", groups, columns, notes)
    models = list(paper.SUMMARIZATION_TOTAL)
    add_paper_column(table, groups, "Paper Total† (0-20)", [paper.SUMMARIZATION_TOTAL[m] for m in models])
    table.notes.append(f"† Reported in the {paper.PAPER_LABEL} for " + " / ".join(models)
                       + " (Reddit TL;DR, LLM judge, 0-20): not our runs; compare with Judge total, not Total.")
    return table


# ----------------------------------------------------------------------------- overhead
def median_phase_time(run: Run, phase: str, skip_first: bool = True) -> float | None:
    """Median over steps of ``time/<phase>`` (seconds), without the first logged step (warm-up).
    None when no step is left."""
    steps, values = run.series(f"time/{phase}")
    if skip_first and steps:
        first = min(steps)
        values = [v for s, v in zip(steps, values) if s != first]
    return statistics.median(values) if values else None


def overhead_table(runs: Sequence[Run], task: str) -> Table | None:
    """Per-step time of each method of ``task`` with training metrics; None when there are none."""
    groups = {k: v for k, v in group_by_method([r for r in runs if r.metrics], task).items() if k[1] != "base"}
    if not groups:
        return None
    columns = [Column(p, f"{p} (s)" if p != "advantages" else "advantages (ms)",
                      (lambda ph: lambda r: median_phase_time(r, ph))(p),
                      1000.0 if p == "advantages" else 1.0, 3 if p != "advantages" else 2)
               for p in TIME_PHASES]
    table = build_table(f"overhead_{task}", f"Overhead per training step ({task})", groups, columns)
    # what each method adds to its host
    step_mean = {key: mean_std(median_phase_time(r, "step") for r in rs)[0] for key, rs in groups.items()}
    adv_mean = {key: mean_std(median_phase_time(r, "advantages") for r in rs)[0] for key, rs in groups.items()}
    table.header += ["vs host: step", "vs host: advantages (ms)"]
    table.csv_header += ["host", "step_overhead_percent", "advantages_overhead_ms"]
    for i, key in enumerate(groups):
        experiment, algorithm = key
        host = (experiment, HOST_OF.get(algorithm))  # the host of the same experiment
        pct = extra_ms = None
        if host in step_mean and step_mean[key] is not None and step_mean[host]:
            pct = (step_mean[key] - step_mean[host]) / step_mean[host] * 100.0
        if host in adv_mean and adv_mean[key] is not None and adv_mean[host] is not None:
            extra_ms = (adv_mean[key] - adv_mean[host]) * 1000.0
        pct_text = MISSING if pct is None else f"{pct:+.1f} % vs {method_label(host[1])}"
        ms_text = MISSING if extra_ms is None else f"{extra_ms:+.2f}"
        table.rows[i] += [pct_text, ms_text]
        table.latex_rows[i] += [latex_escape(pct_text), latex_escape(ms_text)]
        table.csv_rows[i] += [host[1], pct, extra_ms]
    lo, hi = paper.OVERHEAD_PERCENT["saw"]
    glo, ghi = paper.OVERHEAD_PERCENT["gradient"]
    table.notes = [
        "Median over each run's steps (first step skipped as warm-up), then mean ± sample std over seeds. "
        "Phases: rollout (generation), rewards, advantages (weighting + estimator), update (policy "
        "optimisation), sync (weights to the rollout engine); step = whole step.",
        "vs host compares whole steps, so it includes the effect of the method on what is sampled: "
        "after the first update each method generates different completions, and their lengths drive "
        "the rollout and update times. On short runs of small batches this noise is larger than SAW's "
        "own cost, which the advantages column isolates; +Gradient's extra backward passes are also "
        "counted in advantages.",
        f"Paper ({paper.PAPER_ID}): +SAW adds {lo}-{hi} % per step, +Gradient {glo}-{ghi} %.",
    ]
    return table


# ----------------------------------------------------------------------------- training curves
def endpoint(run: Run, key: str, last: bool) -> float | None:
    """Value of metric ``key`` at the run's first (``last=False``) or last logged step; None if absent."""
    steps, values = run.series(key)
    if not steps:
        return None
    pick = max if last else min
    return values[steps.index(pick(steps))]


def tail_mean(run: Run, key: str, window: int = 5) -> float | None:
    """Mean of metric ``key`` over the run's last ``window`` logged steps; None if absent."""
    steps, values = run.series(key)
    if not steps:
        return None
    last = [v for _, v in sorted(zip(steps, values))[-window:]]
    return sum(last) / len(last)


def training_table(runs: Sequence[Run], task: str) -> Table | None:
    """First and last batch mean of every reward per method of ``task``, the mean of the final 5
    steps, and the last greedy validation mean where validation ran; None without metrics."""
    groups = {k: v for k, v in group_by_method([r for r in runs if r.metrics], task).items() if k[1] != "base"}
    if not groups:
        return None
    names: list[str] = []
    for rs in groups.values():
        for r in rs:
            names += [n for n in r.reward_names() if n not in names]

    def at(key: str, last: bool) -> Callable[[Run], float | None]:
        return lambda r: endpoint(r, key, last)

    def change(key: str) -> Callable[[Run], float | None]:
        def read(r: Run) -> float | None:
            first, last = endpoint(r, key, False), endpoint(r, key, True)
            return None if first is None or last is None else last - first
        return read

    columns: list[Column] = []
    for name in names:
        key = f"reward/{name}/mean"
        columns += [Column(f"{name}_first", f"{name} first", at(key, False), 1.0, 3),
                    Column(f"{name}_last", f"{name} last", at(key, True), 1.0, 3),
                    Column(f"{name}_change", f"{name} change", change(key), 1.0, 3),
                    Column(f"{name}_final5", f"{name} final-5 mean", lambda r, key=key: tail_mean(r, key), 1.0, 3)]
    for name in names:
        if any(r.series(f"val/{name}")[0] for rs in groups.values() for r in rs):
            columns += [Column(f"val_{name}_first", f"val {name} first", at(f"val/{name}", False), 1.0, 3),
                        Column(f"val_{name}_last", f"val {name} last", at(f"val/{name}", True), 1.0, 3)]
    columns.append(Column("steps", "Steps", lambda r: float(len(r.series("time/step")[0])) or None, 1.0, 0))
    notes = ["Batch mean of each training reward (the rollout samples of that step, temperature as "
             "configured) at the first and the last logged step, last - first, and the mean of the final 5 "
             "steps; 'val' is the greedy validation mean at the first (step 0 with trainer.val_before_train) and the "
             "last validation; mean ± sample std over "
             "seeds. Single-step values of small batches are noisy: read the curves (figures) for trends."]
    return build_table(f"training_{task}", f"Training rewards, first and last step ({task})", groups, columns, notes)


@dataclass
class SeedPair:
    """A weighted run and its host's run of the same experiment and seed (the same prompts)."""

    run: Run
    host: Run

    @property
    def finished(self) -> bool:
        return self.run.finished and self.host.finished


def paired_table(runs: Sequence[Run], task: str) -> Table | None:
    """Each dynamic weighting minus its host (``HOST_OF``), seed by seed: the mean of the final 5
    training steps and the last greedy validation of each reward, mean +- std over the seeds both
    ran, and the share of seeds where the weighting is higher. None without such pairs."""
    by_key = {(r.experiment, r.algorithm, r.seed): r for r in runs if r.task == task and r.metrics}
    groups: dict[GroupKey, list[SeedPair]] = {}
    for (experiment, algorithm, seed), run in sorted(by_key.items()):
        host = by_key.get((experiment, HOST_OF.get(algorithm, ""), seed))
        if host is not None:
            groups.setdefault((experiment, algorithm), []).append(SeedPair(run, host))
    if not groups:
        return None
    names: list[str] = []
    for pairs in groups.values():
        for pair in pairs:
            names += [n for n in pair.run.reward_names() if n not in names]

    def diff(read: Callable[[Run], float | None]) -> Callable[[SeedPair], float | None]:
        def value(pair: SeedPair) -> float | None:
            a, b = read(pair.run), read(pair.host)
            return None if a is None or b is None else a - b
        return value

    def higher(read: Callable[[Run], float | None]) -> Callable[[SeedPair], float | None]:
        difference = diff(read)

        def value(pair: SeedPair) -> float | None:
            d = difference(pair)
            return None if d is None else float(d > 0)
        return value

    columns: list[Column] = []
    for name in names:
        final5 = lambda r, key=f"reward/{name}/mean": tail_mean(r, key)  # noqa: E731
        columns += [Column(f"{name}_final5_diff", f"{name} final-5 Δ", diff(final5), 1.0, 3),
                    Column(f"{name}_final5_higher", f"{name} final-5 share higher", higher(final5), 1.0, 2)]
        if any(pair.run.series(f"val/{name}")[0] for pairs in groups.values() for pair in pairs):
            val = lambda r, key=f"val/{name}": endpoint(r, key, True)  # noqa: E731
            columns += [Column(f"val_{name}_diff", f"val {name} Δ", diff(val), 1.0, 3),
                        Column(f"val_{name}_higher", f"val {name} share higher", higher(val), 1.0, 2)]
    notes = ["Weighted run minus its host's run of the same seed (both saw the same prompts in the same order); "
             "mean ± sample std over the seeds both ran ('Seeds'); 'share higher': seeds where the weighted run "
             "is above its host. With n seeds, a mean difference inside about 2·std/√n of zero is within seed "
             "noise."]
    return build_table(f"paired_{task}", f"Weighting minus host, per seed ({task})", groups, columns, notes)


# ----------------------------------------------------------------------------- paper numbers
def paper_tables_markdown() -> str:
    """The SAW paper's reported numbers (eval/paper.py) as markdown tables."""
    lines = [f"### Reported in the {paper.PAPER_LABEL} (not our runs)", "",
             "BFCL v4 Overall (%, mean of Non-Live, Live, Multi-Turn; 4 runs each):", "",
             "| Model | " + " | ".join(method_label(a) for a in ("grpo", "grpo_saw", "gdpo", "gdpo_saw")) + " |",
             "|---|---:|---:|---:|---:|"]
    for model, values in paper.BFCL_OVERALL.items():
        lines.append(f"| {model} | " + " | ".join(f"{values[a]:.2f}" for a in ("grpo", "grpo_saw", "gdpo", "gdpo_saw"))
                     + " |")
    lines += ["", "Summarisation Total (0-20, LLM judge, Reddit TL;DR):", "",
              "| Model | " + " | ".join(method_label(a) for a in ("grpo", "grpo_saw", "gdpo", "gdpo_saw")) + " |",
              "|---|---:|---:|---:|---:|"]
    for model, values in paper.SUMMARIZATION_TOTAL.items():
        lines.append(f"| {model} | " + " | ".join(f"{values[a]:.2f}" for a in ("grpo", "grpo_saw", "gdpo", "gdpo_saw"))
                     + " |")
    lo, hi = paper.OVERHEAD_PERCENT["saw"]
    glo, ghi = paper.OVERHEAD_PERCENT["gradient"]
    lines += ["", f"Overhead per step: +SAW {lo}-{hi} %, +Gradient {glo}-{ghi} %.", ""]
    return "\n".join(lines)


def all_tables(runs: Sequence[Run]) -> list[Table]:
    """Table 1, Table 2 and a training-curve and an overhead table per task, for the tasks present in ``runs``."""
    tables = [t for t in (toolcall_table(runs), summarize_table(runs)) if t is not None]
    for task in sorted({r.task for r in runs}):
        for make in (training_table, paired_table, overhead_table):
            t = make(runs, task)
            if t is not None:
                tables.append(t)
    return tables


def markdown_report(runs: Sequence[Run], tables: Sequence[Table] | None = None,
                    figures: Sequence[Path] = (), out_dir: Path | None = None) -> str:
    """The whole results page: setup notes, our tables, the paper's numbers, figure links."""
    tables = all_tables(runs) if tables is None else tables
    lines = ["# Results", ""]
    if any(r.is_embedded for r in runs):
        lines += ["> **Smoke-scale reproduction.** These runs use the embedded CPU setup (small model, "
                  "few steps, BFCL/ACLSum data shipped in packages). They check that the pipeline works "
                  "end to end; they are not comparable to the paper's numbers in size or in value.", ""]
    experiments = sorted({r.experiment for r in runs})
    lines += [f"Runs: {len(runs)} (experiments: {', '.join(experiments) or '-'}).", ""]
    no_eval = [r for r in runs if r.eval is None]
    if no_eval:
        lines += [f"Runs without eval.json (not in Tables 1-2): {', '.join(r.path.name for r in no_eval)}.", ""]
    lines += ["## Our runs", ""]
    for t in tables:
        lines += [t.markdown()]
    lines += ["## Paper", "", paper_tables_markdown()]
    if figures:
        lines += ["## Figures", ""]
        for f in figures:
            rel = f.relative_to(out_dir) if out_dir is not None and f.is_relative_to(out_dir) else f
            lines.append(f"![{f.stem}]({rel})")
        lines.append("")
    return "\n".join(lines)


def write_tables(runs: Sequence[Run], out_dir: str | Path, figures: Sequence[Path] = ()) -> list[Path]:
    """Write every table (md/tex/csv) and ``results.md`` into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = all_tables(runs)
    paths: list[Path] = []
    for t in tables:
        paths += t.write(out)
    report = out / "results.md"
    report.write_text(markdown_report(runs, tables, figures, out), encoding="utf-8")
    paths.append(report)
    return paths
