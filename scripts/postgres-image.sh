#!/usr/bin/env bash
# Make the Postgres image named by IDEMPROOF_PG_IMAGE available to Docker.
#   1. present already (`docker image inspect`)  -> nothing to do;
#   2. pullable (a machine with internet)       -> pull it;
#   3. otherwise build it locally: debootstrap a minimal Debian bookworm with
#      postgresql-15 from the machine's own apt mirror and `docker import` it
#      with scripts/postgres-entrypoint.sh as entrypoint (~1-2 min, cached).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=${IDEMPROOF_PG_IMAGE:-postgres:17}

log() { printf '[postgres-image] %s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  log "$image present"
  exit 0
fi

if timeout 60 docker pull -q "$image" >/dev/null 2>&1; then
  log "pulled $image"
  exit 0
fi

log "$image cannot be pulled; building it locally with debootstrap"
if [ "$(id -u)" -ne 0 ]; then
  log "building the image needs root (debootstrap)"
  exit 1
fi

# The Debian mirror this machine already uses (deb822 or one-line format).
mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | awk '{print $2}' | grep -v security | head -n 1 || true)
if [ -z "$mirror" ]; then
  mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null \
    | grep -v security | awk '{print $2}' | head -n 1 || true)
fi
[ -n "$mirror" ] || { log "no apt mirror found in the machine's sources"; exit 1; }

command -v debootstrap >/dev/null 2>&1 || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

rootfs=$(mktemp -d /tmp/idemproof-pg-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=postgresql-15 bookworm "$rootfs" "$mirror" \
  >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
install -m 0755 "$here/postgres-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | docker import \
  --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
  --change 'EXPOSE 5432' \
  - "$image" >/dev/null
log "built $image"
