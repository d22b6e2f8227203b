#!/usr/bin/env bash
# Make a Docker engine reachable: install Debian's docker.io when none is
# installed (needs root), start dockerd in the background when none answers,
# then wait until `docker info` succeeds. Safe to run repeatedly.
set -euo pipefail

log() { printf '[docker-up] %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  log "Docker engine already reachable"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    log "no Docker engine and not root: install Docker, or run this script as root"
    exit 1
  fi
  log "installing docker.io from the machine's apt sources"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if [ "$(id -u)" -ne 0 ]; then
  log "dockerd is installed but not running, and starting it needs root"
  exit 1
fi

log "starting dockerd in the background (log: /var/log/idemproof-dockerd.log)"
nohup dockerd >/var/log/idemproof-dockerd.log 2>&1 &

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "Docker engine ready"
    exit 0
  fi
  sleep 1
done
log "dockerd did not become ready within 60 s; last log lines:"
tail -n 20 /var/log/idemproof-dockerd.log >&2 || true
exit 1
