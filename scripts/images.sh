#!/usr/bin/env bash
# `make images`: every image of the project built with podman from the repository's Dockerfiles, on
# the local base image (scripts/base-image.sh: debootstrap bookworm + python3.11, shaped like
# python:3.11-slim-bookworm) because no container registry can be pulled from here. Tagged as
# docker-compose.yml (`edgeinspect-<name>:dev`) and the chart (`edgeinspect-<name>:<appVersion>`)
# expect. Prints each image's size, size above the base and build time, then one JSON line; edge
# images above the base plus 250 MB are marked there and counted (over_budget). The compose images'
# first layers are the same in every Dockerfile, so they are built once (podman's layer cache).
#
# Usage: scripts/images.sh [NAME...]     (default: every buildable image; names as in the table)
# Env:   EI_BASE_IMAGE, EI_CACHE_DIR     see scripts/base-image.sh
#        EI_TORCH_INDEX_URL             PyTorch's CPU wheel index for the cloud image, used when no
#                                       local wheel folder of pip's (find-links) holds the pinned torch
#        PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS   as for pip; default: pip's configuration
# The Jetson agent (VARIANT=jetson) needs NVIDIA's L4T base image, which no package registry ships:
# it is not built here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source=scripts/podman-env.sh
. "$here/scripts/podman-env.sh"
say() { printf '\033[1;34m[images]\033[0m %s\n' "$*" >&2; }

cache=${EI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeinspect}
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' helm/edgeinspect/Chart.yaml)
# name | Dockerfile | target | image repository (compose and chart)
table="camera services/camera/Dockerfile camera edgeinspect-camera
inference-worker services/inference/Dockerfile worker edgeinspect-inference
agent services/inference/Dockerfile agent edgeinspect-agent
model-manager services/model-manager/Dockerfile model-manager edgeinspect-model-manager
uploader services/uploader/Dockerfile uploader edgeinspect-uploader
ui services/ui/Dockerfile ui edgeinspect-ui
line-io services/line-io/Dockerfile line-io edgeinspect-line-io
fleet cloud/Dockerfile fleet edgeinspect-fleet
cloud cloud/Dockerfile cloud edgeinspect-cloud"
wanted=("$@")

t0=$(date +%s)
base=$("$here/scripts/base-image.sh")
base_bytes=$(podman image inspect --format '{{.Size}}' "$base")

ei_pip_build_args  # EI_PIP_BUILD_ARGS: this machine's pip index and wheel folders (podman-env.sh)
# the cloud image's torch: the CPU build, from those wheel folders (as make setup), else this index
torch_args=(--build-arg "TORCH_INDEX_URL=${EI_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}")

rows=()
json=()
failed=0
over=0
EDGE_BUDGET_MB=250 # every edge image within the base image plus this (docs/deploy.md "Images")
while read -r name dockerfile target repo; do
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " == *" $name "* ]]; then
    continue
  fi
  extra=("${EI_PIP_BUILD_ARGS[@]}")
  [ "$name" = cloud ] && extra+=("${torch_args[@]}")
  # podman 4's builder (buildah 1.28) cannot resolve a stage named through an ARG (`FROM python-${VARIANT}`:
  # "short-name python-cpu did not resolve"); the CPU agent is built from a copy with VARIANT spelled out.
  if grep -q 'FROM [a-z-]*\${VARIANT}' "$dockerfile"; then
    mkdir -p "$cache/images"
    sed 's/\(FROM [a-z-]*\)\${VARIANT}/\1cpu/' "$dockerfile" >"$cache/images/$name.Dockerfile"
    dockerfile="$cache/images/$name.Dockerfile"
  fi
  log="$cache/images/$name.log"
  mkdir -p "$cache/images"
  say "building $repo:dev ($dockerfile, target $target; log $log)"
  start=$(date +%s)
  if podman build --format docker --network host --build-arg "PYTHON_IMAGE=$base" --build-arg "VERSION=$version" \
    "${extra[@]}" -f "$dockerfile" --target "$target" -t "$repo:dev" -t "$repo:$version" . >"$log" 2>&1; then
    seconds=$(( $(date +%s) - start ))
    bytes=$(podman image inspect --format '{{.Size}}' "$repo:dev")
    above=$(((bytes - base_bytes) / 1000000))
    note=""
    if [ "$name" = cloud ]; then
      note="training image, not edge: PyTorch (CPU) + TensorFlow/Keras (docs/deploy.md)"
    elif [ "$above" -gt "$EDGE_BUDGET_MB" ]; then
      note="OVER the edge budget (base + $EDGE_BUDGET_MB MB)"
      over=$((over + 1))
    fi
    rows+=("$(printf '%-18s %-34s %8d %10d %9d  %s' "$name" "$repo:dev" $((bytes / 1000000)) "$above" "$seconds" "$note")")
    json+=("{\"image\": \"$name\", \"tag\": \"$repo:dev\", \"size_mb\": $((bytes / 1000000)), \"above_base_mb\": $above, \"build_s\": $seconds}")
  else
    seconds=$(( $(date +%s) - start ))
    failed=$((failed + 1))
    tail -25 "$log" >&2
    rows+=("$(printf '%-18s %-34s %8s %10s %9d  FAILED (%s)' "$name" "$repo:dev" - - "$seconds" "$log")")
    json+=("{\"image\": \"$name\", \"tag\": \"$repo:dev\", \"failed\": true, \"build_s\": $seconds}")
  fi
done <<<"$table"

total=$(( $(date +%s) - t0 ))
printf '\n%-18s %-34s %8s %10s %9s\n' image tag size_MB above_base build_s
printf '%-18s %-34s %8d %10s %9s\n' base "$base" $((base_bytes / 1000000)) - -
printf '%s\n' "${rows[@]}"
printf 'total %ss; agent-jetson not built (needs NVIDIA L4T base image)\n' "$total"
printf '{"base_mb": %d, "total_s": %d, "failed": %d, "over_budget": %d, "images": [%s]}\n' $((base_bytes / 1000000)) \
  "$total" "$failed" "$over" "$(IFS=,; echo "${json[*]}" | sed 's/},{/}, {/g')"
[ "$failed" = 0 ]
