#!/usr/bin/env bash
# Builds the release wheel of layerwise into dist/: the `layerwise` executable in a wheel tagged
# manylinux_2_28 (RHEL / Rocky 8 and later, Debian 10+, Ubuntu 18.10+), linked by maturin with
# zig against glibc 2.28 whatever this machine's glibc is. It goes the way `pip install .`
# goes (pip, with maturin as the PEP 517 backend of pyproject.toml), with maturin's options in
# MATURIN_PEP517_ARGS; maturin and ziglang are the pinned ones of scripts/requirements.txt (the
# project's .venv, set up here when missing).
#
# usage: scripts/build-wheel.sh
# then:  pip install "dist/layerwise-<version>-cp39-abi3-manylinux_2_28_x86_64.whl[cpu]"
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/python-env.sh
# maturin finds zig through the Python that has ziglang.
export PATH="$root/.venv/bin:$PATH"
rm -f dist/layerwise-*.whl
MATURIN_PEP517_ARGS="--locked --zig --compatibility manylinux_2_28" \
  .venv/bin/python -m pip wheel . --no-build-isolation --no-deps --disable-pip-version-check \
  --wheel-dir dist
ls dist/layerwise-*.whl
