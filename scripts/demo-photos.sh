#!/usr/bin/env bash
# Takes the demo's two photos (astronaut.png, chelsea.png: public-domain / CC0 images bundled
# with scikit-image) out of the scikit-image wheel into a folder, without installing it and its
# dependencies.
# usage: scripts/demo-photos.sh DEST
set -euo pipefail
dest=$1
version=0.26.0
if [[ -f "$dest/astronaut.png" && -f "$dest/chelsea.png" ]]; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "Fetching the demo's two photos from the scikit-image==$version wheel ..."
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  "scikit-image==$version" -d "$work"
mkdir -p "$dest"
python3 - "$dest" "$work"/*.whl <<'PY'
"""Extracts skimage/data/{astronaut,chelsea}.png from a wheel into a folder."""
import os, sys, zipfile
dest, wheel = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("astronaut.png", "chelsea.png"):
        with z.open("skimage/data/" + name) as src, open(os.path.join(dest, name + ".part"), "wb") as out:
            out.write(src.read())
        os.replace(os.path.join(dest, name + ".part"), os.path.join(dest, name))
PY
