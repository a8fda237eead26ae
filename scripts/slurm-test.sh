#!/usr/bin/env bash
# Starts a one-node Slurm cluster and runs the job-array example against it
# (tests/it/slurm.rs). Needs root, for Debian's slurm-wlm and munge. CI runs it after the suite.
# usage: scripts/slurm-test.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/slurm-cluster.sh
cargo test --test it slurm:: -- --ignored
