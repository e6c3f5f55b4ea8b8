#!/usr/bin/env bash
# Installs everything Duoscale needs from the package registries (npm, PyPI):
# the app's Node dependencies and the trainer (PyTorch, CPU build by default).
# Safe to run twice. Environment knobs:
#   DUOSCALE_TORCH=torch==2.13.0   the torch requirement (pin a CUDA build here if you have one)
#   DUOSCALE_SKIP_PYTHON=1         install only the app (enough to enhance photos)
set -euo pipefail
cd "$(dirname "$0")/.."

# Electron's and onnxruntime-node's installers download binaries from outside the npm registry;
# the app runs without them (web mode, CPU inference), so skip those downloads where they fail.
export ELECTRON_SKIP_BINARY_DOWNLOAD="${ELECTRON_SKIP_BINARY_DOWNLOAD:-1}"
export ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}"

echo "== npm ci" >&2
npm ci --no-audit --no-fund

if [ "${DUOSCALE_SKIP_PYTHON:-0}" != "1" ]; then
  PY="${PYTHON:-python3}"
  echo "== pip install trainer ($("$PY" --version))" >&2
  "$PY" -m pip install --quiet "${DUOSCALE_TORCH:-torch==2.13.0}"
  "$PY" -m pip install --quiet -e "trainer[test]"
fi
echo "== setup done" >&2
