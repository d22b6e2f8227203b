#!/usr/bin/env bash
# Make a Postgres image available to Docker and print its name on stdout.
#
# With IDEMPROOF_PG_IMAGE set, that image is used: present, else pulled,
# else (for names under idemproof/) built locally. Unset, the official
# postgres:17 is used when present or pullable, and otherwise a local image
# idemproof/postgres:15-bookworm is built: debootstrap a minimal Debian
# bookworm with postgresql-15 from the machine's own apt mirror and
# `docker import` it with scripts/postgres-entrypoint.sh as entrypoint
# (about a minute; cached by `docker image inspect`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
official=postgres:17
local_image=idemproof/postgres:15-bookworm

log() { printf '[postgres-image] %s\n' "$*" >&2; }
present() { docker image inspect "$1" >/dev/null 2>&1; }
pull() { timeout 120 docker pull -q "$1" >/dev/null 2>&1; }

build_local() {
  local image=$1
  log "building $image locally with debootstrap (about a minute)"
  if [ "$(id -u)" -ne 0 ]; then
    log "building the image needs root (debootstrap)"
    return 1
  fi
  # The Debian mirror this machine already uses (deb822 or one-line format).
  local mirror
  mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '{print $2}' | grep -v security | head -n 1 || true)
  if [ -z "$mirror" ]; then
    mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null \
      | grep -v security | awk '{print $2}' | head -n 1 || true)
  fi
  [ -n "$mirror" ] || { log "no apt mirror found in the machine's sources"; return 1; }
  command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  local rootfs
  rootfs=$(mktemp -d /tmp/idemproof-pg-rootfs.XXXXXX)
  if ! debootstrap --variant=minbase --include=postgresql-15 bookworm "$rootfs" "$mirror" \
    >"$rootfs.log" 2>&1; then
    tail -n 30 "$rootfs.log" >&2
    rm -rf "$rootfs" "$rootfs.log"
    return 1
  fi
  rm -f "$rootfs.log"
  install -m 0755 "$here/postgres-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
    --change 'EXPOSE 5432' \
    - "$image" >/dev/null
  rm -rf "$rootfs"
  log "built $image"
}

if [ -n "${IDEMPROOF_PG_IMAGE:-}" ]; then
  image=$IDEMPROOF_PG_IMAGE
  if present "$image" || pull "$image"; then
    :
  elif [[ $image == idemproof/* ]]; then
    build_local "$image"
  else
    log "image $image is neither present nor pullable"
    exit 1
  fi
elif present "$official" || pull "$official"; then
  image=$official
else
  log "$official cannot be pulled; using the local image $local_image"
  image=$local_image
  present "$image" || build_local "$image"
fi
log "using $image"
echo "$image"
