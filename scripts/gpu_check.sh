#!/usr/bin/env bash
# GPU check of the repo's real training path, in one command on a lent GPU machine without network:
# installs the wheelhouse .gpu_wheels/ (built here by scripts/gpu_wheels.sh) into a temporary folder
# on PYTHONPATH, prints versions, then runs scripts/bench/gpu_check.py (a random model of Qwen2.5-1.5B's
# shape through saw.rl.job.run_training on CUDA, the transformers rollout engine alone, figures per step).
#   bash scripts/gpu_check.sh [gpu_check.py options]     e.g. --budget-s 360, or --shape tiny --device cpu
# Environment: PYTHON (default python3), OUT (when set: the console goes to $OUT/gpu_check.log and the
# figures to $OUT/gpu_check/summary.json), GPU_CHECK_SITE (install folder; default a temporary one).
# Without .gpu_wheels/ the Python's own packages are used as they are. Exit status: the driver's
# (0 when no stage failed).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false DS_SKIP_CUDA_CHECK=1
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
LOG=/dev/null
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && LOG="$OUT/gpu_check.log"; fi

install_wheels() {
  local site=$1 t0=$SECONDS
  shopt -s nullglob
  local wheels=(.gpu_wheels/*.whl)
  shopt -u nullglob
  if [ ${#wheels[@]} -eq 0 ]; then
    echo "== no .gpu_wheels/*.whl: using $PY's packages as they are (build the wheelhouse with bash scripts/gpu_wheels.sh)"
    return 0
  fi
  mkdir -p "$site"
  echo "== installing ${#wheels[@]} wheels from .gpu_wheels/ into $site (pip --no-index --no-deps)"
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$site" "${wheels[@]}" \
      || echo "   WARNING: pip install failed (exit $?); the stages that need these packages will say so"
  else  # no pip in this Python: a wheel is a zip archive of site-packages content
    echo "   no pip in $PY: unpacking the wheels"
    "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$site" "${wheels[@]}" \
      || echo "   WARNING: unpacking failed (exit $?)"
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  echo "   done in $((SECONDS - t0)) s"
}

main() {
  echo "== gpu_check.sh $(date -u +%FT%TZ): $(nproc) cores, $("$PY" --version 2>&1) ($(command -v "$PY"))"
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader 2>/dev/null \
    || echo "   nvidia-smi: not available"
  install_wheels "${GPU_CHECK_SITE:-$(mktemp -d /tmp/gpu_check_site.XXXXXX)}"
  echo "== versions"
  "$PY" - <<'EOF'
import importlib
def version(name):
    try:
        return getattr(importlib.import_module(name), "__version__", "installed")
    except Exception as exc:  # reported: the driver decides which stages can run
        return f"NOT IMPORTABLE ({type(exc).__name__}: {str(exc)[:300]})"
import torch
print(f"   torch {torch.__version__} (CUDA {torch.version.cuda}), cuda available: {torch.cuda.is_available()}"
      + (f", device 0: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
for name in ("transformers", "tokenizers", "deepspeed", "hydra", "omegaconf", "pydantic", "nltk"):
    print(f"   {name} {version(name)}")
EOF
  echo "== scripts/bench/gpu_check.py $*"
  "$PY" scripts/bench/gpu_check.py "$@"
}

start=$SECONDS
main "$@" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
echo "== gpu_check.sh finished in $((SECONDS - start)) s, exit status $rc" | tee -a "$LOG"
exit "$rc"
