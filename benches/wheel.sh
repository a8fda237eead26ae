#!/usr/bin/env bash
# The wheel's executable (linked by zig against glibc 2.28, its C parts compiled by zig's clang)
# against cargo's release build, on the same configs and images: alternating A/B rounds.
#
# usage: benches/wheel.sh [IMAGES] [ROUNDS]   (default 512 JPEGs, 3 rounds; needs ../shared/bench)
# Builds the wheel (scripts/build-wheel.sh) and installs it with [cpu] into a temporary virtual
# environment; both binaries then use that environment's ONNX Runtime library (ORT_DYLIB_PATH),
# so that only the executables differ.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
count=${1:-512}
rounds=${2:-3}
source "$root/benches/measure.sh"
prepare_bench "$count"
scripts/build-wheel.sh >/dev/null
env=$(mktemp -d)
trap 'rm -rf "$env"' EXIT
python3 -m venv "$env"
"$env/bin/python" -m pip install --quiet --disable-pip-version-check \
  "$(ls dist/layerwise-*.whl)[cpu]" "$(grep '^onnxruntime==' scripts/requirements.txt)"
export ORT_DYLIB_PATH
ORT_DYLIB_PATH=$(ls "$env"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*)
for config in bench-small bench-mid; do
  echo "== $config"
  for round in $(seq "$rounds"); do
    measure "cargo-$round" "$bin" run "pipelines/$config.toml" --overwrite --quiet
    measure "wheel-$round" "$env/bin/layerwise" run "pipelines/$config.toml" --overwrite --quiet
  done
done
