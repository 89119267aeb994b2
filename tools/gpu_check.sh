#!/usr/bin/env bash
# The GPU check in one command, for a CUDA machine without network access
# and without OpenMMLab packages (see docs/benchmark.md, "GPU").
#
#   bash tools/gpu_check.sh prepare        # where PyPI is reachable: the
#                                          # wheels it needs, into .whl/
#   bash tools/gpu_check.sh run OUT_DIR [tools/gpu_check.py options]
#                                          # on the CUDA machine, with .whl/
#
# `run` installs the wheels into a private folder (nothing else is touched),
# then runs tools/gpu_check.py with a 420 s budget under a hard limit of
# 470 s, so the whole command ends within 8 minutes. The check needs no
# mmcv: only mmengine (and its small pure-Python dependencies) travel.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=${GPU_CHECK_WHEELS:-.whl}
SITE=${GPU_CHECK_SITE:-/tmp/mmregionvit-gpu-check-site}
PYTHON=${PYTHON:-python3}
# What the check imports that a CUDA image with torch, timm, numpy, opencv,
# matplotlib, rich and pyyaml lacks; pinned as in requirements/runtime.txt.
PACKAGES=(mmengine==0.10.7 addict==2.4.0 termcolor==3.3.0 yapf==0.43.0
          platformdirs==4.14.8)
# the CUDA machine's interpreter
TARGET_PYTHON=${TARGET_PYTHON:-3.12}

die() { printf 'gpu_check: %s\n' "$*" >&2; exit 2; }

prepare() {
  [ $# -eq 0 ] || die "prepare takes no arguments"
  mkdir -p "$WHEELS"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: \
    --python-version "$TARGET_PYTHON" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WHEELS" "${PACKAGES[@]}"
  ls -l "$WHEELS"
}

run() {
  [ $# -ge 1 ] || die "run needs an output folder: bash tools/gpu_check.sh run OUT_DIR"
  local whl=("$WHEELS"/*.whl)
  [ -e "${whl[0]}" ] || die "no wheels in $WHEELS/: run 'bash tools/gpu_check.sh prepare' where PyPI is reachable, and bring $WHEELS/ along"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target "$SITE" "${whl[@]}"
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  "$PYTHON" -c 'import mmregionvit.models, timm' \
    || die "the check's imports fail (above); are all wheels in $WHEELS/?"
  timeout -k 10 470 "$PYTHON" tools/gpu_check.py --budget 420 "$@"
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  run) shift; run "$@" ;;
  *) die "usage: bash tools/gpu_check.sh prepare | run OUT_DIR [options]" ;;
esac
