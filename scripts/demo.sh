#!/usr/bin/env bash
# The demo, from a fresh checkout: provisions ONNX Runtime and the demo's few Python tools
# (.cache/demo-venv: onnx, numpy, pillow, DuckDB; not the tests' toolchain), builds the demo
# model and images, builds layerwise, runs the classic study (pipelines/demo.toml), draws its
# figures, writes its report (the atlas, out/demo/report/index.html) and queries the result with
# DuckDB.
# usage: scripts/demo.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/fetch-onnxruntime.sh
python=.cache/demo-venv/bin/python
scripts/python-env.sh .cache/demo-venv scripts/demo-requirements.txt
if [[ ! -f demo/models/demo_vgg.onnx ]]; then
  scripts/demo-photos.sh .cache/demo-photos
  LAYERWISE_DEMO_PHOTOS=.cache/demo-photos "$python" demo/make_demo.py demo
fi
cargo build --release --quiet
target/release/layerwise run pipelines/demo.toml --overwrite
# The classic study's figures, into out/demo/plots/.
target/release/layerwise plot channels --config pipelines/demo.toml --layer block1_conv1 \
  --image demo/images/astronaut/astronaut_000.jpg --channels 0..49 --png out/demo/plots/block1_conv1-channels.png
target/release/layerwise plot images --run out/demo --layer block1_conv1 --channel 11 --images 0..49
target/release/layerwise plot channels --run out/demo --layer block5_conv3 --image 0 --channels 0..49
target/release/layerwise plot top --run out/demo --layer block5_conv3 --channel 164 --k 8 --cols 4
# The atlas: a static site of the run that opens from file://.
report=$(target/release/layerwise report out/demo)
"$python" - <<'PY'
import duckdb
sql = lambda q: print(duckdb.sql(q))
print("\nThe block1_conv1 channels that respond most, per class (DuckDB on out/demo):")
sql("""
    SELECT i.label, s.channel, round(avg(s.mean), 2) AS mean_activation,
           round(avg(s.frac_positive), 3) AS frac_positive
    FROM 'out/demo/stats/*.parquet' s JOIN 'out/demo/images/*.parquet' i USING (image_id)
    WHERE s.layer = 'block1_conv1'
    GROUP BY i.label, s.channel
    QUALIFY row_number() OVER (PARTITION BY i.label ORDER BY avg(s.mean) DESC) <= 3
    ORDER BY i.label, mean_activation DESC
""")
print("The block5_conv3 channels that differ most between the classes:")
sql("""
    PIVOT (SELECT i.label, s.channel, s.mean
           FROM 'out/demo/stats/*.parquet' s JOIN 'out/demo/images/*.parquet' i USING (image_id)
           WHERE s.layer = 'block5_conv3')
    ON label USING round(avg(mean), 2)
    ORDER BY abs(astronaut - cat) DESC LIMIT 5
""")
PY
echo
echo "The report of the run (open it in a browser): $report"
