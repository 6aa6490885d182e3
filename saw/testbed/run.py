"""Train a tabular softmax policy on a synthetic multi-objective problem with every weighting.

An instrument for the mechanism of reward weightings (how SAW and the other dynamic weightings
react when one objective saturates before another), NOT evidence about LLM training: the policy
is a table of logits, the "responses" are arms of a bandit, the rewards are synthetic.

One run: ``steps`` steps of ``prompts_per_step`` prompts x ``n`` samples; advantages from this
repo's ``saw.algo.advantages.compute_advantages`` (the configured estimator and weighting object,
exactly as the trainer calls it), loss from ``saw.algo.policy_loss.policy_loss`` (PPO-clip,
``ppo_epochs`` optimizer steps per batch), Adam. Logged per step: the exact expected reward of
each objective, the weights the estimator applied (normalised to sum 1; DVAO: its mean per-group
weights) and each reward's CV.

``run_all`` runs every algorithm x seed x variant; ``summarise`` gives final value and area under
the learning curve (mean over steps) with 95 % t-intervals over seeds, and paired differences
against the host's static weighting on the same seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from saw.algo.advantages import compute_advantages
from saw.algo.policy_loss import PolicyLossConfig, policy_loss
from saw.algo.weighting import WEIGHTINGS, build_weighting
from saw.testbed.problem import Problem, make_problem

CAVEAT = ("Synthetic testbed: a tabular softmax policy on a multi-objective bandit. It probes the "
          "weighting mechanism (reaction to saturation); it is not evidence about LLM training.")

HOSTS = {"grpo": "grpo", "gdpo": "gdpo"}  # host name -> estimator
# estimators that are methods of their own, with the host family they are compared against
EXTRA_ESTIMATORS = {"grpo_mo": ("mo_grpo", "grpo"), "gdpo_dvao": ("dvao", "gdpo")}


@dataclass
class Algorithm:
    name: str
    host: str
    estimator: str
    weighting: str
    options: dict[str, Any] = field(default_factory=dict)


def algorithms(problem: Problem, lam: float = 0.05) -> list[Algorithm]:
    """Every registered weighting on both hosts, plus the estimator methods (MO-GRPO, DVAO)."""
    out = []
    for host, est in HOSTS.items():
        for w in WEIGHTINGS.names():
            opts: dict[str, Any] = {}
            if w == "sa_mrpo":
                opts = {"gamma": 0.5, "reward_max": problem.reward_max.tolist()}
            elif w == "gradient":
                opts = {"lam": lam}
            out.append(Algorithm(host if w == "static" else f"{host}_{w}", host, est, w, opts))
    for name, (est, host) in EXTRA_ESTIMATORS.items():
        out.append(Algorithm(name, host, est, "static"))
    return out


class _Probe:
    """The WeightingProbe of saw.algo.weighting for the tabular policy (the +Gradient weighting)."""

    def __init__(self, logits: Tensor, prompts: Tensor, actions: Tensor, rewards: Tensor,
                 group_ids: Tensor, lr: float):
        self.logits, self.prompts, self.actions = logits, prompts, actions
        self.rewards, self.group_ids, self.lr = rewards, group_ids, lr

    def objective_gradients(self, advantages: Tensor, *, layer_span=None) -> tuple[Tensor, Tensor]:
        """(per-objective gradients Tensor[K, P], their norms Tensor[K]); layer_span is moot here."""
        logp = torch.log_softmax(self.logits[self.prompts], -1).gather(1, self.actions[:, None])[:, 0]
        rows = []
        for k in range(advantages.shape[1]):
            loss = -(advantages[:, k].to(logp.dtype) * logp).mean()
            (g,) = torch.autograd.grad(loss, self.logits, retain_graph=k < advantages.shape[1] - 1)
            rows.append(g.detach().flatten())
        grads = torch.stack(rows)
        return grads, grads.double().norm(dim=1)


def run_one(problem: Problem, algo: Algorithm, seed: int, *, steps: int = 150, prompts_per_step: int = 8,
            n: int = 8, lr: float = 0.05, ppo_epochs: int = 2) -> dict[str, np.ndarray]:
    """One training run -> {"reward", "weight", "cv"}: arrays [steps, K]."""
    gen = torch.Generator().manual_seed(seed)
    logits = (0.01 * torch.randn(problem.num_prompts, problem.num_arms, generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=lr)
    k = len(problem.objectives)
    weighting = build_weighting(algo.weighting, k, **algo.options)
    cfg = PolicyLossConfig(clip_ratio_low=0.2, loss_agg_mode="token-mean")
    group_ids = torch.arange(prompts_per_step).repeat_interleave(n)
    rec = {key: np.zeros((steps, k)) for key in ("reward", "weight", "cv")}
    for step in range(steps):
        prompts = torch.randint(problem.num_prompts, (prompts_per_step,), generator=gen).repeat_interleave(n)
        with torch.no_grad():
            probs = torch.softmax(logits[prompts], -1)
            actions = torch.multinomial(probs, 1, generator=gen)[:, 0]
            old_logp = torch.log(probs.gather(1, actions[:, None]))
        rewards = problem.sample(prompts, actions, gen)
        weighting.update(_Probe(logits, prompts, actions, rewards, group_ids, lr))
        adv, info = compute_advantages(rewards, group_ids, estimator=algo.estimator, weighting=weighting,
                                       reward_min=problem.reward_min)
        mask = torch.ones_like(old_logp)
        for _ in range(ppo_epochs):
            logp = torch.log_softmax(logits[prompts], -1).gather(1, actions[:, None])
            loss, _ = policy_loss(logp, old_logp, adv.float(), mask, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            rec["reward"][step] = problem.expected(torch.softmax(logits, -1)).numpy()
        w = info.get("dvao_weights", info["weights"]).double().abs()
        rec["weight"][step] = (w / w.sum() if w.sum() > 0 else torch.full_like(w, 1.0 / k)).numpy()
        rec["cv"][step] = info["cv"].double().numpy()
    return rec


def run_all(variants: Sequence[str], seeds: Sequence[int], *, steps: int = 150,
            algos: Sequence[str] | None = None, **kw) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """results[variant][algorithm][key] -> array [seeds, steps, K] (key: reward, weight, cv)."""
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for variant in variants:
        problem = make_problem(variant)
        out[variant] = {}
        for algo in algorithms(problem):
            if algos is not None and algo.name not in algos:
                continue
            runs = [run_one(problem, algo, s, steps=steps, **kw) for s in seeds]
            out[variant][algo.name] = {key: np.stack([r[key] for r in runs]) for key in runs[0]}
    return out


# ----------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def t975(df: int) -> float:
    """Two-sided 95 % Student-t quantile (table to df 10, Cornish-Fisher expansion beyond)."""
    if df < 1:
        return float("nan")
    if df in _T975:
        return _T975[df]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mean_ci(x: np.ndarray) -> tuple[float, float]:
    """Mean and 95 % half-width over the first axis."""
    n = x.shape[0]
    m = float(np.mean(x))
    if n < 2:
        return m, float("nan")
    return m, t975(n - 1) * float(np.std(x, ddof=1)) / math.sqrt(n)


def host_of(name: str) -> str:
    return name.split("_", 1)[0]


def summarise(results, objectives: Sequence[str] = ("easy", "hard")) -> list[dict[str, Any]]:
    """One row per variant x algorithm x objective: final value, AUC (mean over steps), both with
    95 % CIs, and paired differences vs the host's static run on the same seeds."""
    rows = []
    for variant, algos in results.items():
        for name, rec in algos.items():
            base = algos.get(host_of(name))
            for k, obj in enumerate(objectives):
                final = rec["reward"][:, -1, k]
                auc = rec["reward"][:, :, k].mean(1)
                row = {"variant": variant, "algorithm": name, "objective": obj, "seeds": final.shape[0]}
                row["final"], row["final_ci"] = mean_ci(final)
                row["auc"], row["auc_ci"] = mean_ci(auc)
                row["weight_last_half"] = float(rec["weight"][:, rec["weight"].shape[1] // 2:, k].mean())
                if base is not None and name != host_of(name):
                    d_final = final - base["reward"][:, -1, k]
                    d_auc = auc - base["reward"][:, :, k].mean(1)
                    row["d_final"], row["d_final_ci"] = mean_ci(d_final)
                    row["d_auc"], row["d_auc_ci"] = mean_ci(d_auc)
                    row["wins_auc"] = int((d_auc > 0).sum())
                rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The summary as a markdown table (one per variant)."""
    fmt = lambda m, h: f"{m:.3f} ± {h:.3f}" if not math.isnan(h) else f"{m:.3f}"  # noqa: E731
    out = [f"> {CAVEAT}", ""]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        out += [f"### {variant}", "",
                "| algorithm | objective | final | AUC | Δfinal vs host static | ΔAUC vs host static | AUC wins | weight (2nd half) |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in (r for r in rows if r["variant"] == variant):
            d1 = fmt(r["d_final"], r["d_final_ci"]) if "d_final" in r else "-"
            d2 = fmt(r["d_auc"], r["d_auc_ci"]) if "d_auc" in r else "-"
            wins = f"{r['wins_auc']}/{r['seeds']}" if "wins_auc" in r else "-"
            out.append(f"| {r['algorithm']} | {r['objective']} | {fmt(r['final'], r['final_ci'])} | "
                       f"{fmt(r['auc'], r['auc_ci'])} | {d1} | {d2} | {wins} | {r['weight_last_half']:.3f} |")
        out.append("")
    out.append("final: expected reward at the last step; AUC: mean expected reward over all steps; ± is the "
               "95 % t-interval over seeds; Δ: paired difference (same seeds) against the host with static "
               "weights (grpo* vs grpo, gdpo* vs gdpo); weight: normalised weight on the objective averaged "
               "over the second half of training.")
    return "\n".join(out)


def plot(results, path_prefix: str, objectives: Sequence[str] = ("easy", "hard")) -> list[str]:
    """Reward, weight and CV curves with 95 % bands, one PNG per variant. Returns the paths."""
    import matplotlib  # lazy: plotting is optional and heavy

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for variant, algos in results.items():
        fig, axes = plt.subplots(3, len(objectives), figsize=(6 * len(objectives), 11), squeeze=False)
        cmap = plt.get_cmap("tab10")
        for i, (name, rec) in enumerate(algos.items()):
            style = "-" if name.startswith("gdpo") else "--"
            for row, key in enumerate(("reward", "weight", "cv")):
                for k, obj in enumerate(objectives):
                    x = rec[key][:, :, k]
                    m = x.mean(0)
                    h = t975(x.shape[0] - 1) * x.std(0, ddof=1) / math.sqrt(x.shape[0]) if x.shape[0] > 1 else 0 * m
                    ax = axes[row][k]
                    ax.plot(m, style, color=cmap(i % 10), label=name, lw=1.2)
                    ax.fill_between(np.arange(len(m)), m - h, m + h, color=cmap(i % 10), alpha=0.15)
                    ax.set_title(f"{variant}: {key} / {obj}")
                    ax.set_xlabel("step")
        axes[0][0].legend(fontsize=7, ncol=2)
        fig.suptitle(CAVEAT, fontsize=8)
        fig.tight_layout()
        path = f"{path_prefix}_{variant}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
