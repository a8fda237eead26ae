#!/usr/bin/env bash
# The positions table's cost: for each element type and codec, the bytes per million position
# vectors (ViT-S block11: 384 values each) against raw float32, and the writer's own CPU per MB of
# vectors, from runs of pipelines/bench-vit.toml (every token of block11) on the same images, each
# codec set by `[output] positions_compression`. The writer's CPU here is that of the writer and
# encoder threads over the run (their idle spinning included); `cargo bench --bench stages --
# positions` times the write path alone.
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
echo "| positions_dtype | compression | MB per million vectors | of raw float32 | writer CPU per MB of vectors |"
echo "|---|---|---|---|---|"
for dtype in float16 float32; do
  for codec in none zstd snappy; do
    sed "s|\"\.\./|\"$root/|; s|^positions = \"all\"|positions = \"all\"\npositions_dtype = \"$dtype\"|; s|^\[output\]|[output]\npositions_compression = \"$codec\"|" \
      pipelines/bench-vit.toml > "$scratch/vit.toml"
    "$bin" run "$scratch/vit.toml" --out "$scratch/out" --limit "$images" --overwrite -q \
      >/dev/null 2>"$scratch/log" || { cat "$scratch/log" >&2; exit 1; }
    $python - "$dtype" "$codec" "$scratch/out/run.json" <<'PY'
import json, sys
dtype, codec, path = sys.argv[1:]
run = json.load(open(path))
counts, cpu = run["counts"], run["timings"]["cpu"]
rows = counts["rows"]["positions"]
size = counts["bytes"]["positions"]
raw = rows * 384 * (2 if dtype == "float16" else 4)
per_million = size / rows * 1e6 / 1e6
# The writer's CPU covers every table; the positions are all but a few KiB of what it writes.
write_s = cpu["write_ms"] * run["timings"]["images"] / 1000
print(f"| {dtype} | {codec} | {per_million:,.0f} | {size / (rows * 384 * 4):.2f} | "
      f"{write_s / (raw / 1e6) * 1000:.2f} ms ({raw / 1e6 / write_s:,.0f} MB/s) |")
PY
  done
done
