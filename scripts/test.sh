#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), lint, then pytest.
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/test_doctor.py -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
VENV="${AUTOLAB_VENV:-$ROOT/.venv}"
cd "$ROOT"

echo "[test] ruff check"
lint=0
"$VENV/bin/ruff" check src tests bench || lint=$?

# Headless MuJoCo rendering; loopback-only DDS; test modules pick their own ROS_DOMAIN_IDs.
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export PYTHONUNBUFFERED=1

echo "[test] pytest"
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "[test] pytest collected no tests: that is a failure" >&2
  exit 1
fi
if [[ $lint -ne 0 && $rc -eq 0 ]]; then
  echo "[test] tests passed but ruff found problems (above): failing" >&2
  exit 1
fi
exit $rc
