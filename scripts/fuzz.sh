#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted bytes, with cargo-fuzz (libFuzzer + AddressSanitizer):
#   decode_image  preprocess::decode_at_least (JPEG/PNG/GIF/BMP/TIFF/WebP to RGB)
#   read_model    model::decode_model (the ONNX ModelProto reader)
#   read_tar      webdataset::read_from (WebDataset tar shards to samples)
#   read_parquet  parquet::read_from (Parquet shards to samples)
#   read_tables   view::read::StoredRun (a run's tables, written with schemas drawn from the
#                 input: other integer, string and list types, wrong types, nulls, dropped columns)
# Each target starts from the seeds checked in under fuzz/seeds/<target>/, copied into a scratch
# corpus fuzz/corpus/<target>/ (git-ignored; it grows across runs), and runs for SECONDS.
# Exits non-zero if a target crashes, saying where libFuzzer wrote the input; keep it under
# fuzz/regressions/<target>/ so that tests/it/fuzz_regressions.rs replays it.
#
# Needs a nightly toolchain (rustup toolchain install nightly); installs cargo-fuzz when
# `cargo fuzz` is missing. Without nightly it exits 1, or 0 when LAYERWISE_FUZZ_OPTIONAL=1.
#
# usage: scripts/fuzz.sh [SECONDS]    (default 60, per target)
#        LAYERWISE_FUZZ_RUNS=N scripts/fuzz.sh
#            N inputs per target from a fixed seed instead of a time: the same inputs on every
#            machine, as CI (.ci/run) runs it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=${1:-60}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS]   (SECONDS per target, a positive integer)" >&2
    exit 2
fi
targets=(decode_image read_model read_tar read_parquet read_tables)
limit=(-max_total_time="$seconds")
if [[ -n ${LAYERWISE_FUZZ_RUNS:-} ]]; then
    limit=(-runs="$LAYERWISE_FUZZ_RUNS" -seed=1)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly Rust toolchain; cargo-fuzz needs one (for the sanitizer flags)." >&2
    echo "fuzz.sh: install it with: rustup toolchain install nightly" >&2
    if [[ ${LAYERWISE_FUZZ_OPTIONAL:-} == 1 ]]; then
        echo "fuzz.sh: LAYERWISE_FUZZ_OPTIONAL=1, so skipping the fuzzing." >&2
        exit 0
    fi
    exit 1
fi

if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# Build every target once up front, so that build failures are told apart from crashes.
start=$(date +%s)
cargo +nightly fuzz build
echo "fuzz.sh: built the fuzz targets in $(($(date +%s) - start)) s" >&2

failed=()
for target in "${targets[@]}"; do
    corpus=$root/fuzz/corpus/$target
    artifacts=$root/fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    cp "$root"/fuzz/seeds/"$target"/* "$corpus"/
    marker=$(mktemp)
    echo "fuzz.sh: fuzzing $target (${limit[*]})" >&2
    status=0
    cargo +nightly fuzz run "$target" "$corpus" -- \
        "${limit[@]}" -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 ||
        status=$?
    if [[ $status -ne 0 ]]; then
        found=$(find "$artifacts" -type f -newer "$marker" | sort)
        echo "fuzz.sh: $target FAILED (exit $status)" >&2
        if [[ -n $found ]]; then
            echo "fuzz.sh: the input that broke it:" >&2
            sed 's/^/  /' <<<"$found" >&2
            echo "fuzz.sh: replay it with: cargo +nightly fuzz run $target <file>" >&2
            echo "fuzz.sh: keep it with: cp <file> fuzz/regressions/$target/" >&2
        fi
        failed+=("$target")
    fi
    rm -f "$marker"
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: no crash in ${targets[*]} (${limit[*]} each)" >&2
