"""The RL engine around the method: one job = model preparation, SFT warm start, RL loop.

    job.py          run_training(cfg, run_dir): the whole job for one composed config
    trainer.py      RLTrainer: rollout -> rewards -> advantages -> PPO update -> weight sync
    sft.py          supervised warm start (cached by config hash)
    engine.py       the DeepSpeed engine around the policy (optimizer, schedule, precision)
    logprobs.py     token log-probabilities of completions (padded or shared-prefix forward)
    checkpoint.py   atomic, resumable checkpoints
    distributed.py  torch.distributed set-up and small collectives
    metrics.py      per-step statistics and the metrics.jsonl writer
    tracking.py     the W&B mirror (offline by default)
    validation.py   config checks that run before any model loads
"""
