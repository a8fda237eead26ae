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
source "$root/benches/measure.sh"
prepare_bench "$count"
work=target/bench/reduce
mkdir -p $work

# config WORKLOAD REDUCE: pipelines/bench-WORKLOAD.toml with `reduce = REDUCE`, from $work.
config() {
  sed -e "s|^\[run\]|[run]\nreduce = \"$2\"|" -e "s|\.\./target/bench/|../|" \
    -e "s|^dir = .*|dir = \"../../../out/bench-reduce-$1-$2\"|" \
    "pipelines/bench-$1.toml" > "$work/$1-$2.toml"
}

for workload in vgg16 small mid; do
  echo "== bench-$workload"
  for reduce in host graph; do config "$workload" "$reduce"; done
  for round in $(seq "$rounds"); do
    for reduce in host graph; do
      measure "$reduce" "$bin" run "$work/$workload-$reduce.toml" --overwrite --quiet
    done
  done
done
