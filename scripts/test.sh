#!/usr/bin/env bash
# Everything the tests need, then every test: provisions ONNX Runtime, the Python tools (test
# models are built by the tests themselves with them) and the headless browser of the report
# tests, checks formatting and lints, and runs the whole suite, then the Python package's
# tests and examples/notebook.py.
# usage: scripts/test.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/fetch-onnxruntime.sh
scripts/python-env.sh
scripts/browser-env.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo clippy -p layerwise-python --quiet -- -D warnings
cargo test --all-targets
scripts/python-test.sh
