#!/usr/bin/env bash
# The Python package's tests (python/tests, pytest): builds the extension (bindings/python, the
# dev profile the Rust tests build the library with), puts it beside the package's sources and
# runs pytest with the project's Python tools (.venv, which has the onnxruntime wheel whose
# library the package finds, as an installed one does). scripts/test.sh runs it; the installed
# wheel is tested by scripts/wheel-test.sh.
# usage: scripts/python-test.sh [PYTEST ARGS]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/python-env.sh
cargo build --quiet -p layerwise-python
cp -f target/debug/lib_native.so python/layerwise/_native.abi3.so
PYTHONPATH="$root/python" .venv/bin/python -m pytest -q python/tests "$@"
