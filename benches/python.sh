#!/usr/bin/env bash
# The Python package against the command and pyarrow, from the release wheel installed with
# [cpu] and pyarrow into a temporary virtual environment (the command and `import layerwise`
# then run the same engine, from the same library):
#   1. `lw.extract()` of one layer over IMAGES JPEGs (small.onnx's conv4; VGG_IMAGES for
#      vgg16.onnx's block5_conv3) against `layerwise run` of the same layer with statistics
#      only, at the same batch size and threads: images/s of the run's part loop, and of the
#      extraction less the time of a call on 16 images (opening the session), and each
#      process's peak RSS;
#   2. `Run.stats()` of a run over STATS_IMAGES images against `pyarrow.parquet.read_table` of
#      the same files, each in its own process, alternating, ROUNDS times: seconds and RSS.
#
# usage: benches/python.sh [IMAGES] [VGG_IMAGES] [STATS_IMAGES] [ROUNDS]
#        (default 512, 512, 10000 and 3; needs ../shared/bench)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
count=${1:-512}
vgg_count=${2:-512}
stats_count=${3:-10000}
rounds=${4:-3}
scripts/build-wheel.sh >/dev/null
env=$(mktemp -d)
trap 'rm -rf "$env"' EXIT
python3 -m venv "$env"
"$env/bin/python" -m pip install --quiet --disable-pip-version-check \
  "$(ls dist/layerwise-*.whl)[cpu]" "$(grep '^onnxruntime==' scripts/requirements.txt)" \
  "$(grep '^pyarrow==' scripts/requirements.txt)"
LAYERWISE_BIN="$env/bin/layerwise"
export LAYERWISE_BIN
source "$root/benches/measure.sh"
prepare_bench "$count"
py="$env/bin/python"

# A config of one layer with statistics only over FOLDER's images.
stats_only() {
  local model=$1 layer=$2 folder=$3 out=$4 preprocess=$5
  cat <<TOML
name = "python-bench"
[input]
root = "$root/$folder"
[model]
path = "$root/target/bench/models/$model.onnx"
[preprocess]
$preprocess
[run]
batch_size = 8
[[layers]]
tensor = "$layer"
[output]
dir = "$out"
TOML
}

extract_script='
import glob, json, sys, time, tomllib
import layerwise as lw
config = tomllib.load(open(sys.argv[1], "rb"))
paths = sorted(glob.glob(config["input"]["root"] + "/**/*.jpg", recursive=True))[: int(sys.argv[2])]
def timed(paths):
    started = time.perf_counter()
    acts = lw.extract(config["model"]["path"], paths, layers=[config["layers"][0]["tensor"]],
                      preprocess=config["preprocess"], batch_size=config["run"]["batch_size"])
    return time.perf_counter() - started, acts
# The per-image rate, as the run reports for its part loop: a call on the first 16 images takes
# the fixed cost (opening the session) out of the time of the whole call.
fixed, _ = timed(paths[:16])
took, acts = timed(paths)
(array,) = acts.values()
print(f"{array.shape} {array.nbytes / 2**20:.0f} MiB; whole call {len(paths) / took:.1f} images/s; "
      f"images_per_s={(len(paths) - 16) / (took - fixed):.1f}")
'

workload() {
  local model=$1 layer=$2 n=$3 preprocess=$4
  local config="$root/target/bench/python-$model.toml"
  stats_only "$model" "$layer" target/bench/images "$root/out/python-bench-$model" "$preprocess" >"$config"
  echo "== $model.onnx $layer, $n images"
  for round in $(seq "$rounds"); do
    measure "run-$round" "$LAYERWISE_BIN" run "$config" --limit "$n" --overwrite --quiet
    measure "extract-$round" "$py" -c "$extract_script" "$config" "$n"
  done
}
workload small conv4 "$count" 'scale = 0.00392156862745098'
workload vgg16 block5_conv3 "$vgg_count" $'channel_order = "BGR"\nscale = 1.0\nmean = [103.939, 116.779, 123.68]'

echo "== Run.stats() of a run over $stats_count images (small.onnx, every conv layer)"
if [[ $(find target/bench/images-stats -name '*.jpg' 2>/dev/null | wc -l) -ne $stats_count ]]; then
  rm -rf target/bench/images-stats
  $python "$bench/make_images.py" target/bench/images-stats "$stats_count" 64
fi
config="$root/target/bench/python-stats.toml"
stats_only small 'conv?' target/bench/images-stats "$root/out/python-bench-stats" \
  'scale = 0.00392156862745098' >"$config"
"$LAYERWISE_BIN" run "$config" --overwrite --quiet >/dev/null
"$py" -c '
import glob, sys, pyarrow.parquet as pq
t = pq.read_table(sorted(glob.glob(sys.argv[1] + "/stats/*.parquet")))
files = glob.glob(sys.argv[1] + "/stats/*.parquet")
print(f"stats: {t.num_rows} rows, {t.nbytes / 2**20:.0f} MiB in memory, {len(files)} files")
' "$root/out/python-bench-stats"
read_one() {
  local how=$1
  /usr/bin/time -f "rss_kib=%M" "$py" -c '
import glob, sys, time, layerwise as lw, pyarrow.parquet as pq
folder, how = sys.argv[1], sys.argv[2]
started = time.perf_counter()
if how == "layerwise":
    t = lw.open(folder).stats()
else:
    t = pq.read_table(sorted(glob.glob(folder + "/stats/*.parquet")))
print(f"{how:<10} {time.perf_counter() - started:7.3f} s  {t.num_rows} rows")
' "$root/out/python-bench-stats" "$how" 2>&1 | tr '\n' ' '
  echo
}
for round in $(seq "$rounds"); do
  read_one pyarrow
  read_one layerwise
done
