"""Training-curve figures: per-reward curves per method, and SAW's CV and weight curves.

All functions build ``matplotlib.figure.Figure`` objects directly (no pyplot, no global backend
change): they save through the Agg canvas anywhere and display inline in notebooks.

- :func:`plot_reward_curves`: one panel per reward, ``reward/<name>/mean`` against the step, one
  line per method (mean over seeds, band = min..max over seeds).
- :func:`plot_saw_diagnostics`: the paper's asynchrony diagnostics for the SAW runs: per-reward
  ``reward/<name>/cv`` (top) and the SAW weight ``reward/<name>/weight`` (bottom), one column
  per SAW method.
- :func:`save_figures`: both, for every task, as PNG files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from eval.runs import Run, group_by_method, group_label

_COLORS = {"base": "#7f7f7f", "sft": "#bcbd22", "grpo": "#1f77b4", "grpo_saw": "#ff7f0e", "gdpo": "#2ca02c",
           "gdpo_saw": "#d62728", "grpo_gradient": "#9467bd", "gdpo_gradient": "#8c564b",
           "grpo_nostd": "#17becf"}


def seed_band(runs: Sequence[Run], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps [S], mean [S], min [S], max [S]) of metric ``key`` over the runs (seeds), on the
    union of their steps; a step missing in some runs uses the runs that have it."""
    per_run = [dict(zip(*run.series(key))) for run in runs]
    steps = sorted({s for d in per_run for s in d})
    if not steps:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    grid = np.full((len(per_run), len(steps)), np.nan)
    for i, d in enumerate(per_run):
        for j, s in enumerate(steps):
            if s in d:
                grid[i, j] = d[s]
    return np.asarray(steps), np.nanmean(grid, 0), np.nanmin(grid, 0), np.nanmax(grid, 0)


def _panel_grid(n: int, ncols: int = 3, size: tuple[float, float] = (4.2, 3.2)) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def reward_names(runs: Sequence[Run]) -> list[str]:
    """Reward names logged by any of the runs, in first-seen order."""
    names: list[str] = []
    for run in runs:
        for n in run.reward_names():
            if n not in names:
                names.append(n)
    return names


def plot_reward_curves(runs: Sequence[Run], task: str | None = None, title: str | None = None) -> Figure:
    """Per-reward training curves (``reward/<name>/mean``) per method; see the module docstring.

    ``task`` restricts to one task (default: all runs, which should then share their rewards).
    Raises ValueError when no run has training metrics.
    """
    groups = group_by_method([r for r in runs if r.metrics], task)
    if not groups:
        raise ValueError("no run with metrics.jsonl to plot (check the run directories)")
    names = reward_names([r for rs in groups.values() for r in rs])
    if not names:
        raise ValueError("the runs' metrics.jsonl have no reward/<name>/mean entries")
    fig, axes = _panel_grid(len(names))
    for ax, name in zip(axes, names):
        for key, rs in groups.items():
            steps, mean, lo, hi = seed_band(rs, f"reward/{name}/mean")
            if steps.size == 0:
                continue
            color = _COLORS.get(key[1]) if len({k[0] for k in groups}) == 1 else None
            line, = ax.plot(steps, mean, label=f"{group_label(key, groups)} (n={len(rs)})", color=color, lw=1.6,
                            marker="o" if len(steps) <= 20 else None, ms=3)
            color = line.get_color()
            if len(rs) > 1:
                ax.fill_between(steps, lo, hi, color=color, alpha=0.15, lw=0)
        ax.set_title(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_ylabel("mean reward")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or f"Training rewards{f' ({task})' if task else ''}")
    return fig


def plot_saw_diagnostics(runs: Sequence[Run], task: str | None = None, title: str | None = None) -> Figure:
    """CV (top row) and SAW weight (bottom row) of each reward against the step, one column per
    SAW method (mean over seeds, band = min..max). Raises ValueError without SAW runs."""
    groups = group_by_method([r for r in runs if r.metrics and r.uses_saw], task)
    if not groups:
        raise ValueError("no SAW run (algorithm weighting 'saw') with metrics.jsonl among the runs")
    ncols = len(groups)
    fig = Figure(figsize=(4.6 * ncols, 6.2), layout="constrained")
    axes = fig.subplots(2, ncols, squeeze=False)
    for col, (key, rs) in enumerate(groups.items()):
        names = reward_names(rs)
        for row, (stat, label) in enumerate((("cv", "CV of reward"), ("weight", "SAW weight"))):
            ax = axes[row, col]
            for name in names:
                steps, mean, lo, hi = seed_band(rs, f"reward/{name}/{stat}")
                if steps.size == 0:
                    continue
                line, = ax.plot(steps, mean, label=name, lw=1.6, marker="o" if len(steps) <= 20 else None, ms=3)
                if len(rs) > 1:
                    ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
            ax.set_title(f"{group_label(key, groups)} (n={len(rs)}): {label}")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("step")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if names:
                ax.legend(fontsize=8)
    fig.suptitle(title or f"SAW diagnostics{f' ({task})' if task else ''}: reward CV and weights")
    return fig


def save_figures(runs: Sequence[Run], out_dir: str | Path, dpi: int = 120) -> list[Path]:
    """PNG files of :func:`plot_reward_curves` and :func:`plot_saw_diagnostics` per task, in
    ``out_dir/figures``; tasks without (SAW) training metrics are skipped. Returns the paths."""
    out = Path(out_dir) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for task in sorted({r.task for r in runs if r.metrics}):
        task_runs = [r for r in runs if r.task == task]
        fig = plot_reward_curves(task_runs, task)
        path = out / f"rewards_{task}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
        if any(r.uses_saw and r.metrics for r in task_runs):
            fig = plot_saw_diagnostics(task_runs, task)
            path = out / f"saw_cv_weights_{task}.png"
            fig.savefig(path, dpi=dpi)
            paths.append(path)
    return paths
