"""Figure helpers: the seed band by hand, the panels drawn, and clear errors without data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.figures import plot_reward_curves, plot_saw_diagnostics, seed_band
from eval.runs import Run, load_runs


def run_with(values: dict[int, float], algorithm: str = "grpo_saw") -> Run:
    rows = [{"step": s, "reward/r/mean": v, "reward/r/cv": v / 10, "reward/r/weight": 1.0} for s, v in values.items()]
    return Run(path=Path("."), config={"algorithm": {"weighting": "saw"}}, task="toolcall", algorithm=algorithm,
               seed=0, experiment="e", metrics=rows)


def test_seed_band_by_hand():
    a, b = run_with({1: 1.0, 2: 3.0}), run_with({2: 5.0, 3: 7.0})
    steps, mean, lo, hi = seed_band([a, b], "reward/r/mean")
    assert steps.tolist() == [1, 2, 3]
    assert mean.tolist() == [1.0, 4.0, 7.0] and lo.tolist() == [1.0, 3.0, 7.0] and hi.tolist() == [1.0, 5.0, 7.0]
    steps, *_ = seed_band([a], "reward/missing/mean")
    assert steps.size == 0


def test_figures_from_synthetic_runs(synthetic_runs):
    runs = load_runs([synthetic_runs])
    fig = plot_reward_curves(runs, "toolcall")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["toolcall_format", "toolcall_correctness"]
    # one line per method, the mean over seeds: GRPO seeds 0 and 1 have offsets 0 and 0.2
    grpo = next(line for line in axes[0].get_lines() if line.get_label().startswith("GRPO (n=2)"))
    assert np.allclose(grpo.get_ydata(), [0.2, 0.3, 0.4])
    fig = plot_saw_diagnostics(runs, "toolcall")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["GRPO+SAW (n=2): CV of reward", "GRPO+SAW (n=2): SAW weight"]
    weight_lines = fig.axes[1].get_lines()
    assert [ln.get_label() for ln in weight_lines] == ["toolcall_format", "toolcall_correctness"]
    assert np.allclose(weight_lines[0].get_ydata(), [0.5, 0.7, 0.7])


def test_plot_errors_are_clear():
    with pytest.raises(ValueError, match="metrics.jsonl"):
        plot_reward_curves([])
    with pytest.raises(ValueError, match="SAW"):
        plot_saw_diagnostics([Run(Path("."), {"algorithm": {"weighting": "static"}}, "toolcall", "grpo", 0, "e",
                                  [{"step": 1, "reward/r/mean": 1.0}])])
