#!/usr/bin/env bash
# Idempotent set-up for `make demo` and `make test` on a fresh Debian/Ubuntu machine:
# system packages (when root), the virtualenv with the project's extras, the generated gRPC code.
set -euo pipefail
venv=${1:-.venv}
extras=${2:-edge,cloud,dev}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# --- system packages: the real servers the stack and the tests run -------------------------------
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${need[*]} with apt"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
  else
    say "missing system packages: ${need[*]}"
    say "run: sudo apt-get install -y ${need[*]}   (then run make again)"
    exit 1
  fi
fi

# --- virtualenv -------------------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  python3 -m venv "$venv"
fi
stamp=".stamp-install-$(echo "$extras" | tr ',' '-')"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing edgeinspect[$extras] into $venv (first run takes a few minutes)"
  "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
  # torch is pinned to the CPU build (torch==2.13.0); never let a resolver pick a CUDA build.
  "$venv/bin/python" -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi

# --- generated gRPC code (built, never hand-edited) --------------------------------------------------
"$venv/bin/python" -m edgeinspect.core.protobuild --if-stale

# --- the Node.js stock-client test's npm packages (tests/clients/node; skipped there without npm) -----
if command -v npm >/dev/null && [ ! -d tests/clients/node/node_modules/@grpc/grpc-js ]; then
  say "installing the Node.js compat client's packages (npm ci, tests/clients/node)"
  npm ci --prefix tests/clients/node --no-audit --no-fund --loglevel=error >/dev/null \
    || say "npm ci failed; the Node.js client test will try again (or skip without npm)"
fi
