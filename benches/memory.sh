#!/usr/bin/env bash
# Peak memory: the VGG16-shaped classic study at batch 16, and the light model on 1,000 and
# 10,000 images (memory must not grow with the dataset); with `vit`, the ViT benchmark writing
# every token's vector (`positions = "all"`) on 1,000 and 10,000 images instead (about 10 minutes
# on 2 cores).
# usage: benches/memory.sh [vit]     (needs ../shared/bench; makes 10,000 images once)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bench=${LAYERWISE_BENCH_TOOLS:-$root/../shared/bench}
scripts/fetch-onnxruntime.sh >/dev/null
scripts/python-env.sh
[[ -f target/bench/models/vgg16.onnx ]] || .venv/bin/python "$bench/make_models.py" target/bench/models
[[ -d target/bench/images ]] || .venv/bin/python "$bench/make_images.py" target/bench/images 512
if [[ $(find target/bench-plots/images -name '*.jpg' 2>/dev/null | wc -l) -ne 10000 ]]; then
  rm -rf target/bench-plots/images
  .venv/bin/python "$bench/make_images.py" target/bench-plots/images 10000
fi
cargo build --release --quiet
peak() {  # peak RSS in MiB of a command
  /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -n 1 | awk '{ printf "%.0f", $1 / 1024 }'
}
# ten_thousand NAME CONFIG OUT: the peak RSS of CONFIG on 1,000 and on 10,000 of the images.
ten_thousand() {
  sed "s|root = \"\.\./target/bench/images\"|root = \"../target/bench-plots/images\"|; s|out/$3|out/$3-10k|" \
    "pipelines/$2.toml" > "pipelines/.$2-10k.toml"
  local one ten
  one=$(peak target/release/layerwise run "pipelines/.$2-10k.toml" --overwrite --quiet --limit 1000)
  ten=$(peak target/release/layerwise run "pipelines/.$2-10k.toml" --overwrite --quiet)
  rm -f "pipelines/.$2-10k.toml"
  awk -v n="$1" -v a="$one" -v b="$ten" \
    'BEGIN { printf "%s: 1,000 images %d MiB, 10,000 images %d MiB (ratio %.2f)\n", n, a, b, b / a }'
}
if [[ ${1:-} == vit ]]; then
  ten_thousand "vit, every token's vector" bench-vit bench-vit
  exit
fi
sed 's/^batch_size = 8/batch_size = 16/; s|out/bench-vgg16|out/bench-vgg16-b16|' pipelines/bench-vgg16.toml > target/bench/vgg16-b16.toml
sed -i 's|"\.\./target/|"../../target/|; s|"\.\./out/|"../../out/|' target/bench/vgg16-b16.toml
echo "vgg16 classic study, batch 16, 512 images: $(peak target/release/layerwise run target/bench/vgg16-b16.toml --overwrite --quiet) MiB"
ten_thousand "small model" bench-small bench-small
