"""W&B dashboard: sync the offline runs, save the workspace view and the results report.

    python scripts/wandb_dashboard.py --entity ME --project saw --runs outputs/embedded_toolcall
    python scripts/wandb_dashboard.py --project saw --runs outputs --offline-json-only
    make dashboard ENTITY=ME

1. Reads the run directories (config.yaml, metrics.jsonl, eval.json) and writes the view and the
   report as JSON into --out (default results/dashboard/: workspace.json, report.json), always,
   without network (eval/dashboard.py).
2. Online (logged in to W&B, no --offline-json-only): ``wandb sync`` of every run directory's
   offline W&B folders (``<run>/wandb/offline-run-*``: all launches of one training run and its
   evaluation are one W&B run, synced in order of start time) and of the tables run of
   --results (``<results>/wandb``), into --entity/--project; then saves one workspace view per
   task and the report, and prints their URLs.
3. Offline: prints the commands and saves it would run.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.dashboard import (
    DASHBOARD_DIR,
    build_report,
    build_workspace,
    logged_keys,
    offline_run_folders,
    specs_from_runs,
    workspace_sections,
    write_dashboard_json,
)
from eval.runs import load_runs

log = logging.getLogger("wandb_dashboard")


def wandb_exe() -> str:
    exe = Path(sys.executable).with_name("wandb")
    return str(exe) if exe.exists() else "wandb"


def sync_commands(folders_per_run: dict[Path, list[Path]], entity: str | None, project: str) -> list[list[str]]:
    """One ``wandb sync`` per run directory (its folders together: a resumed run's launches and its
    evaluation are synced in order of start time as one run)."""
    cmds = []
    for folders in folders_per_run.values():
        offline = [f for f in folders if f.name.startswith("offline-run-")]
        if offline:
            cmds.append([wandb_exe(), "sync", "--project", project] + (["--entity", entity] if entity else [])
                        + [str(f) for f in offline])
    return cmds


def logged_in() -> str | None:
    """The default entity when a W&B login is configured, else None (no network call when there is no key)."""
    try:
        import wandb

        api = wandb.Api(timeout=20)
        return api.default_entity or ""
    except Exception as exc:  # noqa: BLE001 -- no API key, no network, bad host: all mean offline
        log.info("not logged in to W&B (%s): offline", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entity", default=None, help="W&B entity (default: your default entity when online)")
    parser.add_argument("--project", default="saw", help="W&B project (default: saw)")
    parser.add_argument("--runs", nargs="+", default=["outputs"],
                        help="run directories, globs or folders holding run dirs (default: outputs)")
    parser.add_argument("--results", default="results", help="make_tables output (results.md, tables run); default results/")
    parser.add_argument("--out", default=None, help=f"where the JSON goes (default: <results>/{DASHBOARD_DIR})")
    parser.add_argument("--offline-json-only", action="store_true", help="write the JSON only; sync and save nothing")
    parser.add_argument("--no-sync", action="store_true", help="save the view and report without syncing runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    runs = load_runs(args.runs)
    if not runs:
        parser.error(f"no run directory (with config.yaml) found under {args.runs}")
    tasks = specs_from_runs(runs)
    keys: set[str] = set()
    for run in runs:  # the training keys of metrics.jsonl decide the optional panels (no wandb call)
        keys |= logged_keys(run.path, from_wandb=False)
    results = Path(args.results)
    results_md = (results / "results.md").read_text(encoding="utf-8") if (results / "results.md").is_file() else None
    entity = args.entity
    online = None if args.offline_json_only else logged_in()
    if online is not None and not entity:
        entity = online
    out = Path(args.out) if args.out else results / DASHBOARD_DIR
    paths = write_dashboard_json(out, entity or "<entity>", args.project, tasks, results_md=results_md,
                                 available_keys=keys)
    print(f"read {len(runs)} runs ({', '.join(f'{t.task}: {len(t.algorithms)} methods' for t in tasks)}); "
          f"wrote {', '.join(map(str, paths))}")
    if results_md is None:
        print(f"note: no {results / 'results.md'} (run scripts/make_tables.py first): the report has curves only")

    folders = {run.path: offline_run_folders(run.path) for run in runs}
    folders[results] = offline_run_folders(results)  # log_tables_to_wandb's run
    cmds = [] if args.no_sync else sync_commands(folders, entity, args.project)
    never = [str(r.path) for r in runs if not folders[r.path]]
    if never:
        print(f"{len(never)} runs have no W&B files (trained with logger=none?): {', '.join(never[:5])}"
              + (" ..." if len(never) > 5 else ""))
    if online is None:
        why = "--offline-json-only" if args.offline_json_only else "not logged in (wandb login, or WANDB_API_KEY)"
        print(f"offline ({why}); online this would:")
        for cmd in cmds:
            print("  " + shlex.join(cmd))
        for t in tasks:
            sections = workspace_sections(t.rewards, eval_metrics=t.eval_metrics, available_keys=keys)
            print(f"  save the workspace view 'SAW {t.task}' in {entity or '<entity>'}/{args.project}: "
                  + "; ".join(f"{s.name} ({len(s.panels)})" for s in sections))
        print(f"  save the report 'SAW reproduction: results' ({len(tasks)} tasks"
              + (", tables of results.md" if results_md else "") + ")")
        print("view the runs locally meanwhile: wandb leet <run>/wandb")
        return 0

    failed = 0
    for cmd in cmds:
        print("$ " + shlex.join(cmd), flush=True)
        failed += subprocess.run(cmd, check=False).returncode != 0
    for t in tasks:
        view = build_workspace(entity, args.project, t.rewards, t.algorithms, task=t.task, eval_metrics=t.eval_metrics,
                               available_keys=keys)
        view.save()
        print(f"workspace view ({t.task}): {view.url}")
    report = build_report(entity, args.project, {t.task: t.rewards for t in tasks},
                          sorted({a for t in tasks for a in t.algorithms}), results_md=results_md,
                          eval_metrics={t.task: t.eval_metrics for t in tasks}, available_keys=keys,
                          resolve_runsets=True)
    report.save()
    print(f"report: {report.url}")
    if failed:
        print(f"{failed} wandb sync commands failed (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
