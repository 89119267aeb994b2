#!/usr/bin/env bash
# Install the whole stack into a project-local virtual environment.
#
#   bash tools/install.sh            # venv in ./.venv (override with VENV=...)
#
# mmcv 2.1.0 has no wheel for this torch, so it is built from source once per
# machine and kept in a cache outside the clone, keyed by the Python version,
# the exact torch build and the mmcv version. A cached wheel is only used when
# its recorded build info matches the running interpreter and torch, and its
# compiled ops are checked after install; a mismatch rebuilds, never silently
# installs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
MMCV_VERSION=2.1.0
CACHE=${MMREGIONVIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmregionvit}

log() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[install] error:\033[0m %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11 or set PYTHON=/path/to/python3.11"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
log "installing torch and torchvision"
"${PIP[@]}" install -q -r "$ROOT/requirements/torch.txt"

# --- the pure-Python stack (mmcv imports mmengine) -----------------------
log "installing mmengine, mmdet, mmsegmentation, timm, onnxruntime and test tools"
"${PIP[@]}" install -q -c "$ROOT/requirements/torch.txt" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/deploy.txt" -r "$ROOT/requirements/tests.txt"

# --- mmcv with its ops ----------------------------------------------------
key=$("$PY" - <<'PY'
import sys, torch
cuda = torch.version.cuda or 'none'
print(f"cp{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__.replace('+', '_')}-cuda{cuda}-{torch.version.git_version[:12]}")
PY
)
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-$key"
mmcv_ok() {
  "$PY" - <<'PY'
import torch
from mmcv.ops import nms, RoIAlign
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
out = RoIAlign((2, 2), 1.0, 0, aligned=True)(torch.ones(1, 1, 8, 8), torch.tensor([[0., 0., 0., 4., 4.]]))
assert torch.allclose(out, torch.ones_like(out))
PY
}
build_mmcv() {
  log "building mmcv $MMCV_VERSION with CPU ops (about 12 minutes on 2 cores; done once per machine and torch build)"
  local tmp
  tmp=$(mktemp -d)
  # mmcv's setup.py needs an older setuptools; runtime.txt's is restored below
  "${PIP[@]}" install -q -c "$ROOT/requirements/torch.txt" -r "$ROOT/requirements/build.txt"
  "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary mmcv --no-cache-dir -d "$tmp" "mmcv==$MMCV_VERSION"
  tar -xzf "$tmp/mmcv-$MMCV_VERSION.tar.gz" -C "$tmp"
  # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
  sed -i "s/'-std=c++17'/'-std=c++20'/" "$tmp/mmcv-$MMCV_VERSION/setup.py"
  grep -q "'-std=c++20'" "$tmp/mmcv-$MMCV_VERSION/setup.py" || die "could not set C++20 in mmcv's setup.py"
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "${PIP[@]}" wheel --no-deps --no-build-isolation --no-cache-dir -w "$tmp" "$tmp/mmcv-$MMCV_VERSION"
  mkdir -p "$WHEEL_DIR"
  mv "$tmp"/mmcv-*.whl "$WHEEL_DIR"/
  echo "$key" > "$WHEEL_DIR/BUILD_KEY"
  rm -rf "$tmp"
  "${PIP[@]}" install -q -c "$ROOT/requirements/torch.txt" -r "$ROOT/requirements/runtime.txt"
}
installed_mmcv=$("$PY" -c "import importlib.metadata as m; print(m.version('mmcv'))" 2>/dev/null || true)
if [ "$installed_mmcv" = "$MMCV_VERSION" ] && mmcv_ok 2>/dev/null; then
  log "mmcv $MMCV_VERSION already installed with working ops"
else
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1 || [ "$(cat "$WHEEL_DIR/BUILD_KEY" 2>/dev/null)" != "$key" ]; then
    build_mmcv
  else
    log "using cached mmcv wheel for $key"
  fi
  "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
  if ! mmcv_ok; then
    log "cached mmcv wheel does not work with this torch: rebuilding"
    rm -rf "$WHEEL_DIR"
    build_mmcv
    "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
    mmcv_ok || die "mmcv ops still fail after a fresh build; see the error above"
  fi
fi

# xtcocotools' wheel is built for numpy 1: build it against the installed numpy 2.
"${PIP[@]}" install -q -c "$ROOT/requirements/torch.txt" 'cython>=3'
"${PIP[@]}" install -q -c "$ROOT/requirements/torch.txt" --no-build-isolation --no-binary xtcocotools 'xtcocotools>=1.14'
# mmpose declares chumpy, which no longer builds; its real deps are in runtime.txt.
"${PIP[@]}" install -q --no-deps mmpose==1.3.2
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

log "checking the environment"
"$PY" "$ROOT/tools/check_env.py"
log "done: activate with 'source ${VENV#$ROOT/}/bin/activate'"
