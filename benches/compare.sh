#!/usr/bin/env bash
# Compares, on the same images, models and layers: ONNX Runtime alone on pre-decoded batches
# (the ceiling), `layerwise run`, and the Python peer (Pillow + numpy + onnxruntime + pyarrow).
#
# usage: benches/compare.sh [IMAGES]     (default 512 JPEGs; needs ../shared/bench)
# Prints the date and cores, images/s and peak RSS of each, where layerwise's time per image
# goes, and the ratios layerwise/ceiling and layerwise/peer.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
count=${1:-512}
bench=${LAYERWISE_BENCH_TOOLS:-$root/../shared/bench}
data=target/bench

scripts/fetch-onnxruntime.sh >/dev/null
scripts/python-env.sh
[[ -f $data/models/vgg16.onnx ]] || .venv/bin/python "$bench/make_models.py" $data/models
if [[ $(find $data/images -name '*.jpg' 2>/dev/null | wc -l) -ne $count ]]; then
  rm -rf $data/images
  .venv/bin/python "$bench/make_images.py" $data/images "$count"
fi
cargo build --release --quiet
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $count images"

# measure NAME COMMAND...: prints "NAME images/s peak-RSS-MiB"
measure() {
  local name=$1; shift
  local log
  log=$(mktemp)
  /usr/bin/time -f "rss_kib=%M" "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
  local rate rss
  rate=$(grep -oE 'images_per_s=[0-9.]+|[0-9.]+ images/s' "$log" | tail -1 | grep -oE '[0-9.]+' | head -1)
  rss=$(grep -oE 'rss_kib=[0-9]+' "$log" | cut -d= -f2)
  printf '%-10s %10.1f images/s %8.0f MiB\n' "$name" "$rate" "$((rss / 1024))"
  printf -v "${name}_rate" '%s' "$rate"
  rm -f "$log"
}

workload() {
  local config=$1 model=$2 outputs=$3 keep=$4 scale=$5
  echo "== $config: $outputs"
  measure ceiling .venv/bin/python "$bench/peer_ort.py" bare $data/models/$model $data/images /tmp/layerwise-peer \
    --outputs "$outputs" --keep "$keep" --batch 8 --threads 2 --scale "$scale"
  measure layerwise target/release/layerwise run "pipelines/$config.toml" --overwrite --quiet
  # Where layerwise's time goes, from its run.json (decoding overlaps the model).
  .venv/bin/python - "out/$config/run.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["timings"]
n = t["images"]
print(f"           per image: model {1000 * t['model_s'] / n:.2f} ms, outside the model "
      f"{1000 * (t['run_s'] - t['model_s']) / n:.2f} ms (reduce {1000 * t['reduce_s'] / n:.2f} ms, "
      f"decode {1000 * t['decode_s'] / n:.2f} ms overlapped, writer wait {1000 * t['write_wait_s'] / n:.2f} ms)")
PY
  measure peer .venv/bin/python "$bench/peer_ort.py" pipeline $data/models/$model $data/images /tmp/layerwise-peer \
    --outputs "$outputs" --keep "$keep" --batch 8 --threads 2 --scale "$scale"
  awk -v l="$layerwise_rate" -v c="$ceiling_rate" -v p="$peer_rate" \
    'BEGIN { printf "layerwise/ceiling %.2f   layerwise/peer %.2f\n", l / c, l / p }'
}

workload bench-vgg16 vgg16.onnx block1_conv1,block5_conv3 0,11,12,27,30,34 1
workload bench-small small.onnx conv1,conv4 0,1,2,3,4 0.00392156862745098
