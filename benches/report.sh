#!/usr/bin/env bash
# The report of the 10,000-image benchmark run (benches/plots.sh makes it: the light model,
# conv1 keeping 5 channels' maps, top_k = 16 on conv4): generation time, peak RSS, size on disk
# and files; then the time to open its index, its largest layer page and a channel page in
# headless Chromium (to the load event, every image loaded), and the same for the demo's
# 512-channel block5_conv3 page.
#
# usage: benches/report.sh      (needs ../shared/bench; scripts/browser-env.sh for the browser)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
data=target/bench-plots
[[ -f $data/out/run.json ]] || bash benches/plots.sh >/dev/null
cargo build --release --quiet
scripts/browser-env.sh
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores; run of $(find $data/images -name '*.jpg' | wc -l) images"
/usr/bin/time -f "generation %e s, peak RSS %M KiB" target/release/layerwise report $data/out --out $data/report 2>&1 >/dev/null | grep -v INFO
echo "on disk $(du -sh $data/report | cut -f1): $(find $data/report -name '*.html' | wc -l) pages, $(find $data/report -name '*.jpg' -o -name '*.png' | wc -l) pictures"
largest=$(ls -S $data/report/layer-*.html | head -1)
page=$(basename "$largest")
.venv/bin/python tests/browser/check_report.py $data/report target/bench-report-shots \
  index.html "$page" "${page%.html}/channel-0.html"
[[ -f out/demo/report/index.html ]] || bash scripts/demo.sh >/dev/null
.venv/bin/python tests/browser/check_report.py out/demo/report target/bench-report-shots layer-1.html
