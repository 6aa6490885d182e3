#!/usr/bin/env bash
# GPU smoke test of the paper-scale path (one GPU, < 10 minutes on an H100):
#   install the GPU stack, 3 training steps of the Qwen2.5-1.5B tool-calling config with a reduced
#   batch, one evaluation pass; prints step time and tokens/s.
#   bash scripts/gpu_smoke.sh [MODEL_PATH] [TRAIN_PARQUET]
# MODEL_PATH: a local Qwen2.5-1.5B-Instruct folder (default: the hub id, needs network or an HF cache).
# TRAIN_PARQUET: ToolRL rlla_4k train file; without it the embedded BFCL data is used instead.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-Qwen/Qwen2.5-1.5B-Instruct}
DATA=${2:-}
export WANDB_MODE=${WANDB_MODE:-offline} PYTHONUNBUFFERED=1
if [ ! -x .venv-gpu/bin/python ]; then
  python3 -m venv .venv-gpu
  .venv-gpu/bin/pip install -q torch==2.13.0 vllm==0.32.0 transformers==5.19.0 deepspeed==0.19.8 \
    datasets==5.2.0 hydra-core==1.3.8 wandb==0.31.0 rouge-score==0.1.2 nltk peft==0.21.2 matplotlib pandas pyarrow gguf==0.19.0
  .venv-gpu/bin/pip install -q --no-deps -r requirements/nodeps.txt
  .venv-gpu/bin/pip install -q --no-deps -e .
fi
PY=.venv-gpu/bin/python
if [ -n "$DATA" ]; then TASK=(task.paths.train="$DATA" task.paths.test="$DATA"); else TASK=(task=toolcall); fi
OUT=outputs/gpu_smoke
start=$(date +%s)
$PY scripts/train.py experiment=paper_toolcall_qwen2.5-1.5b algorithm=gdpo_saw "${TASK[@]}" \
  model.path="$MODEL" trainer.total_steps=3 trainer.prompts_per_step=32 trainer.mini_batches=1 \
  trainer.micro_batch_size=8 trainer.zero_stage=0 sampling.max_new_tokens=512 trainer.val_every=0 \
  trainer.save_every=0 rollout.gpu_memory_utilization=0.35 logger=none hydra.run.dir=$OUT/run
$PY scripts/evaluate.py eval.run_dir=$OUT/run eval.max_records=16 eval.max_new_tokens=512
$PY - <<'PYEOF'
import json
rows = [json.loads(l) for l in open("outputs/gpu_smoke/run/metrics.jsonl")]
for r in rows:
    print(f"step {r['step']}: {r['time/step']:.1f} s (rollout {r['time/rollout']:.1f}, update {r['time/update']:.1f}, "
          f"sync {r['time/sync']:.1f}), {r['perf/tokens_per_s']:.0f} tokens/s, "
          f"rollout {r['perf/rollout_tokens_per_s']:.0f} tokens/s")
print("eval:", json.load(open("outputs/gpu_smoke/run/eval.json"))["metrics"])
PYEOF
echo "gpu smoke took $(( $(date +%s) - start )) s"
