#!/usr/bin/env bash
# The main job: set-up (idempotent), then the simulated-cell demo.
# Extra arguments go to `autolab demo`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
VENV="${AUTOLAB_VENV:-$ROOT/.venv}"
cd "$ROOT"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
exec "$VENV/bin/autolab" demo "$@"
