#!/usr/bin/env bash
# Make what the report test (`cargo test --test report`) opens its files
# with available: headless Chromium for the HTML (Debian's chromium, with a
# font for the screenshots) and xmllint for the JUnit XML's schema
# (libxml2-utils). Installs from the machine's apt sources what is missing
# (needs root), then checks that both start. Safe to run repeatedly.
set -euo pipefail

log() { printf '[chromium] %s\n' "$*" >&2; }

CHROMIUM=/usr/bin/chromium

if [ ! -x "$CHROMIUM" ] || ! command -v xmllint >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    log "$CHROMIUM or xmllint is missing and installing needs root: apt-get install chromium libxml2-utils"
    exit 1
  fi
  log "installing chromium and libxml2-utils from the machine's apt sources"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation libxml2-utils >/dev/null
fi

log "$("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM does not start")"
"$CHROMIUM" --version >/dev/null
log "$(xmllint --version 2>&1 | head -n 1)"
