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
# redis-server, mosquitto and PostgreSQL are what the demo and the test fixtures start; chromium drives
# the browser tests. As root they are installed with apt; otherwise we say the install line and carry
# on, and the tests that need a missing server skip with that same line.
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || need+=(chromium)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${need[*]} with apt"
    compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null || apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null \
      || { apt-get update -q >/dev/null \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
  else
    say "missing system packages: ${need[*]} (the tests that need them will skip)"
    say "install them with: sudo apt-get install -y ${need[*]}"
  fi
fi

# --- torch, CPU build only ----------------------------------------------------------------------------
# The cloud extra pins torch==2.13.0. On Linux x86_64 the index's plain wheel is the CUDA build and pulls
# gigabytes of nvidia-* wheels; a CPU-only install wants PyTorch's CPU wheel index instead. We install
# torch alone first (wheels already on this machine's pip find-links win, else the CPU index), so the
# project install below finds it satisfied and never resolves a CUDA build. EI_TORCH_INDEX_URL points
# the step at a mirror of the CPU index.
torch_index=${EI_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
install_cpu_torch() {
  local req
  req=$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
  # (the output is read whole: grep -q closing the pipe early would fail the pipeline under pipefail)
  if grep -qx "Version: ${req#torch==}\(+cpu\)\?" <<<"$("$venv/bin/python" -m pip show torch 2>/dev/null)"; then
    return
  fi
  if "$venv/bin/python" -m pip install -q --no-deps --no-index "$req" 2>/dev/null; then
    say "$req from this machine's local wheels"
  else
    say "$req (CPU build) from $torch_index"
    "$venv/bin/python" -m pip install -q --no-deps --index-url "$torch_index" "$req" || {
      say "could not install $req from $torch_index: set EI_TORCH_INDEX_URL to a mirror of PyTorch's CPU"
      say "wheel index (or put the CPU wheel in pip's find-links), then run make again"
      exit 1
    }
  fi
}

# after the project install (torch's own dependencies are there by then)
check_cpu_torch() {
  if [ "$("$venv/bin/python" -c 'import torch; print(torch.version.cuda)')" != None ]; then
    say "warning: the installed torch is a CUDA build; this project needs only the CPU build"
  fi
}

# --- virtualenv -------------------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  python3 -m venv "$venv"
fi
stamp=".stamp-install-$(echo "$extras" | tr ',' '-')"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing edgeinspect[$extras] into $venv (first run takes a few minutes)"
  "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
  case ",$extras," in *,cloud,*) install_cpu_torch ;; esac
  "$venv/bin/python" -m pip install -q -e ".[$extras]"
  case ",$extras," in *,cloud,*) check_cpu_torch ;; esac
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
