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

# require_root_tools TOOL...: root, podman and the named tools, or a failure with the install line.
require_root_tools() {
  [ "$(id -u)" = 0 ] || podman_fail "needs root (rootless podman is not set up here); run as root"
  local missing=() tool
  for tool in podman runc "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || podman_fail "missing ${missing[*]}: run apt-get install -y ${missing[*]}"
}

require_root_tools
