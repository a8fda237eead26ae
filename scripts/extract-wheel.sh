#!/usr/bin/env bash
# Downloads one wheel (no dependencies, nothing installed) and copies the members whose paths
# match any GLOB into DEST (flat: by their file names), each written whole before it appears.
# usage: scripts/extract-wheel.sh PACKAGE==VERSION DEST GLOB [GLOB ...]
set -euo pipefail
spec=$1
dest=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  "$spec" -d "$work"
mkdir -p "$dest"
python3 - "$dest" "$work"/*.whl "$@" <<'PY'
"""Copies the members of a wheel that match any of the globs into a folder."""
import fnmatch, os, sys, zipfile
dest, wheel, globs = sys.argv[1], sys.argv[2], sys.argv[3:]
found = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not any(fnmatch.fnmatch(name, g) for g in globs):
            continue
        base = os.path.basename(name)
        part = os.path.join(dest, base + ".part")
        with z.open(name) as src, open(part, "wb") as out:
            out.write(src.read())
        os.replace(part, os.path.join(dest, base))
        print("  " + base)
        found += 1
if not found:
    sys.exit(f"{os.path.basename(wheel)} has no member matching {' '.join(globs)}")
PY
