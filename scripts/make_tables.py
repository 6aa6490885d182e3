"""Tables and figures from finished runs.

    python scripts/make_tables.py outputs/embedded_toolcall/* outputs/embedded_summarize/* --out results/
    python scripts/make_tables.py outputs --out results/        (every run dir one or two levels down)

Reads each run directory (config.yaml, metrics.jsonl, eval.json; base-model evaluations are run
directories with algorithm "base") and writes into --out:

- table1_toolcall.{md,tex,csv}: BFCL v4 Non-Live / Live / Multi-Turn / Overall / format rate;
- table2_summarize.{md,tex,csv}: quality, conciseness, total, ROUGE, length (+ judge);
- training_<task>.{md,tex,csv}: first and last batch mean of every reward per method;
- overhead_<task>.{md,tex,csv}: per-step time and phases per method, SAW's extra cost;
- figures/rewards_<task>.png, figures/saw_cv_weights_<task>.png;
- results.md: all of the above with the SAW paper's numbers beside ours.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories, glob patterns, or folders holding run dirs")
    parser.add_argument("--out", default="results", help="output folder (default: results/)")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument("--wandb", action="store_true", help="also log the tables (W&B tables + a results artifact)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    from eval.runs import load_runs
    from eval.tables import write_tables

    runs = load_runs(args.runs)
    if not runs:
        parser.error(f"no run directory (with config.yaml) found under {args.runs}")
    figures = []
    if not args.no_figures:
        from eval.figures import save_figures

        figures = save_figures(runs, args.out)
    paths = write_tables(runs, args.out, figures)
    print(f"read {len(runs)} runs; wrote {len(paths) + len(figures)} files to {args.out}/:")
    for p in list(paths) + list(figures):
        print(f"  {p}")
    if args.wandb:
        from eval.dashboard import log_tables_to_wandb

        log_tables_to_wandb(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
