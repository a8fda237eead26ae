#!/usr/bin/env bash
# Times the figures on a run of 10,000 images (the light benchmark model, conv1 keeping 5
# channels' maps and top_k = 16 for every channel of conv4): `plot images` over 49 images and
# `plot top`. The stats and maps are read with column projection and row-group pruning.
#
# usage: benches/plots.sh [IMAGES]     (default 10000; needs ../shared/bench)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
count=${1:-10000}
bench=${LAYERWISE_BENCH_TOOLS:-$root/../shared/bench}
data=target/bench-plots

scripts/fetch-onnxruntime.sh >/dev/null
scripts/python-env.sh
[[ -f target/bench/models/small.onnx ]] || .venv/bin/python "$bench/make_models.py" target/bench/models
if [[ $(find $data/images -name '*.jpg' 2>/dev/null | wc -l) -ne $count ]]; then
  rm -rf $data/images
  .venv/bin/python "$bench/make_images.py" $data/images "$count"
fi
cargo build --release --quiet
cat > $data/small-top.toml <<TOML
name = "bench-plots"
[input]
root = "images"
[model]
path = "../bench/models/small.onnx"
[run]
batch_size = 8
[[layers]]
name = "conv1"
tensor = "conv1"
keep = [0, 1, 2, 3, 4]
[[layers]]
name = "conv4"
tensor = "conv4"
top_k = 16
[output]
dir = "out"
TOML
if [[ ! -f $data/out/run.json ]]; then
  target/release/layerwise run $data/small-top.toml --overwrite --quiet
fi
time_it() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v what="$*" 'BEGIN { printf "%6.3f s  %s\n", e - s, what }'
}
echo "run of $(find $data/images -name '*.jpg' | wc -l) images; maps $(du -sh $data/out/maps | cut -f1), top $(du -sh $data/out/top | cut -f1)"
time_it target/release/layerwise plot images --run $data/out --layer conv1 --channel 3 --images 0..49
time_it target/release/layerwise plot images --run $data/out --layer conv1 --channel 3 --images 9000..9049
time_it target/release/layerwise plot top --run $data/out --layer conv4 --channel 7 --k 16
time_it target/release/layerwise plot channels --run $data/out --layer conv1 --image 9999
