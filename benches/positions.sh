#!/usr/bin/env bash
# The positions table's cost: for each element type and codec, the bytes per million position
# vectors (ViT-S block11: 384 values each) against raw float32, and the writer's own CPU per MB of
# vectors, from runs of pipelines/bench-vit.toml (every token of block11) on the same images, each
# codec set by `[output] positions_compression`. The writer's CPU is that of the writer and
# encoder threads over the run less that of the same run without positions (their idle spinning
# included); `cargo bench --bench stages -- positions` times the write path alone.
# usage: benches/positions.sh [IMAGES]   (default 128; needs the benchmark model and images, see
#                                         benches/compare.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
images=${1:-128}
source "$root/benches/measure.sh"
prepare_bench "$images"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# run POSITIONS DTYPE CODEC: a run of the benchmark over the images with block11's `positions`
# as given; leaves its run.json in $scratch/out.
run() {
  sed "s|\"\.\./|\"$root/|; s|^positions = \"all\"|positions = $1\npositions_dtype = \"$2\"|; s|^\[output\]|[output]\npositions_compression = \"$3\"|" \
    pipelines/bench-vit.toml > "$scratch/vit.toml"
  "$bin" run "$scratch/vit.toml" --out "$scratch/out" --limit "$images" --overwrite -q \
    >/dev/null 2>"$scratch/log" || { cat "$scratch/log" >&2; exit 1; }
}
# The writer's CPU of the same run without positions (its stats, images ... tables), taken off
# each run's: what is left is the positions'.
run '"none"' float16 none
cp "$scratch/out/run.json" "$scratch/base.json"
echo "| positions_dtype | positions_compression | MB per million vectors | of raw float32 | writer CPU per MB of vectors |"
echo "|---|---|---|---|---|"
for dtype in float16 float32; do
  for codec in none zstd snappy; do
    run '"all"' "$dtype" "$codec"
    $python - "$dtype" "$codec" "$scratch/out/run.json" "$scratch/base.json" <<'PY'
import json, sys
dtype, codec, path, base = sys.argv[1:]
run, base = json.load(open(path)), json.load(open(base))
counts = run["counts"]
rows = counts["rows"]["positions"]
size = counts["bytes"]["positions"]
raw = rows * 384 * (2 if dtype == "float16" else 4)
per_million = size / rows * 1e6 / 1e6
images = run["timings"]["images"]
write_s = (run["timings"]["cpu"]["write_ms"] - base["timings"]["cpu"]["write_ms"]) * images / 1000
print(f"| {dtype} | {codec} | {per_million:,.0f} | {size / (rows * 384 * 4):.2f} | "
      f"{write_s / (raw / 1e6) * 1000:.2f} ms ({raw / 1e6 / write_s:,.0f} MB/s) |")
PY
  done
done
