#!/usr/bin/env bash
# Creates a virtual environment with the Python tools of a requirements file (skipped when up to
# date): by default .venv with scripts/requirements.txt, the tests' whole toolchain.
# usage: scripts/python-env.sh [VENV REQUIREMENTS]
#   scripts/demo.sh calls it with .cache/demo-venv scripts/demo-requirements.txt (the demo's few).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:-"$root/.venv"}
requirements=${2:-"$root/scripts/requirements.txt"}
stamp="$venv/.requirements"
if [[ -f "$stamp" ]] && cmp -s "$stamp" "$requirements"; then
  exit 0
fi
echo "Setting up the Python tools of $(basename "$requirements") in $venv ..."
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
