#!/usr/bin/env bash
# `layerwise compare` at dataset scale (issue 25): a VGG16-shaped run (the bench vgg16.onnx's 13
# ReLU outputs, 4,224 channels) whose images and stats tables for N images are written by
# benches/similarity_run.py (not by the model), compared with the release build: seconds and
# peak RSS for each N; then the numpy Gram-matrix reference on REF images (0: none) and compare
# on the same. 1,000,000 images take 11 GB of disk and about 20 minutes on 2 cores.
# usage: benches/similarity.sh [REF] [N ...]   (default: 10000 20000 100000 1000000)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
ref=${1:-10000}
shift || true
sizes=("${@:-20000 100000 1000000}")
bin=target/release/layerwise
models=target/bench/models
work=target/bench/similarity
cargo build --release --quiet
[ -f "$models/vgg16.onnx" ] || .venv/bin/python ../shared/bench/make_models.py "$models"
mkdir -p "$work/images"
.venv/bin/python - "$work/images" <<'PY'
import sys
import numpy as np
from PIL import Image
for i in range(4):
    Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(f"{sys.argv[1]}/{i}.png")
PY
cat > "$work/vgg.toml" <<TOML
name = "similarity-bench"
[input]
root = "images"
[model]
path = "$root/$models/vgg16.onnx"
[[layers]]
tensor = "block?_conv?"
[output]
dir = "run"
TOML
"$bin" run "$work/vgg.toml" --quiet --overwrite
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
for n in ${sizes[@]}; do
  .venv/bin/python benches/similarity_run.py "$work/run" "$n"
  echo "$n images: $(du -sh "$work/run/stats" | cut -f1) of stats"
  /usr/bin/time -f "compare: %e s, peak RSS %M KiB" "$bin" compare "$work/run" --out "$work/out" > "$work/said.txt"
  head -1 "$work/said.txt"
done
[ "$ref" -gt 0 ] || exit 0
.venv/bin/python benches/similarity_run.py "$work/run" "$ref"
/usr/bin/time -f "reference: %e s in all, peak RSS %M KiB" .venv/bin/python benches/similarity_reference.py "$work/run" "$ref"
/usr/bin/time -f "compare: %e s, peak RSS %M KiB" "$bin" compare "$work/run" --out "$work/out" > "$work/said.txt"
head -1 "$work/said.txt"
