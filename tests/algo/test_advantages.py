"""SAW weighting and advantage estimators: hand-computed cases, a loop reference, properties."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from saw.algo.advantages import compute_advantages, group_normalise, whiten_advantages
from saw.algo.weighting import saw_weights


# ---------------------------------------------------------------- plain-loop reference
def ref_std(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def ref_saw_weights(rows, rmin, delta=1e-8):
    k = len(rows[0])
    cvs = []
    for j in range(k):
        col = [r[j] - rmin[j] + delta for r in rows if not math.isnan(r[j])]
        if len(col) < 2:
            cvs.append(0.0)
            continue
        m = sum(col) / len(col)
        cvs.append(ref_std(col) / (abs(m) + delta))
    tot = sum(cvs)
    return [c / tot for c in cvs] if tot >= delta else [1.0 / k] * k


def ref_group_norm(values, groups, eps, scale=True):
    out = [0.0] * len(values)
    for g in set(groups):
        idx = [i for i, gg in enumerate(groups) if gg == g and not math.isnan(values[i])]
        if len(idx) < 2:
            continue
        vals = [values[i] for i in idx]
        m = sum(vals) / len(vals)
        s = ref_std(vals)
        for i in idx:
            out[i] = (values[i] - m) / (s + eps) if scale else values[i] - m
    return out


def ref_advantages(rows, groups, estimator, weighting, weights, rmin, eps=1e-6, delta=1e-8):
    k = len(rows[0])
    alpha = weights or [1.0] * k
    if weighting == "saw":
        w = ref_saw_weights(rows, rmin, delta)
        coeffs = [w[j] * alpha[j] * (k if estimator == "gdpo" else 1) for j in range(k)]
    else:
        coeffs = list(alpha)
    if estimator in ("grpo", "grpo_nostd"):
        total = [sum(c * (0.0 if math.isnan(x) else x) for c, x in zip(coeffs, r)) for r in rows]
        return ref_group_norm(total, groups, eps, scale=estimator == "grpo")
    per = [ref_group_norm([r[j] for r in rows], groups, eps) for j in range(k)]
    adv = [sum(coeffs[j] * per[j][i] for j in range(k)) for i in range(len(rows))]
    # GDPO's default batch whitening: verl's masked_whiten, one token per response here
    m = sum(adv) / len(adv)
    var = ref_std(adv) ** 2
    return [(a - m) / math.sqrt(var + 1e-8) for a in adv]


# ---------------------------------------------------------------- hand-computed cases
def test_gdpo_collapse_example():
    """Two rollouts, two binary rewards: GRPO cannot tell (0,1), (0,2), (1,2) apart; GDPO can."""
    pairs = {  # totals (0,1): rewards [0,0] vs [1,0]; (0,2): [0,0] vs [1,1]; (1,2): [1,0] vs [1,1]
        "01": [[0.0, 0.0], [1.0, 0.0]],
        "02": [[0.0, 0.0], [1.0, 1.0]],
        "12": [[1.0, 0.0], [1.0, 1.0]],
    }
    rows = sum(pairs.values(), [])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    r = torch.tensor(rows, dtype=torch.float64)
    grpo, _ = compute_advantages(r, groups, estimator="grpo", eps=0.0)
    expected = torch.tensor([-1, 1, -1, 1, -1, 1], dtype=torch.float64) / math.sqrt(2)
    torch.testing.assert_close(grpo, expected, atol=1e-12, rtol=0)

    gdpo, _ = compute_advantages(r, groups, estimator="gdpo", whiten="none", eps=0.0)
    # per-reward normalised advantages summed: group "02" gets 2x the magnitude of the others
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(gdpo, torch.tensor([-s, s, -2 * s, 2 * s, -s, s], dtype=torch.float64))
    assert gdpo[3] > gdpo[1]


def test_saw_weights_by_hand():
    # reward 0 saturated (all 1), reward 1 spread over [0, 2]; minima 0 and 0
    r = torch.tensor([[1.0, 0.0], [1.0, 2.0], [1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    w = saw_weights(r, [0.0, 0.0], delta=0.0 + 1e-12)
    # cv_0 = 0; cv_1 = std([0,2,1,1]) / 1 = sqrt(2/3)
    torch.testing.assert_close(w, torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-9, rtol=0)
    r2 = torch.tensor([[0.0, -3.0], [1.0, 3.0], [1.0, -3.0], [0.0, 3.0]], dtype=torch.float64)
    w2 = saw_weights(r2, [0.0, -3.0])
    # format column {0,1,1,0}: mean 0.5, std sqrt(1/3) -> cv 1.1547; correctness shifted {0,6,0,6}:
    # mean 3, std sqrt(12) -> cv 1.1547: equal CVs -> equal weights
    torch.testing.assert_close(w2, torch.tensor([0.5, 0.5], dtype=torch.float64), atol=1e-6, rtol=0)


def test_saw_weights_handle_nan_and_tiny_columns():
    nan = float("nan")
    r = torch.tensor([[nan, 0.0], [1.0, 1.0], [nan, 3.0]], dtype=torch.float64)
    w = saw_weights(r, [0.0, 0.0])
    # column 0 has one valid entry -> CV 0, all weight on column 1
    torch.testing.assert_close(w, torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert torch.isfinite(w).all()


def test_group_of_one_gets_zero_and_unequal_groups():
    r = torch.tensor([[5.0], [1.0], [2.0], [4.0], [0.0], [9.0]])
    g = torch.tensor([7, 3, 3, 3, 11, 11])
    adv, _ = compute_advantages(r, g, estimator="grpo")
    expected = ref_advantages(r.tolist(), g.tolist(), "grpo", "static", None, [0.0])
    torch.testing.assert_close(adv.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-5, rtol=0)
    assert adv[0] == 0.0


def test_token_whitening_matches_expanded_tokens():
    adv = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    lengths = torch.tensor([3, 1, 2, 4])
    out = whiten_advantages(adv, mode="token", token_counts=lengths, token_eps=0.0)
    expanded = adv.repeat_interleave(lengths)
    ref = (expanded - expanded.mean()) / expanded.std()
    torch.testing.assert_close(out.repeat_interleave(lengths), ref)


def test_aliases_and_unknown_names():
    r = torch.rand(8, 2, dtype=torch.float64)
    g = torch.arange(8) // 4
    a1, i1 = compute_advantages(r, g, estimator="gdpo-h", reward_min=[0, 0])
    a2, i2 = compute_advantages(r, g, estimator="gdpo", weighting="saw", reward_min=[0, 0])
    torch.testing.assert_close(a1, a2)
    with pytest.raises(ValueError, match="valid names: .*gdpo.*grpo"):
        compute_advantages(r, g, estimator="ppo")
    with pytest.raises(ValueError, match="valid names: .*saw.*static"):
        compute_advantages(r, g, estimator="grpo", weighting="magic")
    with pytest.raises(ValueError, match="reward_min"):
        compute_advantages(r, g, estimator="grpo", weighting="saw")
    with pytest.raises(ValueError, match="K=2"):
        compute_advantages(r, g, estimator="grpo", weights=[1.0, 2.0, 3.0])


@pytest.mark.parametrize("estimator", ["grpo", "gdpo", "grpo_nostd"])
@pytest.mark.parametrize("weighting", ["static", "saw"])
def test_vectorised_matches_loop_reference(estimator, weighting):
    gen = torch.Generator().manual_seed(0)
    for trial in range(5):
        n_groups, k = 6, 3
        sizes = torch.randint(1, 6, (n_groups,), generator=gen)
        groups = torch.repeat_interleave(torch.arange(n_groups) * 3 + 1, sizes)
        n = int(sizes.sum())
        r = torch.randint(-3, 4, (n, k), generator=gen).to(torch.float64) * torch.rand(n, k, generator=gen, dtype=torch.float64)
        if trial % 2:
            r[torch.rand(n, k, generator=gen) < 0.15] = float("nan")
        alpha = (torch.rand(k, generator=gen, dtype=torch.float64) + 0.5).tolist()
        rmin = [-3.0] * k
        got, info = compute_advantages(r, groups, estimator=estimator, weighting=weighting,
                                       weights=alpha, reward_min=rmin)
        exp = ref_advantages(r.tolist(), groups.tolist(), estimator, weighting, alpha, rmin)
        torch.testing.assert_close(got, torch.tensor(exp, dtype=torch.float64), atol=1e-8, rtol=1e-8)
        assert info["weights"].shape == (k,) and info["cv"].shape == (k,)


# ---------------------------------------------------------------- properties
finite = st.floats(min_value=-3, max_value=3, allow_nan=False, width=32)


@st.composite
def batches(draw, k=None):
    k = k or draw(st.integers(1, 4))
    groups = draw(st.integers(1, 5))
    per = draw(st.integers(1, 5))
    n = groups * per
    vals = draw(st.lists(finite, min_size=n * k, max_size=n * k))
    r = torch.tensor(vals, dtype=torch.float64).reshape(n, k)
    g = torch.arange(groups).repeat_interleave(per)
    return r, g


@settings(max_examples=60, deadline=None)
@given(batches(k=1))
def test_k1_saw_grpo_equals_grpo(batch):
    r, g = batch
    a_saw, _ = compute_advantages(r, g, estimator="grpo", weighting="saw", reward_min=[-3.0])
    a, _ = compute_advantages(r, g, estimator="grpo")
    torch.testing.assert_close(a_saw, a, atol=1e-9, rtol=1e-9)


@settings(max_examples=80, deadline=None)
@given(batches())
def test_weights_finite_nonneg_sum_to_one(batch):
    r, _ = batch
    w = saw_weights(r, [-3.0] * r.shape[1])
    assert torch.isfinite(w).all() and (w >= 0).all()
    assert abs(float(w.sum()) - 1.0) < 1e-9


@settings(max_examples=60, deadline=None)
@given(batches(), st.floats(min_value=0.1, max_value=50.0), st.data())
def test_scaling_one_reward_keeps_weights(batch, c, data):
    r, _ = batch
    k = r.shape[1]
    j = data.draw(st.integers(0, k - 1))
    rmin = torch.full((k,), -3.0, dtype=torch.float64)
    w = saw_weights(r, rmin, delta=1e-12)
    r2, rmin2 = r.clone(), rmin.clone()
    r2[:, j] *= c
    rmin2[j] *= c
    w2 = saw_weights(r2, rmin2, delta=1e-12)
    torch.testing.assert_close(w, w2, atol=1e-6, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(2, 12), st.lists(finite, min_size=4, max_size=4))
def test_constant_rewards_give_equal_weights_no_nan(k, n, consts):
    r = torch.tensor(consts[:k], dtype=torch.float64).expand(n, k).clone()
    w = saw_weights(r, [-3.0] * k)
    torch.testing.assert_close(w, torch.full((k,), 1.0 / k, dtype=torch.float64))
    g = torch.arange(n) // 2
    for est in ("grpo", "gdpo", "grpo_nostd"):
        a, info = compute_advantages(r, g, estimator=est, weighting="saw", reward_min=[-3.0] * k)
        assert torch.isfinite(a).all() and torch.isfinite(info["cv"]).all()


@settings(max_examples=60, deadline=None)
@given(batches(), st.sampled_from(["grpo", "gdpo", "grpo_nostd"]), st.sampled_from(["static", "saw"]),
       st.randoms(use_true_random=False))
def test_permuting_samples_permutes_advantages(batch, est, weighting, rnd):
    r, g = batch
    perm = list(range(r.shape[0]))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    rmin = [-3.0] * r.shape[1]
    a, _ = compute_advantages(r, g, estimator=est, weighting=weighting, reward_min=rmin)
    b, _ = compute_advantages(r[perm], g[perm], estimator=est, weighting=weighting, reward_min=rmin)
    torch.testing.assert_close(b, a[perm], atol=1e-9, rtol=1e-9)


def test_group_normalise_2d_matches_columns():
    x = torch.randn(12, 3, dtype=torch.float64)
    gi = torch.arange(12) % 4
    both = group_normalise(x, gi, 4)
    for j in range(3):
        torch.testing.assert_close(both[:, j], group_normalise(x[:, j], gi, 4))
