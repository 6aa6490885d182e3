#!/usr/bin/env python
"""Synthetic multi-objective testbed: every weighting (both hosts) x seeds x variants (issue 18).

    python scripts/testbed.py [--seeds 20] [--steps 150] [--variants staged,unsaturated] [--out results/testbed]

Prints the summary table as markdown and writes <out>/summary.md, summary.csv, curves_<variant>.png.
An instrument for the weighting mechanism (saw/testbed), not evidence about LLMs.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saw.testbed.problem import VARIANTS  # noqa: E402
from saw.testbed.run import CAVEAT, markdown_table, plot, run_all, summarise  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 per algorithm and variant")
    ap.add_argument("--steps", type=int, default=150, help="training steps per run")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    ap.add_argument("--algorithms", default=None, help="comma-separated subset (default: all)")
    ap.add_argument("--out", default="results/testbed", help="output folder")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        ap.error(f"unknown variant(s) {bad}; valid: {', '.join(VARIANTS)}")
    algos = args.algorithms.split(",") if args.algorithms else None
    t0 = time.perf_counter()
    results = run_all(variants, list(range(args.seeds)), steps=args.steps, algos=algos)
    rows = summarise(results)
    table = markdown_table(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(table + "\n")
    keys = sorted({key for r in rows for key in r}, key=lambda s: (s not in ("variant", "algorithm", "objective"), s))
    with open(out / "summary.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    figures = [] if args.no_plots else plot(results, str(out / "curves"))
    print(table)
    print(f"\n{CAVEAT}\nwrote {out / 'summary.md'}, {out / 'summary.csv'}" + "".join(f", {f}" for f in figures)
          + f" in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
