#!/usr/bin/env bash
# Bytes stored per image for the classic study (pipelines/bench-vgg16.toml: block1_conv1 with
# 6 channels kept, block5_conv3 with all 512), as written and with the storage options that
# shrink it. Prints a Markdown table measured from each run's run.json.
# usage: benches/bytes.sh [IMAGES]     (default 256; needs the benchmark model and images,
#                                       see benches/compare.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
images=${1:-256}
cargo build --release --quiet
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
variant() {  # variant LABEL SED-SCRIPT
    local config=$scratch/bench.toml
    sed "s|\"\.\./|\"$root/|; $2" pipelines/bench-vgg16.toml > "$config"
    target/release/layerwise run "$config" --out "$scratch/out" --limit "$images" --overwrite -q \
        >/dev/null 2>"$scratch/log" || { cat "$scratch/log" >&2; exit 1; }
    python3 - "$1" "$images" "$scratch/out/run.json" <<'PY'
import json, sys
label, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
b = json.load(open(path))["counts"]["bytes"]
kib = lambda v: f"{v / n / 1024:,.1f} KiB"
print(f"| {label} | {kib(b['maps'])} | {kib(b['stats'])} | {kib(sum(b.values()))} |")
PY
}
echo "| storage options | maps per image | stats per image | all tables per image |"
echo "|---|---|---|---|"
variant "as written (float32; maps Snappy)" ""
variant "\`map_dtype = \"float16\"\`" 's|^\[output\]|[output]\nmap_dtype = "float16"|'
variant "\`pool = 2\` on both layers" 's|^keep = \(.*\)$|keep = \1\npool = 2|'
variant "\`pool = 2\` + float16" 's|^keep = \(.*\)$|keep = \1\npool = 2|; s|^\[output\]|[output]\nmap_dtype = "float16"|'
variant "block5_conv3 \`keep = \"0..64\"\` instead of all" 's|^keep = "all"|keep = "0..64"|'
