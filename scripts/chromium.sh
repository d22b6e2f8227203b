#!/usr/bin/env bash
# Make headless Chromium available for the HTML report test
# (`cargo test --test report`): install Debian's chromium package from the
# machine's apt sources when /usr/bin/chromium is missing (needs root),
# with a font for the screenshots, then check that it starts. Safe to run
# repeatedly.
set -euo pipefail

log() { printf '[chromium] %s\n' "$*" >&2; }

CHROMIUM=/usr/bin/chromium

if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "$CHROMIUM is missing and installing it needs root: apt-get install chromium"
    exit 1
  fi
  log "installing chromium from the machine's apt sources"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
fi

log "$("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM does not start")"
"$CHROMIUM" --version >/dev/null
