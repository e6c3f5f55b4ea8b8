#!/usr/bin/env bash
# Runs the trainer's pytest suite (installed by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../trainer"
exec "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider "$@"
