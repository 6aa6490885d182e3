#!/usr/bin/env bash
# Wheelhouse for scripts/gpu_check.sh: the packages the repo's training path needs that a bare GPU
# image (Python 3.12, CUDA torch, transformers, tokenizers, accelerate, peft, numpy, ...) lacks,
# as cp312 / py3 manylinux x86_64 wheels in .gpu_wheels/ (ignored by git, a few MiB), so that the
# check installs them there with `pip install --no-index` and no network.
#   bash scripts/gpu_wheels.sh            # build .gpu_wheels/ (replaces an existing one)
# Pins: requirements/cpu.txt where it pins (deepspeed, hydra-core, omegaconf, rouge-score), else
# the versions of the CPU stack in .venv. transformers is not carried: the repo's calls run on the
# image's 5.17 (checked with scripts/gpu_check.sh --shape tiny under transformers 5.17 and Python 3.12),
# and 5.19 would add ~12 MiB plus typer and its dependencies.
# Needs pip and the package index (or pip's caches); run it from the repo's .venv or any Python >= 3.9.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DEST=.gpu_wheels
# binary or pure-python packages that PyPI has as wheels
BINARY=(
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0 hjson==3.1.0 hydra-core==1.3.8 omegaconf==2.3.0
  nltk==3.10.4 six==1.17.0 defusedxml==0.7.1
)
# sdist-only on PyPI: built here into py3-none-any wheels (pip reuses its wheel cache)
SDIST=(antlr4-python3-runtime==4.9.3 rouge-score==0.1.2)
DEEPSPEED=deepspeed==0.19.8

rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
echo "== wheels for Python 3.12 manylinux x86_64: ${BINARY[*]}"
"$PY" -m pip download -q --dest "$DEST.tmp" --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 "${BINARY[@]}"
echo "== built from sdists: ${SDIST[*]}"
"$PY" -m pip wheel -q --no-deps --wheel-dir "$DEST.tmp" "${SDIST[@]}"
# deepspeed's sdist imports torch in setup.py: build it without isolation, against this Python's torch
# (pure Python: no ops are compiled, DS_BUILD_OPS unset; CUDA ops would JIT-build on first use)
echo "== $DEEPSPEED (pure-Python wheel, no prebuilt ops)"
"$PY" -m pip wheel -q --no-deps --no-build-isolation --wheel-dir "$DEST.tmp" "$DEEPSPEED"
for whl in "$DEST.tmp"/*.whl; do
  case "$(basename "$whl")" in
    *-py3-none-any.whl|*-py2.py3-none-any.whl|*-cp312-cp312-manylinux*x86_64*.whl|*-cp3*-abi3-manylinux*x86_64*.whl) ;;
    *) echo "error: $whl is not a Python 3.12 / pure-Python manylinux x86_64 wheel" >&2; exit 1 ;;
  esac
done
expected=$(( ${#BINARY[@]} + ${#SDIST[@]} + 1 ))
count=$(ls "$DEST.tmp"/*.whl | wc -l)
if [ "$count" -ne "$expected" ]; then
  echo "error: $count wheels in $DEST.tmp, expected $expected" >&2; exit 1
fi
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
ls -1 "$DEST"
echo "$DEST: $count wheels, $(du -sh "$DEST" | cut -f1) in all"
