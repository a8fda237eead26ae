#!/usr/bin/env bash
# The demo, from a fresh checkout: provisions ONNX Runtime and the Python tools, builds the demo
# model and images, builds layerwise, runs the classic study (pipelines/demo.toml) and queries
# the result with DuckDB.
# usage: scripts/demo.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/fetch-onnxruntime.sh
scripts/python-env.sh
if [[ ! -f demo/models/demo_vgg.onnx ]]; then
  .venv/bin/python demo/make_demo.py demo
fi
cargo build --release --quiet
target/release/layerwise run pipelines/demo.toml --overwrite
.venv/bin/python - <<'PY'
import duckdb
print("\nThe channels of block1_conv1 that respond most, per class (DuckDB on out/demo):")
print(duckdb.sql("""
    SELECT i.label, s.channel, round(avg(s.mean), 2) AS mean_activation
    FROM 'out/demo/stats/*.parquet' s JOIN 'out/demo/images/*.parquet' i USING (image_id)
    WHERE s.layer = 'block1_conv1'
    GROUP BY ALL QUALIFY row_number() OVER (PARTITION BY i.label ORDER BY avg(s.mean) DESC) <= 3
    ORDER BY i.label, mean_activation DESC
"""))
PY
