#!/usr/bin/env bash
# Creates .venv with the Python tools of scripts/requirements.txt (skipped when up to date).
# usage: scripts/python-env.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.requirements"
if [[ -f "$stamp" ]] && cmp -s "$stamp" "$root/scripts/requirements.txt"; then
  exit 0
fi
echo "Setting up the Python tools in $venv ..."
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/scripts/requirements.txt"
cp "$root/scripts/requirements.txt" "$stamp"
