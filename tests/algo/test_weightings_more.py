"""SA-MRPO weighting, MO-GRPO and DVAO estimators: hand-computed cases, loop references, properties."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from saw.algo import ESTIMATORS, WEIGHTINGS
from saw.algo.advantages import compute_advantages
from saw.algo.weighting import build_weighting
from saw.algo.weightings_more import dvao_group_weights, group_std, saturation


# ---------------------------------------------------------------- plain-loop references
def ref_std(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def ref_znorm(col, groups, eps=1e-6):
    out = [0.0] * len(col)
    for g in set(groups):
        idx = [i for i, gg in enumerate(groups) if gg == g]
        if len(idx) < 2:
            continue
        vals = [col[i] for i in idx]
        m, s = sum(vals) / len(vals), ref_std(vals)
        for i in idx:
            out[i] = (col[i] - m) / (s + eps) if s > 0 else 0.0
    return out


def ref_mo_grpo(rows, groups, coeffs, eps=1e-6):
    k = len(rows[0])
    z = [ref_znorm([r[j] for r in rows], groups, eps) for j in range(k)]
    total = [sum(coeffs[j] * z[j][i] for j in range(k)) for i in range(len(rows))]
    return ref_znorm(total, groups, eps)


def ref_dvao(rows, groups, coeffs, eps=1e-6):
    k = len(rows[0])
    z = [ref_znorm([r[j] for r in rows], groups, eps) for j in range(k)]
    out = []
    for i in range(len(rows)):
        idx = [t for t, g in enumerate(groups) if g == groups[i]]
        sig = [ref_std([rows[t][j] for t in idx]) if len(idx) > 1 else 0.0 for j in range(k)]
        tot = sum(c * s for c, s in zip(coeffs, sig))
        w = [c * s / tot if tot > 0 else 0.0 for c, s in zip(coeffs, sig)]
        out.append(sum(w[j] * z[j][i] for j in range(k)))
    return out


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------- registration
def test_registered_with_declared_needs():
    assert "sa_mrpo" in WEIGHTINGS and "mo_grpo" in ESTIMATORS and "dvao" in ESTIMATORS
    assert ESTIMATORS.meta("mo_grpo")["per_reward"] and ESTIMATORS.meta("dvao")["per_reward"]
    w = build_weighting("sa_mrpo", 2, reward_max=1.0)
    assert not w.normalized and w.needs_reward_min and not w.needs_gradients


def test_sa_mrpo_options_are_checked():
    with pytest.raises(ValueError, match="SA-MRPO needs each reward's theoretical maximum"):
        build_weighting("sa_mrpo", 2)(_t([[0.0, 0.0], [1.0, 0.0]]), reward_min=_t([0.0, 0.0]),
                                      priorities=_t([1.0, 1.0]))
    # the maxima the caller passes (the trainer: the rewards' declared ones) serve when none is configured
    passed, _ = build_weighting("sa_mrpo", 2)(_t([[0.0, 0.0], [1.0, 0.0]]), reward_min=_t([0.0, 0.0]),
                                               priorities=_t([1.0, 1.0]), reward_max=_t([1.0, 2.0]))
    configured, _ = build_weighting("sa_mrpo", 2, reward_max=[1.0, 2.0])(
        _t([[0.0, 0.0], [1.0, 0.0]]), reward_min=_t([0.0, 0.0]), priorities=_t([1.0, 1.0]))
    torch.testing.assert_close(passed, configured)
    torch.testing.assert_close(passed, _t([0.5 ** 0.5, 1.0]))  # saturation 0.5 and 0 -> (1 - s)^0.5
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        build_weighting("sa_mrpo", 2, gamma=-1, reward_max=1.0)
    with pytest.raises(ValueError, match="3 entries"):
        build_weighting("sa_mrpo", 2, reward_max=[1, 1, 1])
    w = build_weighting("sa_mrpo", 2, reward_max=[1.0, 0.0])
    with pytest.raises(ValueError, match="must exceed"):
        w(_t([[0.0, 0.0], [1.0, 0.0]]), reward_min=_t([0.0, 0.0]), priorities=_t([1.0, 1.0]))


# ---------------------------------------------------------------- SA-MRPO, by hand
def test_sa_mrpo_hand_computed():
    # r1 in [0, 1] has batch mean 0.75 -> s = 0.75, discount (0.25)^0.5 = 0.5
    # r2 in [-3, 3] has batch mean 0 -> s = 0.5, discount 0.5^0.5
    r = _t([[1, -3], [1, 3], [1, 0], [0, 0]])
    w = build_weighting("sa_mrpo", 2, gamma=0.5, reward_max=[1.0, 3.0])
    weights, info = w(r, reward_min=_t([0, -3]), priorities=_t([2.0, 1.0]))
    assert info["saturation"].tolist() == pytest.approx([0.75, 0.5])
    assert weights.tolist() == pytest.approx([2 * 0.5, math.sqrt(0.5)])


def test_sa_mrpo_gamma_zero_is_gdpo_and_nan_is_skipped():
    r = _t([[1, 0.2], [0, float("nan")], [1, 0.6], [1, 0.4]])
    g = torch.tensor([0, 0, 1, 1])
    rmin = [0.0, 0.0]
    a0, i0 = compute_advantages(r, g, estimator="gdpo", weighting=build_weighting("sa_mrpo", 2, gamma=0.0,
                                                                                  reward_max=1.0),
                                reward_min=rmin)
    a1, _ = compute_advantages(r, g, estimator="gdpo", weighting="static", reward_min=rmin)
    assert torch.allclose(a0, a1)
    assert i0["saturation"].tolist() == pytest.approx([0.75, 0.4])  # NaN left out of the mean


def test_saturation_is_clipped_and_empty_column_is_zero():
    r = _t([[2.0, float("nan")], [3.0, float("nan")]])
    assert saturation(r, _t([0, 0]), _t([1, 1])).tolist() == [1.0, 0.0]


def test_sa_mrpo_discounts_the_saturated_reward_on_gdpo():
    # reward 0 saturated (mean 7/8), reward 1 half-way: its advantage dominates after the discount
    r = _t([[1, 1], [1, 0], [1, 1], [0, 0], [1, 1], [1, 0], [1, 0], [1, 1]])
    g = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    _, info = compute_advantages(r, g, estimator="gdpo", weighting=build_weighting("sa_mrpo", 2, reward_max=1.0),
                                 reward_min=[0, 0])
    assert info["weights"].tolist() == pytest.approx([math.sqrt(1 / 8), math.sqrt(1 / 2)])


# ---------------------------------------------------------------- MO-GRPO, by hand
def test_mo_grpo_hand_computed():
    # one group of 3, r1 = [0, 1, 2] (z = [-1, 0, 1]), r2 = [10, 10, 40] (z = [-1/sqrt3, -1/sqrt3, 2/sqrt3])
    r = _t([[0, 10], [1, 10], [2, 40]])
    g = torch.zeros(3, dtype=torch.long)
    a, info = compute_advantages(r, g, estimator="mo_grpo", eps=0.0)
    s3 = math.sqrt(3)
    total = [-1 - 1 / s3, -1 / s3, 1 + 2 / s3]
    assert info["scalar_reward"].tolist() == pytest.approx(total)
    m = sum(total) / 3
    sd = ref_std(total)
    assert a.tolist() == pytest.approx([(t - m) / sd for t in total])


def test_mo_grpo_is_invariant_to_each_rewards_scale():
    torch.manual_seed(0)
    r = torch.rand(12, 3, dtype=torch.float64)
    g = torch.arange(12) // 4
    a, _ = compute_advantages(r, g, estimator="mo_grpo", eps=0.0)
    b, _ = compute_advantages(r * torch.tensor([100.0, 0.01, 7.0]) + 5, g, estimator="mo_grpo", eps=0.0)
    assert torch.allclose(a, b, atol=1e-5)


# ---------------------------------------------------------------- DVAO, by hand
def test_dvao_hand_computed():
    # group 0: r1 = [0, 1] (std 1/sqrt2, z = -+0.5 sqrt2), r2 = [0, 0] flat -> all weight on r1
    # group 1: r1 = [0, 1], r2 = [0, 2] (std sqrt2, same z) -> weights [1/3, 2/3]
    r = _t([[0, 0], [1, 0], [0, 0], [1, 2]])
    g = torch.tensor([0, 0, 1, 1])
    wg = dvao_group_weights(r, _t([1, 1]), g, 2)
    assert wg.tolist() == [pytest.approx([1.0, 0.0]), pytest.approx([1 / 3, 2 / 3])]
    a, info = compute_advantages(r, g, estimator="dvao", eps=0.0)
    h = math.sqrt(0.5)
    assert a.tolist() == pytest.approx([-h, h, -h, h])
    assert info["dvao_weights"].tolist() == pytest.approx([2 / 3, 1 / 3])


def test_dvao_static_weights_scale_cancels_and_flat_group_is_zero():
    r = _t([[0, 0], [1, 3], [1, 1], [1, 1]])
    g = torch.tensor([0, 0, 1, 1])
    a1, _ = compute_advantages(r, g, estimator="dvao", weights=[1.0, 2.0])
    a2, _ = compute_advantages(r, g, estimator="dvao", weights=[10.0, 20.0])
    assert torch.allclose(a1, a2)
    assert a1[2:].tolist() == [0.0, 0.0]


def test_group_std_matches_loop():
    r = _t([[0, 1], [2, float("nan")], [4, 3], [1, 1]])
    g = torch.tensor([0, 0, 0, 1])
    s = group_std(r, g, 2)
    assert s[0].tolist() == pytest.approx([2.0, ref_std([1, 3])])
    assert s[1].tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- against the loop references
rows_st = st.integers(2, 4).flatmap(lambda k: st.lists(
    st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, -1.0]), min_size=k, max_size=k), min_size=2, max_size=12))


@settings(max_examples=40, deadline=None)
@given(rows=rows_st, gsize=st.integers(1, 4), data=st.data())
def test_estimators_match_loop_reference(rows, gsize, data):
    k = len(rows[0])
    coeffs = data.draw(st.lists(st.floats(0.1, 3.0), min_size=k, max_size=k))
    groups = [i // gsize for i in range(len(rows))]
    r, g = _t(rows), torch.tensor(groups)
    a, _ = compute_advantages(r, g, estimator="mo_grpo", weights=coeffs)
    assert a.tolist() == pytest.approx(ref_mo_grpo(rows, groups, coeffs), abs=1e-6)
    a, _ = compute_advantages(r, g, estimator="dvao", weights=coeffs)
    assert a.tolist() == pytest.approx(ref_dvao(rows, groups, coeffs), abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(rows=rows_st, gamma=st.floats(0.0, 3.0), gsize=st.integers(1, 4))
def test_weights_are_finite_non_negative_and_bounded(rows, gamma, gsize):
    k = len(rows[0])
    r, g = _t(rows), torch.tensor([i // gsize for i in range(len(rows))])
    rmin = torch.full((k,), -1.0, dtype=torch.float64)
    w, _ = build_weighting("sa_mrpo", k, gamma=gamma, reward_max=2.0)(r, reward_min=rmin,
                                                                       priorities=torch.ones(k, dtype=torch.float64))
    assert torch.isfinite(w).all() and (w >= 0).all() and (w <= 1).all()
    wg = dvao_group_weights(r, torch.ones(k, dtype=torch.float64), g, int(g.max()) + 1)
    sums = wg.sum(1)
    assert torch.isfinite(wg).all() and (wg >= 0).all()
    assert all(s == pytest.approx(1.0) or s == 0.0 for s in sums.tolist())  # on the simplex, or a flat group
    for est in ("mo_grpo", "dvao"):
        a, _ = compute_advantages(r, g, estimator=est)
        assert torch.isfinite(a).all()
