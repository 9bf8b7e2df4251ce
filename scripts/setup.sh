#!/usr/bin/env bash
# Sets up .venv from scratch (idempotent): system packages when root, Python packages, our package.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES="${APT_PACKAGES:-}"
if [ -n "$APT_PACKAGES" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=$(for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    echo "setup: apt-get install $missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r "${REQUIREMENTS:-requirements/test.txt}"
