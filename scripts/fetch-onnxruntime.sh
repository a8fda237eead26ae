#!/usr/bin/env bash
# Fetches ONNX Runtime's shared library from the official Python wheel into .cache/onnxruntime/,
# where layerwise finds it. Nothing else is installed.
#
# usage: scripts/fetch-onnxruntime.sh [--gpu] [VERSION]
#   VERSION  the wheel's version (default 1.32.0, or 1.31.1 with --gpu: the newest
#            onnxruntime-gpu release; 1.19 or later: older wheels do not ship the shared
#            library, and ort 2.0.0-rc.15 needs 1.17 or later)
#   --gpu    take the onnxruntime-gpu wheel instead (1.31.1 links CUDA 13: libcudart.so.13)
#
# layerwise looks for the library at ORT_DYLIB_PATH, then the config's [run] onnxruntime, then
# (an installed layerwise) its own Python environment or (one built from this checkout) this
# cache, then an onnxruntime package importable by python3. Installed from the wheel, it needs
# none of this: pip install "layerwise[cpu]" brings the library.
set -euo pipefail

package=onnxruntime
default_version=1.32.0
if [[ "${1:-}" == "--gpu" ]]; then
  package=onnxruntime-gpu
  default_version=1.31.1
  shift
fi
version=${1:-$default_version}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dest="$root/.cache/onnxruntime"

if [[ -f "$dest/libonnxruntime.so.$version" && -f "$dest/.package" && "$(cat "$dest/.package")" == "$package==$version" ]]; then
  echo "ONNX Runtime $version ($package) is already in $dest"
  exit 0
fi

echo "Fetching the $package==$version wheel ..."
rm -rf "$dest"
scripts/extract-wheel.sh "$package==$version" "$dest" 'onnxruntime/capi/lib*.so*'
echo "$package==$version" > "$dest/.package"
ls "$dest"/libonnxruntime.so.* >/dev/null
echo "ONNX Runtime $version is in $dest"
