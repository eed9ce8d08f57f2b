# Sourced by the container scripts (base-image.sh, fresh-machine.sh, images.sh, test-containers.sh):
# podman as this machine can run it (root, the runc runtime, cgroupfs, host network), or a clear
# failure that says why. Never a silent pass: every caller stops when podman cannot run containers.

ei_podman_conf_dir=${EI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeinspect}
mkdir -p "$ei_podman_conf_dir"
# cgroupfs: no systemd inside this machine to manage cgroups; runc: the runtime that works here.
# podman raises the open-files limit of root's containers above this machine's hard limit, which runc
# may not do here: containers get the host's own open-files limit and at most 32768 processes.
ei_nofile=$(ulimit -Hn)
ei_nproc=$(( $(ulimit -Hu) < 32768 ? $(ulimit -Hu) : 32768 ))
cat >"$ei_podman_conf_dir/containers.conf" <<CONF
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"

[containers]
netns = "host"
default_ulimits = ["nofile=$ei_nofile:$ei_nofile", "nproc=$ei_nproc:$ei_nproc"]
CONF
export CONTAINERS_CONF="$ei_podman_conf_dir/containers.conf"

podman_fail() {
  printf '\033[1;31m[podman]\033[0m %s\n' "$*" >&2
  exit 1
}

# require_root_tools TOOL...: root, podman and the named tools (installed with apt when missing, as
# make setup installs the servers the tests run), or a failure that says what is missing and why.
require_root_tools() {
  [ "$(id -u)" = 0 ] || podman_fail "needs root (rootless podman is not set up here); run as root"
  local missing=() tool
  for tool in podman runc debootstrap "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if command -v apt-get >/dev/null; then
    printf '\033[1;34m[podman]\033[0m installing %s with apt\n' "${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; } \
      || podman_fail "missing ${missing[*]} and apt-get could not install them: run apt-get install -y ${missing[*]}"
    return 0
  fi
  podman_fail "missing ${missing[*]}: install them (Debian/Ubuntu: apt-get install -y ${missing[*]})"
}

# ei_pip_build_args: EI_PIP_BUILD_ARGS, the podman build options that make pip inside a build use what
# pip on this machine uses (make setup does the same): its index, extra indexes and wheel folders, from
# the environment or pip's configuration, passed as the PIP_* build arguments the Dockerfiles declare.
# Local folders and file:// indexes are mounted read-only at the same paths, so a wheel on this
# machine's disk (the cloud image's CPU torch, say) installs with no download. pip's cache is a build
# cache mount every image shares (the Dockerfiles' RUN --mount=type=cache).
ei_pip_setting() { # ei_pip_setting NAME: $PIP_<NAME>, else global.<name> of pip's configuration
  local var
  var="PIP_$(tr 'a-z-' 'A-Z_' <<<"$1")"
  if [ -n "${!var:-}" ]; then echo "${!var}"; else python3 -m pip config get "global.$1" 2>/dev/null || true; fi
}
ei_pip_build_args() {
  EI_PIP_BUILD_ARGS=()
  local setting value location dir mounted=" "
  for setting in index-url extra-index-url find-links; do
    value=$(ei_pip_setting "$setting" | tr '\n' ' ' | xargs)
    [ -n "$value" ] || continue
    EI_PIP_BUILD_ARGS+=(--build-arg "PIP_$(tr 'a-z-' 'A-Z_' <<<"$setting")=$value")
    for location in $value; do
      case $location in
        file://*) dir=$(dirname "${location#file://}") ;; # a file:// index: its folder and ../files
        /*) dir=$location ;;
        *) continue ;;
      esac
      if [ -d "$dir" ] && [[ "$mounted" != *" $dir "* ]]; then
        EI_PIP_BUILD_ARGS+=(--volume "$dir:$dir:ro")
        mounted+="$dir "
      fi
    done
  done
}

require_root_tools
