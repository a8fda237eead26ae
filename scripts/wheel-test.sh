#!/usr/bin/env bash
# The wheel as users get it: builds it (scripts/build-wheel.sh), checks with auditwheel that
# its platform tag is manylinux_2_28 or older, then tests/it/wheel.rs installs it into a fresh
# virtual environment outside the repository, once bare and once with [cpu], and checks
# `layerwise doctor` and a run against the cargo build. CI runs it after the suite.
# usage: scripts/wheel-test.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/build-wheel.sh
wheel=$(ls dist/layerwise-*.whl)
shown=$(.venv/bin/auditwheel show "$wheel" | tr '\n' ' ')
echo "auditwheel show: $shown"
tag=$(grep -oE 'platform tag: "manylinux_2_[0-9]+_x86_64"' <<<"$shown" | grep -oE '[0-9]+_x86_64' || true)
if [[ -z "$tag" || "${tag%_x86_64}" -gt 28 ]]; then
  echo "wheel-test.sh: $wheel is not manylinux_2_28 or older (auditwheel: $shown)" >&2
  exit 1
fi
LAYERWISE_WHEEL="$root/$wheel" cargo test --test it wheel:: -- --ignored
