#!/usr/bin/env bash
# Each table's bytes on disk and layerwise's writing CPU per image, for every bench workload
# (pipelines/bench-*.toml) under each codec setting: the defaults (maps Snappy, the other
# tables Zstandard), `compression = "zstd"` (every table Zstandard, the defaults before issue
# 26), maps LZ4_RAW, and no compression. Prints a Markdown table from each run's run.json.
# usage: benches/codecs.sh [IMAGES]     (default 256; needs the benchmark models and images,
#                                        see benches/compare.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
images=${1:-256}
cargo build --release --quiet
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $images images"
echo
echo "| workload | codecs | maps | stats | positions | all tables | write CPU | own CPU |"
echo "|---|---|---|---|---|---|---|---|"
variant() {  # variant WORKLOAD LABEL SETTING (a key of [output], or a table after it)
    local config=$scratch/bench.toml
    if [[ $3 == \[* ]]; then
        sed "s|\"\.\./|\"$root/|" "pipelines/$1.toml" > "$config"
        printf '%b\n' "$3" >> "$config"  # [output] is the configs' last table
    else
        sed "s|\"\.\./|\"$root/|; s|^\[output\]|[output]\n$3|" "pipelines/$1.toml" > "$config"
    fi
    target/release/layerwise run "$config" --out "$scratch/out" --limit "$images" --overwrite -q \
        >/dev/null 2>"$scratch/log" || { cat "$scratch/log" >&2; exit 1; }
    python3 - "$1" "$2" "$images" "$scratch/out/run.json" <<'PY'
import json, sys
workload, label, n, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
record = json.load(open(path))
b = record["counts"]["bytes"]
cpu = record["timings"]["cpu"]
kib = lambda v: f"{v / n / 1024:,.1f} KiB"
print(f"| {workload} | {label} | {kib(b['maps'])} | {kib(b['stats'])} | {kib(b['positions'])} | "
      f"{kib(sum(b.values()))} | {cpu['write_ms']:.2f} ms | {cpu['own_ms']:.2f} ms |")
PY
}
for workload in bench-small bench-mid bench-vgg16 bench-vit; do
    variant $workload "defaults" ""
    variant $workload "\`compression = \"zstd\"\`" 'compression = "zstd"'
    variant $workload "maps \`lz4_raw\`" '[output.compression]\nmaps = "lz4_raw"'
    variant $workload "\`compression = \"none\"\`" 'compression = "none"'
done
