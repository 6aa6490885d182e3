"""The synthetic testbed: a short run of every weighting finishes, and SAW reacts to saturation."""

import numpy as np
import pytest

from saw.algo import WEIGHTINGS
from saw.testbed.problem import make_problem
from saw.testbed.run import algorithms, markdown_table, run_all, summarise, t975


@pytest.fixture(scope="module")
def short():
    return run_all(["staged"], [0, 1], steps=6)


def test_every_weighting_on_both_hosts_runs_and_tables(short):
    names = {a.name for a in algorithms(make_problem("staged"))}
    for host in ("grpo", "gdpo"):
        for w in WEIGHTINGS.names():
            assert (host if w == "static" else f"{host}_{w}") in names
    assert {"grpo_mo", "gdpo_dvao"} <= names
    assert set(short["staged"]) == names
    for rec in short["staged"].values():
        assert rec["reward"].shape == (2, 6, 2) and np.isfinite(rec["reward"]).all()
        assert np.allclose(rec["weight"].sum(-1), 1.0)
    rows = summarise(short)
    assert len(rows) == len(names) * 2
    assert {(r["algorithm"], r["objective"]) for r in rows} == {(n, o) for n in names for o in ("easy", "hard")}
    assert all("d_auc" in r for r in rows if r["algorithm"] not in ("grpo", "gdpo"))
    table = markdown_table(rows)
    assert "not evidence about LLM" in table and "| gdpo_saw | easy |" in table


def test_saw_weight_on_the_saturated_objective_falls_below_uniform():
    """staged: the easy objective saturates early; SAW's weight on it drops below 1/K afterwards,
    static stays at exactly 1/K."""
    res = run_all(["staged"], [0, 1], steps=100, algos=["gdpo", "gdpo_saw"])["staged"]
    assert res["gdpo_saw"]["reward"][:, 60:, 0].mean() > 0.85  # it did saturate
    assert res["gdpo_saw"]["weight"][:, 50:, 0].mean() < 0.5 - 0.05
    assert np.allclose(res["gdpo"]["weight"][:, :, 0], 0.5)


def test_t_quantiles():
    assert t975(1) == pytest.approx(12.706) and t975(19) == pytest.approx(2.093, abs=2e-3)
    assert t975(1000) == pytest.approx(1.962, abs=2e-3)
