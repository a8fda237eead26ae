# Sourced by the benchmark scripts.
# measure NAME COMMAND...: runs COMMAND under /usr/bin/time, prints "NAME images/s peak-RSS-MiB"
# (the rate from the command's own output: `images_per_s=` or `N images/s`) and sets
# NAME_rate (NAME with every character that is not a letter, digit or _ made _).
measure() {
  local name=$1; shift
  local log
  log=$(mktemp)
  /usr/bin/time -f "rss_kib=%M" "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
  local rate rss
  rate=$(grep -oE 'images_per_s=[0-9.]+|[0-9.]+ images/s' "$log" | tail -1 | grep -oE '[0-9.]+' | head -1)
  rss=$(grep -oE 'rss_kib=[0-9]+' "$log" | cut -d= -f2)
  printf '%-22s %10.1f images/s %8.0f MiB\n' "$name" "$rate" "$((rss / 1024))"
  printf -v "${name//[^a-zA-Z0-9_]/_}_rate" '%s' "$rate"
  rm -f "$log"
}

# prepare_bench COUNT: provisions ONNX Runtime and the Python tools and builds layerwise (unless
# LAYERWISE_BIN names a built binary, and LAYERWISE_BENCH_PYTHON a Python with the peer's
# packages: a node without cargo or network), makes the benchmark models and COUNT images under
# target/bench (once), sets bench, python, data and bin, and prints the date, the cores and the
# image count.
prepare_bench() {
  local count=$1
  bench=${LAYERWISE_BENCH_TOOLS:-$root/../shared/bench}
  python=${LAYERWISE_BENCH_PYTHON:-.venv/bin/python}
  bin=${LAYERWISE_BIN:-}
  data=target/bench
  if [[ -z $bin ]]; then
    scripts/fetch-onnxruntime.sh >/dev/null
    scripts/python-env.sh
    cargo build --release --quiet
    bin=target/release/layerwise
  fi
  [[ -f $data/models/mid.onnx ]] || $python "$bench/make_models.py" $data/models
  if [[ $(find $data/images -name '*.jpg' 2>/dev/null | wc -l) -ne $count ]]; then
    rm -rf $data/images
    $python "$bench/make_images.py" $data/images "$count"
  fi
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $count images"
}
