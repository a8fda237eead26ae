#!/usr/bin/env bash
# The same images as files, as WebDataset tar shards and as Parquet files: images/s and peak
# RSS of `layerwise run` on each (the bench-small workload, where input handling weighs most),
# then the peak RSS over one large shard of each format against a small one (it must not grow
# with the shard).
#
# usage: benches/inputs.sh [IMAGES] [ROUNDS]   (default 512 images, 3 rounds; needs ../shared/bench)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
count=${1:-512}
rounds=${2:-3}
source "$root/benches/measure.sh"
prepare_bench "$count"
work=target/bench/inputs
mkdir -p $work

# shards SOURCE OUT SHARDS COPIES: SOURCE's images (sorted, each COPIES times) as SHARDS tar shards
# written by the webdataset package and as SHARDS Parquet files (a binary `jpg` column, as
# img2dataset writes; row groups of 256 rows).
shards() {
  $python - "$@" <<'PY'
import os, sys
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
import webdataset as wds
source, out, shards, copies = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
files = sorted(source.glob("*/*.jpg")) * copies
(out / "wds").mkdir(parents=True, exist_ok=True)
(out / "parquet").mkdir(parents=True, exist_ok=True)
per = (len(files) + shards - 1) // shards
for s in range(shards):
    part = list(enumerate(files))[s * per:(s + 1) * per]
    with wds.TarWriter(str(out / "wds" / f"{s:05d}.tar")) as sink:
        for i, p in part:
            sink.write({"__key__": f"{i:09d}", "jpg": p.read_bytes(), "txt": p.parent.name})
    table = pa.table({
        "key": [f"{i:09d}" for i, _ in part],
        "jpg": pa.array([p.read_bytes() for _, p in part], pa.binary()),
        "caption": [p.parent.name for _, p in part],
    })
    pq.write_table(table, out / "parquet" / f"{s:05d}.parquet", row_group_size=256)
PY
}

# config NAME INPUT [RUN]: a copy of pipelines/bench-small.toml reading INPUT instead of its
# folder (RUN: a line more for its [run] table).
config() {
  sed -e "s|^root = .*|$2|" -e "s|^dir = .*|dir = \"../../../out/bench-inputs-$1\"|" \
    -e "s|\.\./target/bench/models|../models|" -e "s|^batch_size = 8|batch_size = 8\n${3:-}|" \
    pipelines/bench-small.toml > "$work/$1.toml"
}


[[ -f $work/same/parquet/00007.parquet ]] || shards $data/images $work/same 8 1
config files "root = \"../images\""
config files-64 "root = \"../images\"" "part_size = 64"
config webdataset "webdataset = \"same/wds/{00000..00007}.tar\""
config parquet "parquet = \"same/parquet/*.parquet\""
echo "== the same $count images: files (one part; parts of 64), 8 WebDataset shards, 8 Parquet files (bench-small)"
for round in $(seq "$rounds"); do
  for input in files files-64 webdataset parquet; do
    measure "$input" "$bin" run "$work/$input.toml" --overwrite --quiet
  done
done

# One shard of each format holding the images once, 16 times and 32 times over: the peak RSS
# must not grow with the shard.
for copies in 1 16 32; do
  [[ -f $work/x$copies/parquet/00000.parquet ]] || shards $data/images $work/x$copies 1 $copies
  config x$copies-wds "webdataset = \"x$copies/wds/00000.tar\""
  config x$copies-parquet "parquet = \"x$copies/parquet/00000.parquet\""
done
size() { du -h "$1" | cut -f1; }
echo "== peak RSS over one shard: tar $(size $work/x1/wds/00000.tar), $(size $work/x16/wds/00000.tar), $(size $work/x32/wds/00000.tar); Parquet $(size $work/x1/parquet/00000.parquet), $(size $work/x16/parquet/00000.parquet), $(size $work/x32/parquet/00000.parquet)"
for copies in 1 16 32; do
  for format in wds parquet; do
    measure "x$copies-$format" "$bin" run "$work/x$copies-$format.toml" --overwrite --quiet
  done
done
# img2dataset writes a shard's Parquet file as one row group: the same 32x file so.
[[ -f $work/x32/one-row-group.parquet ]] || $python -c "import sys, pyarrow.parquet as pq; \
  pq.write_table(pq.read_table(sys.argv[1]), sys.argv[2], row_group_size=1 << 30)" \
  $work/x32/parquet/00000.parquet $work/x32/one-row-group.parquet
config x32-one-row-group "parquet = \"x32/one-row-group.parquet\""
measure x32-one-row-group "$bin" run "$work/x32-one-row-group.toml" --overwrite --quiet
