#!/usr/bin/env bash
# `make test-containers`: docker-compose.yml run for real with podman-compose on the project's images
# (built by scripts/images.sh, cached layers reused) and local stand-ins for Redis, Mosquitto and MinIO
# (deploy/standins: Debian's redis-server and mosquitto, the project's S3 test server). Then
# tests/containers checks the running stack. Fails, saying why, when podman cannot run containers.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source=scripts/podman-env.sh
. "$here/scripts/podman-env.sh"
say() { printf '\033[1;34m[test-containers]\033[0m %s\n' "$*" >&2; }
venv=${VENV:-.venv}
t0=$(date +%s)
times_file=$(mktemp)
trap 'rm -f "$times_file"' EXIT

base=$("$here/scripts/base-image.sh")
podman run --rm "$base" true || podman_fail "podman cannot run a container here (see the error above)"

# Only the images the compose file runs (not the cloud training image), always through images.sh: the
# layer cache makes an unchanged image a few seconds, and a changed checkout is never tested on stale
# images. Their first layers (gRPC tools, base dependencies) are shared, so they are built once.
say "building the compose file's images (cached layers reused)"
"$here/scripts/images.sh" camera inference-worker agent model-manager uploader ui fleet
ei_pip_build_args
for standin in redis mosquitto s3; do
  say "stand-in image edgeinspect-$standin-standin (deploy/standins/$standin.Containerfile)"
  podman build -q --network host --format docker --build-arg "BASE_IMAGE=$base" "${EI_PIP_BUILD_ARGS[@]}" \
    -f "deploy/standins/$standin.Containerfile" -t "localhost/edgeinspect-$standin-standin:bookworm" \
    deploy/standins >/dev/null
done
t_images=$(( $(date +%s) - t0 ))
[ -x "$venv/bin/podman-compose" ] || podman_fail "podman-compose is missing in $venv: run make setup (dev extra)"
start=$(date +%s)
rc=0
PATH="$here/$venv/bin:$PATH" EI_TEST_CONTAINERS=1 "$venv/bin/pytest" tests/containers -v -p no:cacheprovider \
  -o addopts="-ra --strict-markers" || rc=$?
t_tests=$(( $(date +%s) - start ))
# CPU seconds of everything this script ran (builds, containers' own processes aside): on a shared,
# loaded machine the wall time says little, the CPU time what the run costs on quiet cores
times >"$times_file"  # (not in a pipeline: a subshell's `times` sees none of this script's children)
cpu_s=$(tail -1 "$times_file" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } printf "%d", t }')
printf '{"images_s": %d, "compose_tests_s": %d, "total_s": %d, "cpu_s": %d, "load_1m": %s, "passed": %s}\n' \
  "$t_images" "$t_tests" $(( $(date +%s) - t0 )) "$cpu_s" "$(cut -d' ' -f1 /proc/loadavg)" \
  "$([ $rc = 0 ] && echo true || echo false)"
exit $rc
