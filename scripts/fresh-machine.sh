#!/usr/bin/env bash
# The two commands on a bare machine: a clean Debian bookworm container (debootstrap, nothing from
# this host but the CA bundle its network needs), a `git archive` of HEAD copied in, then `make test`
# and a timed `make demo` inside it. A developer tool, not part of `make test` (it takes long: the
# suite alone is ~15 min on 2 cores).
#
# Usage: scripts/fresh-machine.sh                  (as root; needs podman, runc, debootstrap)
# Env:   EI_FRESH_SKIP_TEST=1      only setup and the demo
#        EI_FRESH_DEMO_READY       regex (case-insensitive) of the demo line that ends the timed demo
#                                  (default: the once-a-minute live scoreboard line, `scoreboard`)
#        EI_FRESH_DEMO_TIMEOUT     seconds the demo may take to print it (default 900)
#        EI_FRESH_KEEP=1           keep the container afterwards (its name is printed)
#        EI_FRESH_KEEP_GOING=0     stop at a failed `make test` (default: run the demo too, fail at the end)
#        EI_TORCH_INDEX_URL        PyTorch CPU wheel index for the container (default: PyTorch's own;
#                                  where that is unreachable, a one-package mirror of this machine's
#                                  copy of the same CPU wheel, said so in the output)
# Output: a table of timings (setup, test, demo to its first scoreboard) and, last, one JSON line.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source=scripts/podman-env.sh
. "$here/scripts/podman-env.sh"

say() { printf '\033[1;34m[fresh-machine]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[fresh-machine]\033[0m %s\n' "$*" >&2; exit 1; }

cache=${EI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeinspect}
ready=${EI_FRESH_DEMO_READY:-scoreboard}
demo_timeout=${EI_FRESH_DEMO_TIMEOUT:-900}
torch_index=${EI_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
name="ei-fresh-$$"
logs="$cache/fresh-machine"
mkdir -p "$logs"
rm -f "$logs"/*.log

t0=$(date +%s)
base=$("$here/scripts/base-image.sh")
t_base=$(( $(date +%s) - t0 ))

# --- the CPU wheel index for torch ---------------------------------------------------------------------
# The container installs torch the way a bare machine does: from the CPU wheel index, never the CUDA
# build. When that index cannot be reached from this network, the container gets a one-package mirror
# of it instead: this host's copy of the very same CPU wheel, served as a PEP 503 file index.
mounts=()
torch_req=$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
if python3 - "$torch_index/torch/" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=15)
PY
  torch_source="$torch_index"
else
  wheel=""
  for dir in ${PIP_FIND_LINKS:-} $(pip3 config get global.find-links 2>/dev/null || true); do
    wheel=$(ls "$dir"/torch-"${torch_req#torch==}"+cpu-cp311-*linux*_x86_64.whl 2>/dev/null | head -1)
    [ -n "$wheel" ] && break
  done
  [ -n "$wheel" ] || die "$torch_index is unreachable and no local ${torch_req}+cpu wheel was found:
  set EI_TORCH_INDEX_URL to a reachable mirror of PyTorch's CPU wheel index"
  mirror="$cache/torch-cpu-mirror"
  rm -rf "$mirror" && mkdir -p "$mirror/simple/torch"
  cp "$wheel" "$mirror/simple/torch/"
  file=$(basename "$wheel")
  sha=$(sha256sum "$wheel" | cut -d' ' -f1)
  printf '<!DOCTYPE html><html><body><a href="%s#sha256=%s">%s</a></body></html>\n' "$file" "$sha" "$file" \
    >"$mirror/simple/torch/index.html"
  mounts+=(-v "$mirror:/mirror:ro")
  torch_index=file:///mirror/simple
  torch_source="a mirror of the CPU index holding this host's $file (the CPU index is unreachable from here)"
  say "PyTorch's CPU wheel index is unreachable from this network: the container's torch step uses $torch_source"
fi

# --- the bare machine -----------------------------------------------------------------------------------
cleanup() {
  if [ "${EI_FRESH_KEEP:-}" = 1 ]; then
    say "container kept: podman exec -it $name bash   (remove: podman rm -f $name)"
  else
    podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
# Host network: the package registries are reached as this host reaches them. /dev/shm sized for
# the agent's shared-memory tensors and Chromium.
podman run -d --name "$name" --network host --shm-size 2g "${mounts[@]}" \
  -e EI_TORCH_INDEX_URL="$torch_index" -e HOME=/root -e LANG=C.UTF-8 \
  "$base" sleep infinity >/dev/null || die "podman could not start a container from $base"
podman exec "$name" test ! -e /etc/pip.conf -a ! -d /opt/wheels || die "the base image is not bare"
git archive --format=tar --prefix=edgeinspect/ HEAD | podman exec -i "$name" tar -x -C /root
say "HEAD $(git rev-parse --short HEAD) copied into $name:/root/edgeinspect"

# phase NAME COMMAND: run COMMAND in the project folder of the container, its output in a log.
# EI_FRESH_KEEP_GOING=1 (phase test only): a failed test run is recorded and the demo still runs.
phase() {
  local label=$1 start rc=0
  shift
  say "$label: $* (log: $logs/$label.log)"
  start=$(date +%s)
  podman exec -w /root/edgeinspect "$name" bash -c "$*" >"$logs/$label.log" 2>&1 || rc=$?
  elapsed=$(( $(date +%s) - start ))
  if [ $rc -ne 0 ]; then
    tail -40 "$logs/$label.log" >&2
    if [ "$label" = test ]; then
      test_failed=1
      say "test failed (exit $rc) after ${elapsed}s; full log: $logs/$label.log"
      [ "${EI_FRESH_KEEP_GOING:-1}" = 1 ] && return 0
    fi
    die "$label failed (exit $rc) after ${elapsed}s; full log: $logs/$label.log"
  fi
}
test_failed=0

phase setup make setup
t_setup=$elapsed
nvidia=$(podman exec "$name" /root/edgeinspect/.venv/bin/python -m pip list 2>/dev/null | grep -ci '^nvidia-' || true)
torch_build=$(podman exec "$name" /root/edgeinspect/.venv/bin/python -c \
  'import torch; print(torch.__version__, "cuda" if torch.version.cuda else "cpu")')
[ "$nvidia" = 0 ] || die "the setup installed $nvidia nvidia-* packages: a CUDA build of torch was resolved"
say "setup: ${t_setup}s, torch $torch_build, no nvidia-* packages"

t_test=0
tests="skipped"
if [ "${EI_FRESH_SKIP_TEST:-}" != 1 ]; then
  phase test make test
  t_test=$elapsed
  tests=$(grep -E '^=+ .*(passed|failed).* =+$' "$logs/test.log" | tail -1 | tr -d '=' | xargs)
  say "test: ${t_test}s, $tests"
fi

# The demo runs until it prints the ready line (by default its first live scoreboard, which scores the
# verdicts against the line's ground truth); the container is removed afterwards, which stops it.
ui_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "demo: make demo DEMO_ARGS='--ui-port $ui_port', until a line matches /$ready/ (at most ${demo_timeout}s)"
start=$(date +%s)
podman exec -d -w /root/edgeinspect "$name" bash -c \
  "make demo DEMO_ARGS='--ui-port $ui_port' >/root/demo.log 2>&1; echo \$? >/root/demo.rc"
line=""
while [ $(( $(date +%s) - start )) -lt "$demo_timeout" ]; do
  line=$(podman exec "$name" grep -m1 -i -E "$ready" /root/demo.log 2>/dev/null || true)
  [ -n "$line" ] && break
  if podman exec "$name" test -f /root/demo.rc; then
    break
  fi
  sleep 5
done
t_demo=$(( $(date +%s) - start ))
podman exec "$name" cat /root/demo.log >"$logs/demo.log" 2>/dev/null || true
if [ -z "$line" ]; then
  tail -40 "$logs/demo.log" >&2
  die "the demo printed no line matching /$ready/ within ${t_demo}s; full log: $logs/demo.log"
fi
say "demo: ${t_demo}s to: $line"

total=$(( $(date +%s) - t0 ))
printf '\n%-34s %8s\n' "phase (clean bookworm container)" "seconds"
printf '%-34s %8d\n' "base image (cached after 1st run)" "$t_base" "make setup" "$t_setup" \
  "make test" "$t_test" "make demo to first scoreboard" "$t_demo" "total" "$total"
printf 'tests: %s\ntorch: %s from %s\ndemo:  %s\n' "$tests" "$torch_build" "$torch_source" "$line"
python3 -c 'import json, sys; a = sys.argv; print(json.dumps({"commit": a[1], "base_s": int(a[2]),
  "setup_s": int(a[3]), "test_s": int(a[4]), "demo_to_ready_s": int(a[5]), "total_s": int(a[6]),
  "tests": a[7], "torch": a[8], "demo_line": a[9]}))' "$(git rev-parse --short HEAD)" "$t_base" \
  "$t_setup" "$t_test" "$t_demo" "$total" "$tests" "$torch_build" "$line"
[ "$test_failed" = 0 ] || die "make test failed (the demo ran anyway): $tests"
