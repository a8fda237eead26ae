#!/usr/bin/env bash
# Compares, on the same images, models and layers: ONNX Runtime alone on pre-decoded batches
# (the ceiling), `layerwise run`, and the Python peer (Pillow + numpy + onnxruntime + pyarrow).
#
# usage: benches/compare.sh [IMAGES] [--provider cpu|cuda|tensorrt]
#            (default 512 JPEGs on the CPU; needs ../shared/bench)
# With --provider cuda or tensorrt (a GPU node: onnxruntime-gpu in LAYERWISE_BENCH_PYTHON, and
# ORT_DYLIB_PATH at its library for layerwise), the ceiling is benches/ceiling.py on that
# provider, layerwise runs the same configs with `[run] provider` set (`reduce = "auto"`: the
# statistics in the graph), and the Python peer, a CPU pipeline, is left out.
# LAYERWISE_BENCH_ONLY=bench-vit runs that workload alone.
# Prints the date and cores, images/s and peak RSS of each, where layerwise's time per image
# goes (wall time by stage, and CPU time by stage and for its busiest thread, from run.json),
# and the ratios layerwise/ceiling and layerwise/peer. All three use every core.
#
# On a machine with neither cargo nor the network (a cluster node), give a built binary and a
# Python that has the peer's packages (onnx, onnxruntime, pillow, numpy, scikit-image,
# pyarrow): LAYERWISE_BIN=path/to/layerwise LAYERWISE_BENCH_PYTHON=python3; layerwise then
# uses that Python's onnxruntime library, as the peer does.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
count=512
provider=cpu
while [[ $# -gt 0 ]]; do
  case $1 in
    --provider) provider=$2; shift 2 ;;
    *) count=$1; shift ;;
  esac
done
case $provider in cpu|cuda|tensorrt) ;; *) echo "compare.sh: --provider cpu, cuda or tensorrt" >&2; exit 2 ;; esac
threads=$(nproc)
source "$root/benches/measure.sh"
prepare_bench "$count"

workload() {
  local config=$1 model=$2 outputs=$3 keep=$4 scale=$5 size=${6:-224} peer=${7:-peer}
  [[ -z ${LAYERWISE_BENCH_ONLY:-} || $config == "$LAYERWISE_BENCH_ONLY" ]] || return 0
  echo "== $config: $outputs ($provider)"
  if [[ $provider != cpu ]]; then
    measure ceiling $python benches/ceiling.py $data/models/$model $data/images --provider "$provider" \
      --outputs "$outputs" --batch 8 --threads "$threads" --scale "$scale" --size "$size"
    sed "s/^\[run\]$/[run]\nprovider = \"$provider\"/" "pipelines/$config.toml" > "pipelines/.$config-$provider.toml"
    measure layerwise "$bin" run "pipelines/.$config-$provider.toml" --overwrite --quiet
    rm -f "pipelines/.$config-$provider.toml"
  else
    measure ceiling $python "$bench/peer_ort.py" bare $data/models/$model $data/images /tmp/layerwise-peer \
      --outputs "$outputs" --keep "$keep" --batch 8 --threads "$threads" --scale "$scale" --size "$size"
    measure layerwise "$bin" run "pipelines/$config.toml" --overwrite --quiet
  fi
  # Where layerwise's time goes, from its run.json (decoding overlaps the model).
  $python - "out/$config/run.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["timings"]
n = t["images"]
print(f"           per image: model {1000 * t['model_s'] / n:.2f} ms, outside the model "
      f"{1000 * (t['run_s'] - t['model_s']) / n:.2f} ms (reduce {1000 * t['reduce_s'] / n:.2f} ms, "
      f"decode {1000 * t['decode_s'] / n:.2f} ms overlapped, writer wait {1000 * t['write_wait_s'] / n:.2f} ms)")
c = t["cpu"]
print(f"           CPU per image: {c['process_ms']:.2f} ms = ONNX Runtime {c['onnxruntime_ms']:.2f} + "
      f"layerwise {c['own_ms']:.2f} (decode {c['decode_ms']:.2f}, reduce {c['reduce_ms']:.2f}, "
      f"write {c['write_ms']:.2f}, read {c['read_ms']:.2f}); busiest own thread {c['busiest_thread']} "
      f"{c['busiest_thread_ms']:.2f} ms, {c['busiest_thread_ms'] / max(c['own_ms'], 1e-9):.2f} of layerwise's")
PY
  if [[ $provider != cpu ]]; then
    awk -v l="$layerwise_rate" -v c="$ceiling_rate" 'BEGIN { printf "layerwise/ceiling %.2f\n", l / c }'
    return
  fi
  if [[ $peer != peer ]]; then  # the peer computes statistics of NCHW maps only
    awk -v l="$layerwise_rate" -v c="$ceiling_rate" 'BEGIN { printf "layerwise/ceiling %.2f\n", l / c }'
    return
  fi
  measure peer $python "$bench/peer_ort.py" pipeline $data/models/$model $data/images /tmp/layerwise-peer \
    --outputs "$outputs" --keep "$keep" --batch 8 --threads "$threads" --scale "$scale" --size "$size"
  awk -v l="$layerwise_rate" -v c="$ceiling_rate" -v p="$peer_rate" \
    'BEGIN { printf "layerwise/ceiling %.2f   layerwise/peer %.2f\n", l / c, l / p }'
}

workload bench-vgg16 vgg16.onnx block1_conv1,block5_conv3 0,11,12,27,30,34 1
workload bench-small small.onnx conv1,conv4 0,1,2,3,4 0.00392156862745098
workload bench-mid mid.onnx stem,stage4_conv2 0,1,2,3 0.00392156862745098 320
workload bench-vit vit.onnx block5,block11 0 0.00392156862745098 224 no-peer
