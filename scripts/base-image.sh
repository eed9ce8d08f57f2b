#!/usr/bin/env bash
# The local base image: a clean Debian bookworm root built by debootstrap from Debian's own packages,
# shaped like a `python:3.11-slim-bookworm` image (python/python3 3.11 with venv and pip, CA
# certificates, passwd tools), imported into podman. Used where no registry can be pulled from:
# `scripts/fresh-machine.sh` (a bare machine) and `make images` (PYTHON_IMAGE of every Dockerfile).
#
# Built once and cached: the image is rebuilt only when it is missing or this script changed.
# Needs root, podman and debootstrap (`apt-get install -y podman runc debootstrap`).
#
# Usage: scripts/base-image.sh            prints the image name when it is ready
# Env:   EI_BASE_IMAGE   image name       (default localhost/edgeinspect-base:bookworm)
#        EI_CACHE_DIR    debootstrap root (default ~/.cache/edgeinspect)
#        EI_DEBIAN_MIRROR                 (default the mirror in this machine's apt sources, else Debian's)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/podman-env.sh
. "$here/scripts/podman-env.sh"

image=${EI_BASE_IMAGE:-localhost/edgeinspect-base:bookworm}
cache=${EI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeinspect}
packages=python3.11,python3.11-venv,python3-venv,python3-pip,python-is-python3,ca-certificates,make
say() { printf '\033[1;34m[base-image]\033[0m %s\n' "$*" >&2; }

recipe=$(sha256sum "$0" | cut -c1-16)
if podman image exists "$image" \
  && [ "$(podman image inspect --format '{{ index .Labels "edgeinspect.recipe" }}' "$image")" = "$recipe" ]; then
  echo "$image"
  exit 0
fi

require_root_tools debootstrap
mirror=${EI_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources \
  2>/dev/null | head -1)}
mirror=${mirror:-http://deb.debian.org/debian}
root="$cache/bookworm-$recipe"
if [ ! -f "$root/.complete" ]; then
  rm -rf "$root"
  mkdir -p "$root"
  say "debootstrap --variant=minbase bookworm from $mirror (about a minute)"
  debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
    say "debootstrap failed; its log: $cache/debootstrap.log"
    tail -20 "$cache/debootstrap.log" >&2
    exit 1
  }
  # What a bare machine on this network needs to reach the package registries: the CA bundle the
  # host trusts (TLS to the package index may be inspected by a proxy whose CA only that bundle holds).
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  # Debian's python refuses `pip install` outside a venv (PEP 668); the project always uses venvs, as
  # does every Dockerfile, so the marker stays. A python:*-slim image has these two environment
  # conventions too: UTF-8 and no .pyc files written at random.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/locale/*
  touch "$root/.complete"
fi
say "importing $root as $image"
tar -C "$root" --exclude=./.complete -c . | podman import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL edgeinspect.recipe=$recipe" \
  --change 'CMD ["python3"]' \
  - "$image" >/dev/null
echo "$image"
