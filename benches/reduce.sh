#!/usr/bin/env bash
# `[run] reduce = "host"` against `reduce = "graph"` on the CPU: images/s and peak RSS of
# `layerwise run` on the three benchmark workloads of benches/compare.sh (vgg16, small, mid),
# alternating the two, ROUNDS times.
#
# usage: benches/reduce.sh [IMAGES] [ROUNDS]   (default 512 images, 2 rounds; needs ../shared/bench)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
count=${1:-512}
rounds=${2:-2}
bench=${LAYERWISE_BENCH_TOOLS:-$root/../shared/bench}
python=.venv/bin/python
data=target/bench
work=target/bench/reduce

scripts/fetch-onnxruntime.sh >/dev/null
scripts/python-env.sh
cargo build --release --quiet
bin=target/release/layerwise
[[ -f $data/models/mid.onnx ]] || $python "$bench/make_models.py" $data/models
if [[ $(find $data/images -name '*.jpg' 2>/dev/null | wc -l) -ne $count ]]; then
  rm -rf $data/images
  $python "$bench/make_images.py" $data/images "$count"
fi
mkdir -p $work
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $count images"

# config WORKLOAD REDUCE: pipelines/bench-WORKLOAD.toml with `reduce = REDUCE`, from $work.
config() {
  sed -e "s|^\[run\]|[run]\nreduce = \"$2\"|" -e "s|\.\./target/bench/|../|" \
    -e "s|^dir = .*|dir = \"../../../out/bench-reduce-$1-$2\"|" \
    "pipelines/bench-$1.toml" > "$work/$1-$2.toml"
}

source "$root/benches/measure.sh"
for workload in vgg16 small mid; do
  echo "== bench-$workload"
  for reduce in host graph; do config "$workload" "$reduce"; done
  for round in $(seq "$rounds"); do
    for reduce in host graph; do
      measure "$reduce" "$bin" run "$work/$workload-$reduce.toml" --overwrite --quiet
    done
  done
done
