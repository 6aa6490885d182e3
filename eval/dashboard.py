"""The W&B dashboard as code: a saved workspace view and a report, evaluation results and tables.

    python scripts/wandb_dashboard.py --entity E --project P --runs outputs/embedded_toolcall
    (make dashboard)

- :func:`workspace_sections` lists the view's sections and panels as plain data (no W&B
  package needed); :func:`build_workspace` turns them into a ``wandb_workspaces`` view: runs
  grouped by ``config.algorithm.name``, each group's seeds drawn as mean with a +-std band.
  Sections: per-reward mean, CV, weight and advantage share; response length and clip
  fraction; actor diagnostics; time per phase; validation; evaluation results.
- :func:`build_report` mirrors ``results/results.md``: its tables as markdown blocks and, per
  task, the curves of ``figures.py`` as live panel grids (reward means, SAW's CV and weights,
  step time) and the evaluation metrics as grouped bar charts.
- :func:`write_dashboard_json` writes both specs (``workspace.json``, ``report.json``) without
  network, so they can be checked against a run's logged keys (:func:`logged_keys`);
  ``Workspace.save()`` / ``Report.save()`` need a W&B login (the script does that online).
- :func:`log_eval_to_wandb` resumes a training run's W&B run (id in ``<run>/wandb_run_id``,
  written by the trainer's tracker; project, entity, group, tags, name and config from the
  run's ``config.yaml``, as in training) and logs ``eval/*`` on the ``eval/step`` axis.
- :func:`log_tables_to_wandb` logs the tables written by ``scripts/make_tables.py`` as W&B
  tables and the whole results folder as an artifact (a run of job type ``tables``).

``wandb`` and ``wandb_workspaces`` are imported inside the functions that need them (optional,
heavy); everything else here is plain Python.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import secrets
import shutil
import string
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from saw.core.io import atomic_write_text, read_metrics

log = logging.getLogger(__name__)

# the run-directory contract with saw.rl.tracking (which this layer may not import)
RUN_ID_FILE = "wandb_run_id"
STEP = "step"                 # the trainer's step: x axis of every training metric
EVAL_STEP = "eval/step"       # the evaluated policy's training step: x axis of eval/*
GROUP_BY = "algorithm.name"   # config key the runs are grouped by (seeds of one method form a band)
TASK_KEY = "task.name"

REWARD_STATS = (("mean", "Reward mean"), ("cv", "Reward CV (SAW statistic)"), ("weight", "Reward weight"),
                ("adv_share", "Advantage share"))
RESPONSE_KEYS = ("response/length_mean", "response/length_max", "response/clip_frac")
ACTOR_KEYS = ("actor/pg_loss", "actor/clip_frac", "actor/approx_kl", "actor/entropy", "actor/grad_norm", "actor/lr")
# logged only by some configurations (KL terms; the GRPO host's weighted total): shown when logged
OPTIONAL_KEYS = ("actor/kl", "actor/reward_kl_penalty", "reward/total/mean")
TIME_PHASES = ("rollout", "rewards", "advantages", "update", "sync", "step")
PERF_KEYS = ("perf/tokens_per_s", "perf/rollout_tokens_per_s")
# eval.json "metrics" per task (eval/bfcl.py, eval/summarize.py), logged as eval/<name>
EVAL_METRICS = {
    "toolcall": ("overall", "non_live", "live", "multi_turn", "overall_without_multi_turn", "format_rate"),
    "summarize": ("quality", "conciseness", "total", "rouge1", "rouge2", "rougeL", "mean_words"),
}
DASHBOARD_DIR = "dashboard"


# ----------------------------------------------------------------------------- plain specs
@dataclass
class PanelSpec:
    """One panel: a line plot of ``y`` against ``x`` or a bar chart of the runs' last ``y`` values."""

    title: str
    y: list[str]
    kind: str = "line"        # line | bar
    x: str | None = STEP

    def metric_keys(self) -> list[str]:
        return list(self.y) + ([self.x] if self.kind == "line" and self.x else [])


@dataclass
class SectionSpec:
    name: str
    panels: list[PanelSpec] = field(default_factory=list)
    is_open: bool = True


def _keep(key: str, available: set[str] | None, optional: bool) -> bool:
    return not optional or (available is not None and key in available)


def workspace_sections(reward_names: Sequence[str], *, eval_metrics: Sequence[str] | None = (),
                       available_keys: Iterable[str] | None = None) -> list[SectionSpec]:
    """The view's sections for the given rewards. ``eval_metrics``: names of eval.json metrics
    (``None``: every known one). ``available_keys``: the keys some run logged: optional panels
    (KL terms, the weighted total reward, a weighting's diagnostics) appear only for logged keys
    (none without ``available_keys``); the core panels appear always."""
    avail = set(available_keys) if available_keys is not None else None
    sections = []
    for stat, title in REWARD_STATS:
        sections.append(SectionSpec(title, [PanelSpec(f"{title}: {n}", [f"reward/{n}/{stat}"]) for n in reward_names]))
    if _keep("reward/total/mean", avail, True):
        sections[0].panels.append(PanelSpec("Weighted total reward", ["reward/total/mean"]))
    diagnostics = sorted({k for k in (avail or ()) if k.startswith("reward/") and k.count("/") == 2
                          and k.split("/")[1] in reward_names and k.split("/")[2] == "influence"})
    if diagnostics:
        sections.append(SectionSpec("Weighting diagnostics", [PanelSpec(k, [k]) for k in diagnostics]))
    sections.append(SectionSpec("Response", [PanelSpec("Response length (mean)", ["response/length_mean"]),
                                             PanelSpec("Response length (max)", ["response/length_max"]),
                                             PanelSpec("Clip fraction (cut at max length)", ["response/clip_frac"])]))
    actor = [PanelSpec(k, [k]) for k in ACTOR_KEYS]
    actor += [PanelSpec(k, [k]) for k in OPTIONAL_KEYS if k.startswith("actor/") and _keep(k, avail, True)]
    actor += [PanelSpec("Advantage |A| mean", ["adv/abs_mean"])]
    sections.append(SectionSpec("Actor diagnostics", actor))
    sections.append(SectionSpec("Time per phase (s)", [PanelSpec(f"time/{p}", [f"time/{p}"]) for p in TIME_PHASES]
                                + [PanelSpec(k, [k]) for k in PERF_KEYS], is_open=False))
    sections.append(SectionSpec("Validation (greedy)", [PanelSpec(f"val/{n}", [f"val/{n}"]) for n in reward_names]
                                + [PanelSpec("val/response_length", ["val/response_length"])]))
    if eval_metrics is None:
        eval_metrics = [m for ms in EVAL_METRICS.values() for m in ms]
    if eval_metrics:
        sections.append(SectionSpec("Evaluation", [PanelSpec(f"eval/{m}", [f"eval/{m}"], kind="bar", x=None)
                                                   for m in eval_metrics]))
    return sections


def panel_keys(sections: Iterable[SectionSpec]) -> set[str]:
    """Every metric key the panels read (y keys and x axes)."""
    return {k for s in sections for p in s.panels for k in p.metric_keys()}


def runset_filter(task: str | None, algorithms: Sequence[str] | None) -> str:
    """W&B filter expression selecting one task's runs of the given algorithms."""
    parts = []
    if task:
        parts.append(f"Config('{TASK_KEY}') = '{task}'")
    if algorithms:
        parts.append(f"Config('{GROUP_BY}') in [" + ", ".join(f"'{a}'" for a in algorithms) + "]")
    return " and ".join(parts)


# ----------------------------------------------------------------------------- W&B objects
def _panel(p: PanelSpec):
    import wandb_workspaces.reports.v2 as wr  # optional: only to build W&B views

    if p.kind == "bar":
        return wr.BarPlot(title=p.title, metrics=list(p.y), groupby_aggfunc="mean", groupby_rangefunc="stddev")
    return wr.LinePlot(title=p.title, x=p.x or STEP, y=list(p.y), groupby_aggfunc="mean",
                       groupby_rangefunc="stddev", title_x=p.x or STEP)


def build_workspace(entity: str, project: str, reward_names: Sequence[str], algorithms: Sequence[str] | None = None,
                    *, task: str | None = None, name: str | None = None, eval_metrics: Sequence[str] | None = None,
                    available_keys: Iterable[str] | None = None):
    """A ``wandb_workspaces.workspaces.Workspace`` (not saved): the sections of
    :func:`workspace_sections`, runs of ``task`` and ``algorithms`` grouped by algorithm."""
    import wandb_workspaces.workspaces as ws  # optional: only to build W&B views
    from wandb_workspaces import expr

    if eval_metrics is None and task in EVAL_METRICS:
        eval_metrics = EVAL_METRICS[task]
    sections = workspace_sections(reward_names, eval_metrics=eval_metrics, available_keys=available_keys)
    return ws.Workspace(
        entity=entity, project=project, name=name or f"SAW {task or 'runs'}: rewards, weights, diagnostics",
        sections=[ws.Section(name=s.name, panels=[_panel(p) for p in s.panels], is_open=s.is_open) for s in sections],
        settings=ws.WorkspaceSettings(x_axis=STEP, max_runs=50, tooltip_number_of_runs="all_runs"),
        runset_settings=ws.RunsetSettings(filters=runset_filter(task, algorithms), groupby=[expr.Config(GROUP_BY)]),
    )


def report_curves(reward_names: Sequence[str], eval_metrics: Sequence[str] = (),
                  available_keys: Iterable[str] | None = None) -> list[PanelSpec]:
    """The report's curves for one task: what eval/figures.py draws (reward means; SAW's CV and
    weights), the step time, and the evaluation metrics as bar charts."""
    panels = [PanelSpec(f"Reward mean: {n}", [f"reward/{n}/mean"]) for n in reward_names]
    panels += [PanelSpec(f"CV: {n}", [f"reward/{n}/cv"]) for n in reward_names]
    panels += [PanelSpec(f"Weight: {n}", [f"reward/{n}/weight"]) for n in reward_names]
    panels += [PanelSpec("Step time (s)", ["time/step"])]
    panels += [PanelSpec(f"eval/{m}", [f"eval/{m}"], kind="bar", x=None) for m in eval_metrics]
    avail = set(available_keys) if available_keys is not None else None
    return [p for p in panels if avail is None or p.kind == "line" or all(k in avail for k in p.y)]


def markdown_sections(results_md: str) -> list[tuple[str, str]]:
    """(heading, body) per ``## `` section of results.md; image links dropped (the report shows
    live panels instead of the PNG figures)."""
    sections, heading, body = [], "", []
    for line in results_md.splitlines():
        if line.startswith("# ") and not sections and not body:
            continue  # the page title: the report has its own
        if line.startswith("## "):
            if heading or any(x.strip() for x in body):
                sections.append((heading, "\n".join(body).strip()))
            heading, body = line[3:].strip(), []
        elif not re.match(r"^!\[[^\]]*\]\([^)]*\)\s*$", line):
            body.append(line)
    if heading or any(x.strip() for x in body):
        sections.append((heading, "\n".join(body).strip()))
    return [(h, b) for h, b in sections if b]


def build_report(entity: str, project: str, rewards: Sequence[str] | Mapping[str, Sequence[str]],
                 algorithms: Sequence[str] | None = None, *, results_md: str | None = None,
                 eval_metrics: Mapping[str, Sequence[str]] | None = None, available_keys: Iterable[str] | None = None,
                 title: str = "SAW reproduction: results", resolve_runsets: bool = False):
    """A ``wandb_workspaces.reports.v2.Report`` (not saved) mirroring results.md.

    ``rewards``: reward names (one task) or ``{task: reward names}``; ``results_md``: the text of
    results/results.md (its tables become markdown blocks); ``eval_metrics``: ``{task: names}``
    (default: :data:`EVAL_METRICS`). ``resolve_runsets``: give the panel grids' run sets the
    entity and project (W&B looks the project up: needs a login; off for the offline JSON, where
    the run sets fall back to the report's project)."""
    import wandb_workspaces.reports.v2 as wr  # optional: only to build W&B reports

    by_task = dict(rewards) if isinstance(rewards, Mapping) else {None: list(rewards)}
    eval_metrics = dict(EVAL_METRICS if eval_metrics is None else eval_metrics)
    blocks: list[Any] = [wr.P("Made by scripts/wandb_dashboard.py from the run directories: the tables of "
                              "results/results.md (scripts/make_tables.py) and the curves of its figures, live "
                              "from the runs (grouped by algorithm; bands: std over seeds).")]
    for heading, body in markdown_sections(results_md or ""):
        if heading:
            blocks.append(wr.H2(heading))
        blocks.append(wr.MarkdownBlock(text=body))
    blocks.append(wr.H2("Curves"))
    for task, names in by_task.items():
        if task:
            blocks.append(wr.H3(task))
        runset = wr.Runset(entity=entity if resolve_runsets else "", project=project if resolve_runsets else "",
                           name=task or "runs", filters=runset_filter(task, algorithms), groupby=[f"config.{GROUP_BY}"])
        panels = report_curves(names, eval_metrics.get(task, ()) if task else (), available_keys)
        blocks.append(wr.PanelGrid(runsets=[runset], panels=[_panel(p) for p in panels]))
    return wr.Report(entity=entity, project=project, title=title, blocks=blocks, width="fluid")


def report_panel_specs(rewards: Sequence[str] | Mapping[str, Sequence[str]],
                       eval_metrics: Mapping[str, Sequence[str]] | None = None,
                       available_keys: Iterable[str] | None = None) -> dict[str, list[PanelSpec]]:
    """The report's panels per task as plain data (the same list :func:`build_report` renders)."""
    by_task = dict(rewards) if isinstance(rewards, Mapping) else {None: list(rewards)}
    eval_metrics = dict(EVAL_METRICS if eval_metrics is None else eval_metrics)
    return {str(task or "runs"): report_curves(names, eval_metrics.get(task, ()) if task else (), available_keys)
            for task, names in by_task.items()}


def wandb_json(obj: Any) -> dict:
    """The JSON W&B stores for a workspace view or report (built offline: no network)."""
    return obj._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def spec_metric_keys(spec: Any) -> set[str]:
    """Metric keys in a W&B view/report JSON: every panel's ``metrics`` and non-default ``xAxis``."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("viewType") and isinstance(node.get("config"), dict):
                cfg = node["config"]
                found.update(str(m) for m in cfg.get("metrics") or [])
                if cfg.get("xAxis") and not str(cfg["xAxis"]).startswith("_"):
                    found.add(str(cfg["xAxis"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found


# ----------------------------------------------------------------------------- runs -> dashboard
@dataclass
class TaskSpec:
    """What the dashboard shows for one task: its rewards, methods and evaluation metrics."""

    task: str
    rewards: list[str]
    algorithms: list[str]
    eval_metrics: list[str]


def specs_from_runs(runs: Sequence[Any]) -> list[TaskSpec]:
    """One :class:`TaskSpec` per task of ``eval.runs.Run`` objects (rewards from metrics.jsonl,
    eval metrics: those of :data:`EVAL_METRICS` some run's eval.json has)."""
    out = []
    for task in sorted({r.task for r in runs}):
        rs = [r for r in runs if r.task == task]
        rewards: list[str] = []
        for r in rs:
            logged = r.reward_names()
            configured = [str(x.get("name") if isinstance(x, Mapping) else x)  # the task's order
                          for x in ((r.config.get("task") or {}).get("rewards") or [])]
            for n in [c for c in configured if c in logged] + logged:
                if n not in rewards:
                    rewards.append(n)
        algorithms = sorted({r.algorithm for r in rs})
        known = EVAL_METRICS.get(task, ())
        evaluated = {k for r in rs for k, v in ((r.eval or {}).get("metrics") or {}).items() if v is not None}
        eval_metrics = [m for m in known if m in evaluated] or list(known)
        out.append(TaskSpec(task, rewards, algorithms, eval_metrics))
    return out


def write_dashboard_json(out_dir: str | os.PathLike, entity: str, project: str, tasks: Sequence[TaskSpec], *,
                         results_md: str | None = None, available_keys: Iterable[str] | None = None,
                         with_wandb: bool = True) -> list[Path]:
    """Write ``workspace.json`` (one view per task) and ``report.json`` into ``out_dir``: the plain
    sections/panels and, with ``with_wandb`` (needs wandb-workspaces, no network), the JSON W&B
    stores for them. Returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = set(available_keys) if available_keys is not None else None
    views = []
    for t in tasks:
        sections = workspace_sections(t.rewards, eval_metrics=t.eval_metrics, available_keys=keys)
        view: dict[str, Any] = {"task": t.task, "algorithms": t.algorithms, "group_by": f"config.{GROUP_BY}",
                                "filters": runset_filter(t.task, t.algorithms),
                                "sections": [asdict(s) for s in sections], "panel_keys": sorted(panel_keys(sections))}
        if with_wandb:
            w = build_workspace(entity, project, t.rewards, t.algorithms, task=t.task, eval_metrics=t.eval_metrics,
                                available_keys=keys)
            view["name"] = w.name
            view["wandb_view"] = wandb_json(w)
        views.append(view)
    rewards = {t.task: t.rewards for t in tasks}
    evals = {t.task: t.eval_metrics for t in tasks}
    algorithms = sorted({a for t in tasks for a in t.algorithms})
    grids = report_panel_specs(rewards, evals, keys)
    report: dict[str, Any] = {"title": "SAW reproduction: results",
                              "markdown_sections": [h for h, _ in markdown_sections(results_md or "")],
                              "panel_grids": {k: [asdict(p) for p in v] for k, v in grids.items()},
                              "panel_keys": sorted({k for v in grids.values() for p in v for k in p.metric_keys()})}
    if with_wandb:
        report["wandb_report"] = wandb_json(build_report(entity, project, rewards, algorithms, results_md=results_md,
                                                         eval_metrics=evals, available_keys=keys))
    paths = [out / "workspace.json", out / "report.json"]
    atomic_write_text(paths[0], json.dumps({"entity": entity, "project": project, "views": views}, indent=1) + "\n")
    atomic_write_text(paths[1], json.dumps({"entity": entity, "project": project, **report}, indent=1) + "\n")
    return paths


# ----------------------------------------------------------------------------- offline run files
def offline_run_folders(run_dir: str | os.PathLike) -> list[Path]:
    """The W&B run folders of a run directory (``<run>/wandb/offline-run-*`` and ``run-*``), oldest first."""
    root = Path(run_dir) / "wandb"
    return sorted(p for p in root.glob("*run-*") if p.is_dir() and not p.is_symlink()
                  and re.match(r"(offline-)?run-\d{8}_\d{6}-", p.name))


def wandb_records(folder: str | os.PathLike) -> list[dict]:
    """The records of a W&B run folder's .wandb log, read with wandb's reader (``wandb leet inspect``)."""
    exe = shutil.which("wandb", path=str(Path(sys.executable).parent)) or shutil.which("wandb") or "wandb"
    out = subprocess.run([exe, "leet", "inspect", "--json", str(folder)], capture_output=True, text=True,
                         check=True, timeout=300)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip().startswith("{")]


def logged_keys(run_dir: str | os.PathLike, *, from_wandb: bool = True) -> set[str]:
    """Metric keys a run logged: from its W&B run files (history and summary) when it has them
    and ``from_wandb``, else from metrics.jsonl (training metrics only)."""
    keys: set[str] = set()
    folders = offline_run_folders(run_dir) if from_wandb else []
    for folder in folders:
        for rec in wandb_records(folder):
            kind = rec.get("type")
            if kind == "history":
                keys.update(rec["history"].get("item", {}))
            elif kind == "summary":
                keys.update(rec["summary"].get("update", {}))
    if not folders and (Path(run_dir) / "metrics.jsonl").is_file():
        for row in read_metrics(Path(run_dir) / "metrics.jsonl"):
            keys.update(row)
    # media (tables, images) are stored flattened: "<key>._type", "<key>.path", ...
    media = {k[: -len("._type")] for k in keys if k.endswith("._type")}
    keys = {k for k in keys if not any(k.startswith(m + ".") for m in media)} | media
    return {k for k in keys if not k.startswith("_")}


# ----------------------------------------------------------------------------- evaluation -> W&B
def _run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def _last_step(run_dir: Path) -> int | None:
    path = run_dir / "metrics.jsonl"
    steps = [int(r["step"]) for r in read_metrics(path) if "step" in r] if path.is_file() else []
    return max(steps) if steps else None


def resume_wandb_run(run_dir: str | os.PathLike, *, create: bool = True, mode: str | None = None,
                     job_type: str = "eval"):
    """Open the W&B run of a run directory for more logging: the id in ``<run>/wandb_run_id``
    (written by training), project/entity/group/tags/name/config from the run's config.yaml, as
    in training (``resume="allow"``). Without a stored id (e.g. a base-model evaluation folder)
    a new run is started and its id stored, when ``create``. Returns the W&B run, or None when
    the folder has no config.yaml, its config switches W&B off (``logger=none``, mode disabled)
    or wandb is missing."""
    run_dir = Path(run_dir)
    cfg = _run_config(run_dir)
    logger = cfg.get("logger") or {}
    if logger.get("backend", "none") != "wandb":  # also: no config.yaml (e.g. an oracle evaluation folder)
        return None
    mode = mode or os.environ.get("WANDB_MODE") or logger.get("mode") or "offline"
    if mode == "disabled":
        return None
    id_file = run_dir / RUN_ID_FILE
    run_id = id_file.read_text(encoding="utf-8").strip() if id_file.is_file() else ""
    if not run_id:
        if not create:
            return None
        run_id = str(logger.get("run_id") or "") or "".join(
            secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        atomic_write_text(id_file, run_id + "\n")
    try:
        import wandb  # optional: only when W&B logging is on
    except ImportError:  # pragma: no cover
        log.warning("wandb is not installed: nothing logged to W&B")
        return None
    run = wandb.init(project=logger.get("project") or "saw", entity=logger.get("entity"), group=logger.get("group"),
                     name=str(cfg.get("run_name") or run_dir.name), tags=list(logger.get("tags") or []),
                     config=cfg or None, dir=str(run_dir), mode=mode, job_type=job_type, id=run_id,
                     resume="allow", reinit="finish_previous")
    run.define_metric(STEP)
    run.define_metric(EVAL_STEP)
    run.define_metric("eval/*", step_metric=EVAL_STEP)
    return run


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def to_wandb_table(value: Any):
    """A ``wandb.Table`` from a wandb.Table, ``{"columns", "data"}``, a list of row dicts, or a
    mapping of mappings (e.g. eval.json's per_category: one row per key)."""
    import wandb  # optional: only when W&B logging is on

    if isinstance(value, wandb.Table):
        return value
    if isinstance(value, Mapping) and "columns" in value and "data" in value:
        return wandb.Table(columns=list(value["columns"]), data=[list(r) for r in value["data"]])
    if isinstance(value, Mapping):
        value = [{"key": k, **(v if isinstance(v, Mapping) else {"value": v})} for k, v in value.items()]
    rows = [dict(r) for r in value]
    columns: list[str] = []
    for r in rows:
        columns += [c for c in r if c not in columns]

    def cell(v: Any) -> Any:
        return v if v is None or isinstance(v, (str, int, float, bool)) else json.dumps(v)

    return wandb.Table(columns=columns, data=[[cell(r.get(c)) for c in columns] for r in rows])


def log_eval_to_wandb(run_dir: str | os.PathLike, metrics: Mapping[str, Any],
                      tables: Mapping[str, Any] | None = None, *, mode: str | None = None) -> str | None:
    """Log evaluation results into the training run's W&B run (see :func:`resume_wandb_run`):
    numeric ``metrics`` as ``eval/<name>`` at ``eval/step`` = the run's last training step (one
    history row after the training's steps; also the run summary, which bar charts and the runs
    table show), ``tables`` as ``eval/<name>`` W&B tables. Returns the W&B run id (None when the
    run does not log to W&B)."""
    run_dir = Path(run_dir)
    run = resume_wandb_run(run_dir, mode=mode)
    if run is None:
        return None
    try:
        last = _last_step(run_dir)
        row: dict[str, Any] = {f"eval/{k}": float(v) for k, v in metrics.items() if _is_number(v)}
        row[EVAL_STEP] = last if last is not None else 0
        for name, value in (tables or {}).items():
            row[f"eval/{name}"] = to_wandb_table(value)
        # after the training's last step (a resumed W&B run drops steps it has already seen)
        run.log(row, step=last + 1 if last is not None else None)
        return run.id
    finally:
        run.finish()


def log_tables_to_wandb(results_dir: str | os.PathLike, *, project: str | None = None, entity: str | None = None,
                        mode: str | None = None, run: Any = None) -> str | None:
    """Log the tables scripts/make_tables.py wrote into ``results_dir`` (``*.csv``: one W&B table
    each, ``tables/<name>``) and the folder (md, csv, tex, figures) as an artifact of type
    ``results``. Uses ``run`` or the active W&B run if there is one, else starts a run of job
    type ``tables`` (project ``saw``, group ``results``, files in ``<results_dir>/wandb``).
    Returns the run id; None when W&B is off (``WANDB_MODE=disabled``) or not installed."""
    results = Path(results_dir)
    mode = mode or os.environ.get("WANDB_MODE") or "offline"
    if mode == "disabled" and run is None:
        return None
    try:
        import wandb  # optional: only when W&B logging is on
    except ImportError:  # pragma: no cover
        return None
    own = run is None and wandb.run is None
    if run is None:
        run = wandb.run or wandb.init(project=project or "saw", entity=entity, group="results", job_type="tables",
                                      name=f"tables-{results.name}", dir=str(results), mode=mode,
                                      reinit="finish_previous")
    try:
        logged = {}
        for path in sorted(results.glob("*.csv")):
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            if rows:
                logged[f"tables/{path.stem}"] = wandb.Table(columns=rows[0], data=rows[1:])
        if logged:
            run.log(logged)
        artifact = wandb.Artifact(re.sub(r"[^A-Za-z0-9_.-]", "-", f"results-{results.name}"), type="results")
        for pattern in ("*.md", "*.csv", "*.tex"):
            for path in sorted(results.glob(pattern)):
                artifact.add_file(str(path))
        if (results / "figures").is_dir():
            artifact.add_dir(str(results / "figures"), name="figures")
        run.log_artifact(artifact)
        return run.id
    finally:
        if own:
            run.finish()
