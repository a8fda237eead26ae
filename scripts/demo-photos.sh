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
echo "Fetching the demo's two photos from the scikit-image==$version wheel ..."
"$(dirname "${BASH_SOURCE[0]}")/extract-wheel.sh" "scikit-image==$version" "$dest" \
  'skimage/data/astronaut.png' 'skimage/data/chelsea.png'
