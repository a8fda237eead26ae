#!/usr/bin/env bash
# The folder walk at scale: a generated tree of 1,000,000 small files (1,000 folders of 1,000
# empty .jpg files), listed by `layerwise list` (the walk every task of a sharded folder run
# would do) and then read back from the Parquet listing it wrote (what each task does with
# `input.list`): time and peak RSS of each, with a warm and (as root) a cold page cache.
#
# usage: benches/walk.sh [FOLDERS] [FILES_PER_FOLDER]   (default 1000 1000)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
folders=${1:-1000}
per=${2:-1000}
work=target/bench/walk
tree=$work/tree-$folders-$per
cargo build --release --quiet
bin=target/release/layerwise
if [[ ! -f $tree/.complete ]]; then
  rm -rf "$tree"
  python3 - "$tree" "$folders" "$per" <<'PY'
import os, sys
tree, folders, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in range(folders):
    folder = os.path.join(tree, f"class_{d:04d}")
    os.makedirs(folder)
    for f in range(per):
        open(os.path.join(folder, f"{f:06d}.jpg"), "wb").close()
open(os.path.join(tree, ".complete"), "wb").close()
PY
fi
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $((folders * per)) files in $folders folders"
base="name = \"walk\"\n[model]\npath = \"unused.onnx\"\n[[layers]]\ntensor = \"x\"\n"
printf "$base[input]\nroot = \"tree-$folders-$per\"\n" > $work/walk.toml
printf "$base[input]\nroot = \"tree-$folders-$per\"\nlist = \"listing.parquet\"\n" > $work/list.toml
sync
# measure NAME COMMAND...: prints "NAME seconds peak-RSS-MiB" and the command's own line
measure() {
  local name=$1; shift
  local log
  log=$(mktemp)
  /usr/bin/time -f "elapsed=%e rss_kib=%M" "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
  local secs rss
  secs=$(grep -oE 'elapsed=[0-9.]+' "$log" | cut -d= -f2)
  rss=$(grep -oE 'rss_kib=[0-9]+' "$log" | cut -d= -f2)
  printf '%-34s %7.2f s %6d MiB   (%s)\n' "$name" "$secs" "$((rss / 1024))" "$(grep wrote "$log")"
  rm -f "$log"
}
# cold: the page cache dropped first (as root), so the walk reads the folders from disk
cold() {
  if [[ -w /proc/sys/vm/drop_caches ]]; then
    sync
    echo 3 > /proc/sys/vm/drop_caches
    measure "$@"
  fi
}
measure "walk the tree, write the listing" "$bin" list $work/walk.toml --out $work/listing.parquet
cold "walk, cold cache" "$bin" list $work/walk.toml --out $work/listing.parquet
measure "read the listing back" "$bin" list $work/list.toml --out $work/relisted.parquet
cold "read the listing back, cold cache" "$bin" list $work/list.toml --out $work/relisted.parquet
ls -l $work/listing.parquet | awk '{printf "listing file: %.1f MiB\n", $5 / 1048576}'
