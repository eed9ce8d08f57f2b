#!/usr/bin/env bash
# `make test-containers`: docker-compose.yml run for real with podman-compose on the project's images
# (built by scripts/images.sh when missing) and local stand-ins for Redis, Mosquitto and MinIO
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

base=$("$here/scripts/base-image.sh")
podman run --rm "$base" true || podman_fail "podman cannot run a container here (see the error above)"

missing=()
for pair in camera:edgeinspect-camera inference-worker:edgeinspect-inference agent:edgeinspect-agent \
  model-manager:edgeinspect-model-manager uploader:edgeinspect-uploader ui:edgeinspect-ui fleet:edgeinspect-fleet; do
  podman image exists "${pair#*:}:dev" || missing+=("${pair%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "building missing images: ${missing[*]}"
  "$here/scripts/images.sh" "${missing[@]}"
fi
for standin in redis mosquitto s3; do
  say "stand-in image edgeinspect-$standin-standin (deploy/standins/$standin.Containerfile)"
  podman build -q --network host --format docker --build-arg "BASE_IMAGE=$base" \
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
printf '{"images_s": %d, "compose_tests_s": %d, "total_s": %d, "passed": %s}\n' "$t_images" "$t_tests" \
  $(( $(date +%s) - t0 )) "$([ $rc = 0 ] && echo true || echo false)"
exit $rc
