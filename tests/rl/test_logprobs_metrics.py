"""Padding layout, completion-only logprobs, reward statistics, sampler, checkpoints, lr schedule."""

import json
import math

import pytest
import torch

from saw.rl.logprobs import build_token_batch, response_logprobs
from saw.core.io import MetricsWriter, atomic_write_text, read_metrics
from saw.rl.checkpoint import latest_checkpoint, list_checkpoints
from saw.rl.metrics import reward_stats
from saw.rl.engine import lr_lambda
from saw.rl.batches import PromptSampler


def test_token_batch_layout():
    b = build_token_batch([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], pad_id=0)
    assert b.prompt_len == 3
    assert b.input_ids.tolist() == [[5, 6, 7, 1, 2, 0], [0, 0, 8, 3, 4, 9]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert b.position_ids[1, 2:].tolist() == [0, 1, 2, 3]
    assert b.response_ids.tolist() == [[1, 2, 0], [3, 4, 9]]
    assert b.response_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    sub = b.slice(slice(0, 1))  # row 0 alone: no left padding, 2 completion columns
    assert sub.input_ids.tolist() == [[5, 6, 7, 1, 2]] and sub.prompt_len == 3
    sub1 = b.slice(slice(1, 2))
    assert sub1.input_ids.tolist() == [[8, 3, 4, 9]] and sub1.prompt_len == 1


def test_response_logprobs_match_unpadded_forward(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = [[1, 50, 60, 70, 80], [1, 90]]
    comps = [[100, 101, 102], [110, 111]]
    batch = build_token_batch(prompts, comps, pad_id=0)
    with torch.no_grad():
        lp, ent = response_logprobs(model, batch, temperature=0.7, with_entropy=True)
        for i, (p, c) in enumerate(zip(prompts, comps)):
            ids = torch.tensor([p + c])
            logits = model(ids).logits[0].float() / 0.7
            ref = torch.log_softmax(logits, -1)[len(p) - 1: len(p) + len(c) - 1].gather(
                -1, torch.tensor(c).unsqueeze(-1)).squeeze(-1)
            torch.testing.assert_close(lp[i, : len(c)], ref, atol=1e-4, rtol=1e-4)
    assert ent.shape == lp.shape and (ent[batch.response_mask.bool()] > 0).all()


def test_reward_stats_by_hand():
    r = torch.tensor([[1.0, 0.0], [1.0, 2.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    g = torch.tensor([0, 0, 1, 1])
    info = {"cv": torch.tensor([0.5, 0.7]), "weights": torch.tensor([1.0, 1.0])}
    s = reward_stats(r, g, ["fmt", "acc"], info, torch.tensor([0.0, 0.0]))
    assert s["reward/fmt/mean"] == pytest.approx(0.75)
    assert s["reward/acc/std"] == pytest.approx(math.sqrt(2 / 3))
    assert s["reward/fmt/zero_var_frac"] == pytest.approx(0.5)  # group 0 flat on fmt
    assert s["reward/acc/zero_var_frac"] == pytest.approx(0.5)  # group 1 flat on acc
    # |normalised adv|: fmt group1 -> 0.7071 x2 ; acc group0 -> 0.7071 x2, group1 -> 0 (flat)
    assert s["reward/fmt/adv_share"] == pytest.approx(0.5, abs=1e-4)
    assert s["reward/acc/cv"] == pytest.approx(0.7)


def test_prompt_sampler_is_deterministic_and_covers_epochs():
    s = PromptSampler(5, seed=3)
    first = s.take(0, 5)
    assert sorted(first) == list(range(5))
    assert PromptSampler(5, seed=3).take(2, 6) == s.take(2, 6)  # stateless by position
    assert sorted(s.take(5, 5)) == list(range(5))


def test_checkpoint_listing_ignores_unfinished(tmp_path):
    (tmp_path / "step_000002").mkdir()
    atomic_write_text(tmp_path / "step_000002" / "trainer_state.json", json.dumps({"step": 2}))
    (tmp_path / "step_000004.tmp").mkdir()  # torn write: never picked up
    (tmp_path / "step_000006").mkdir()  # no trainer_state.json: incomplete
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2]
    assert latest_checkpoint(tmp_path).name == "step_000002"


def test_metrics_writer_truncates_on_resume(tmp_path):
    w = MetricsWriter(tmp_path / "m.jsonl")
    for step in (1, 2, 3):
        w.write({"step": step, "x": float("nan") if step == 2 else step})
    w.close()
    assert read_metrics(tmp_path / "m.jsonl")[1]["x"] is None
    MetricsWriter(tmp_path / "m.jsonl", resume_step=2).close()
    assert [r["step"] for r in read_metrics(tmp_path / "m.jsonl")] == [1, 2]


def test_lr_schedules():
    f = lr_lambda("cosine", warmup_steps=2, total_steps=12)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0) and f(7) == pytest.approx(0.5) and f(12) == pytest.approx(0.0)
    assert lr_lambda("linear", 0, 10)(5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="constant"):
        lr_lambda("step", 0, 10)
