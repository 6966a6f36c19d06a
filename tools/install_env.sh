#!/usr/bin/env bash
# Set up (or top up) the Python environment for mmseg_clip_wsss.
#
#   VENV=.venv                  where the virtual environment lives (created if missing)
#   PYTHON=python3              interpreter used to create it
#   MMSEG_CLIP_WSSS_CACHE=...   cache for the mmcv wheel built here (default ~/.cache/mmseg_clip_wsss)
#
# What is already working is kept: an importable torch is never replaced, and an mmcv whose
# compiled ops import is never rebuilt. mmcv 2.1.0 ships no wheel for torch 2.14, so it is built
# once from its sdist (CPU ops; CUDA ops too when nvcc and a CUDA torch are present) and the wheel
# is cached per Python/torch version, so later installs take seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
CACHE=${MMSEG_CLIP_WSSS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmseg_clip_wsss}
MMCV_VERSION=2.1.0

log() { printf '\033[1;34m[install]\033[0m %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)

# 1. PyTorch: keep a working one (e.g. a CUDA build the user installed), else the pinned pair.
if "$PY" -c 'import torch, torchvision' 2>/dev/null; then
  log "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed: kept"
else
  log "installing torch (requirements/torch.txt)"
  "${PIP[@]}" -q -r requirements/torch.txt
fi

# 2. mmcv with compiled ops: keep a working one, else install the cached wheel, else build it.
if "$PY" -c 'from mmcv.ops import nms, roi_align' 2>/dev/null; then
  log "mmcv $("$PY" -c 'import mmcv; print(mmcv.__version__)') with compiled ops already installed: kept"
else
  tag=$("$PY" -c 'import sys, torch; print(f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}")')
  wheel_dir="$CACHE/wheels/$tag"
  wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    log "building mmcv $MMCV_VERSION from source for $tag (one time, about 6 minutes on 2 cores)"
    "${PIP[@]}" -q -r requirements/build.txt
    src_dir=$(mktemp -d)
    trap 'rm -rf "$src_dir"' EXIT
    "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
      -d "$src_dir" "mmcv==$MMCV_VERSION"
    tar -xzf "$src_dir/mmcv-$MMCV_VERSION.tar.gz" -C "$src_dir"
    # torch >= 2.10 headers need C++20; mmcv's setup.py asks for C++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$src_dir/mmcv-$MMCV_VERSION/setup.py"
    mkdir -p "$wheel_dir"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel --no-deps --no-build-isolation \
      -w "$wheel_dir" "$src_dir/mmcv-$MMCV_VERSION"
    wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
  else
    log "using cached mmcv wheel $wheel"
  fi
  "${PIP[@]}" -q --no-deps --force-reinstall "$wheel"
fi

# 3. The rest of the stack, then this package (editable).
log "installing runtime, OpenMMLab and test requirements"
"${PIP[@]}" -q -r requirements/runtime.txt
"${PIP[@]}" -q --no-deps -r requirements/mm.txt
"${PIP[@]}" -q -r requirements/tests.txt
"${PIP[@]}" -q --no-deps --no-build-isolation -e .

"$PY" -c 'import mmseg_clip_wsss, mmseg, mmdet; from mmcv.ops import nms, roi_align' \
  && log "environment ready: $("$PY" -c 'import torch, mmcv, mmseg, mmdet; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmseg {mmseg.__version__}, mmdet {mmdet.__version__}")')"
