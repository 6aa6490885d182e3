"""A synthetic multi-objective RL testbed for the weighting mechanism (issue 18).

    problem.py   bandit problems whose objectives saturate at controlled stages
    run.py       training with saw.algo's compute_advantages + policy_loss, statistics, tables, figures

An instrument for how weightings react to saturation, not evidence about LLMs. Entry point:
scripts/testbed.py (``make testbed``).
"""
