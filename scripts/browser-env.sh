#!/usr/bin/env bash
# Installs Debian's headless browser for the report's browser tests (tests/it/report.rs drives
# /usr/bin/chromium through /usr/bin/chromedriver with selenium): skipped when both are there.
# Needs root (or sudo) and Debian's package archive.
# usage: scripts/browser-env.sh
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
echo "Installing chromium and chromium-driver from Debian's packages ..."
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver
