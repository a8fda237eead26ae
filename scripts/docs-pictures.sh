#!/usr/bin/env bash
# Draws the README's and docs/' pictures again from the demo: the figures of `layerwise plot`
# and screenshots of the atlas in headless Chromium. The demo runs in a neutral folder
# (/home/me/layerwise, where a reader's clone might be; LAYERWISE_PICTURES_DIR to change it),
# so that no path of this machine shows in a picture.
# usage: scripts/docs-pictures.sh      (after scripts/test.sh has provisioned the test tools)
#   LAYERWISE_BIN   the executable (default: target/release/layerwise, built if missing)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=${LAYERWISE_BIN:-$root/target/release/layerwise}
if [[ ! -x "$bin" ]]; then
  cargo build --release --quiet
fi
if [[ ! -f demo/models/demo_vgg.onnx ]]; then
  .venv/bin/python demo/make_demo.py demo
fi
work=${LAYERWISE_PICTURES_DIR:-/home/me/layerwise}
rm -rf "$work"
mkdir -p "$work/pipelines" "$work/.cache"
cp -r demo "$work/demo"
cp pipelines/demo.toml "$work/pipelines/"
cp -r .cache/onnxruntime "$work/.cache/"
library=$(ls "$work"/.cache/onnxruntime/libonnxruntime.so.*.*)
export ORT_DYLIB_PATH=$library
cd "$work"
"$bin" run pipelines/demo.toml --quiet
"$bin" plot channels --config pipelines/demo.toml --layer block1_conv1 \
  --image demo/images/astronaut/astronaut_000.jpg --channels 0..49 --png "$root/docs/block1_conv1-channels.png"
"$bin" plot images --run out/demo --layer block1_conv1 --channel 11 --images 0..49 \
  --png "$root/docs/block1_conv1-channel11-images.png"
"$bin" plot channels --run out/demo --layer block5_conv3 --image 0 --channels 0..49 \
  --png "$root/docs/block5_conv3-channels.png"
"$bin" plot top --run out/demo --layer block5_conv3 --channel 164 --k 8 --cols 4 \
  --png "$root/docs/block5_conv3-channel164-top.png"
"$bin" report out/demo
"$root/.venv/bin/python" - "$work/out/demo/report" "$root/docs" <<'PY'
"""Screenshots of three pages of the atlas, cut to the part the README shows."""
import sys
import time
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

site, docs = Path(sys.argv[1]), Path(sys.argv[2])
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    for page, name, height in [
        ("index.html", "report-index.png", 820),
        ("layer-1.html", "report-layer.jpg", 1000),
        ("layer-1/channel-164.html", "report-channel.jpg", 1250),
        ("layer-0.html", "report-layer0.jpg", 700),
        ("layer-0/channel-11.html", "report-channel11.jpg", 760),
    ]:
        driver.set_window_size(1280, height + 200)
        driver.get((site / page).as_uri())
        time.sleep(0.5)
        shot = docs / ("shot-" + name + ".png")
        driver.save_screenshot(str(shot))
        picture = Image.open(shot).convert("RGB").crop((0, 0, 1280, height))
        if name.endswith(".jpg"):
            picture.save(docs / name, quality=85)
        else:
            picture.save(docs / name, optimize=True)
        shot.unlink()
        print(f"wrote docs/{name}")
finally:
    driver.quit()
PY
echo "the demo's pictures are in $root/docs (drawn in $work)"
