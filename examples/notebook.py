"""The classic study from Python, cell by cell: plain Python that runs as a script (headless,
writing its figures) and pastes into Jupyter as it is.

    python examples/notebook.py [DEMO [OUT]]

DEMO is the demo's folder (models/demo_vgg.onnx and images/<label>/*.jpg: scripts/demo.sh makes
it in demo/), OUT where the figures and the run go (out/notebook). Needs layerwise, matplotlib
and polars (pip install "layerwise[cpu]" matplotlib polars pyarrow).
"""

import glob
import os
import sys

import matplotlib

if __name__ == "__main__" and "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # headless as a script; inline in a notebook
import matplotlib.pyplot as plt
import polars as pl

import layerwise as lw

DEMO = sys.argv[1] if len(sys.argv) > 1 else "demo"
OUT = sys.argv[2] if len(sys.argv) > 2 else "out/notebook"
os.makedirs(OUT, exist_ok=True)
MODEL = os.path.join(DEMO, "models/demo_vgg.onnx")
# Keras' VGG16 preprocess_input ("caffe" mode), as pipelines/demo.toml has it.
PREPROCESS = {
    "size": [224, 224],
    "resize": "stretch",
    "layout": "NCHW",
    "channel_order": "BGR",
    "scale": 1.0,
    "mean": [103.939, 116.779, 123.68],
    "std": [1.0, 1.0, 1.0],
}

# %% The model's convolutions: the first and the last are the study's.
tensors = lw.layers(MODEL)
convs = [row["tensor"] for row in tensors.to_pylist() if row["op"] == "Relu"]
print(f"{len(convs)} conv layers, first {convs[0]}, last {convs[-1]}")

# %% The first conv layer of one image: its 64 channels, the first 49 in a 7 x 7 grid.
photos = sorted(glob.glob(os.path.join(DEMO, "images/*/*.*")))
one = lw.extract(MODEL, photos[:1], layers=["block1_conv1"], preprocess=PREPROCESS)
maps = one["block1_conv1"][0]  # [64, 224, 224]
fig, axes = plt.subplots(7, 7, figsize=(10, 10))
for channel, ax in enumerate(axes.flat):
    ax.imshow(maps[channel], cmap="viridis")
    ax.set_title(f"channel {channel}", fontsize=7)
    ax.axis("off")
fig.suptitle(f"block1_conv1 of {os.path.basename(photos[0])}")
fig.savefig(os.path.join(OUT, "block1_conv1-grid.png"), dpi=72)
plt.close(fig)

# %% Channel 11 (it traces contours) across the photos (49 shown), with the last conv layer's mean too.
# The demo hides a broken file among its photos: errors="skip" leaves it out and says why.
many = lw.extract(
    MODEL,
    photos,
    layers=["block1_conv1", "block5_conv3"],
    preprocess=PREPROCESS,
    batch_size=8,
    errors="skip",
)
for index, reason in many.errors:
    print(f"left out {os.path.basename(photos[index])}: {reason}")
contours = many["block1_conv1"][:49, 11]  # [49, 224, 224]
fig, axes = plt.subplots(7, 7, figsize=(10, 10))
for row, ax in enumerate(axes.flat):
    ax.imshow(contours[row], cmap="gray")
    ax.set_title(os.path.basename(photos[many.indices[row]]), fontsize=6)
    ax.axis("off")
fig.suptitle("block1_conv1, channel 11, across 49 images")
fig.savefig(os.path.join(OUT, "channel11-images.png"), dpi=72)
plt.close(fig)
last = "block5_conv3"
print(f"{last}: {many[last].shape}, mean activation {many[last].mean():.3f}")

# %% The same study at dataset scale: a run of the demo (resumable, queryable), read with Polars.
config = {
    "name": "notebook-study",
    "input": {"root": os.path.join(DEMO, "images"), "label": "parent"},
    "model": {"path": MODEL},
    "preprocess": PREPROCESS,
    "layers": [
        {"tensor": "block1_conv1", "keep": [0, 11, 12, 27, 30, 34]},
        {"tensor": "block5_conv3", "top_k": 8},
    ],
    "output": {"dir": os.path.join(OUT, "run")},
}
run = lw.run(config, progress=False)
print(run)
stats = pl.from_arrow(run.stats(layer="block5_conv3"))
images = pl.from_arrow(run.images())
by_label = (
    stats.join(images.select("image_id", "label"), on="image_id")
    .group_by("label", "channel")
    .agg(pl.col("mean").mean().alias("mean"))
    .sort("mean", descending=True)
    .group_by("label", maintain_order=True)
    .head(3)
    .sort("label", "mean", descending=[False, True])
)
print("block5_conv3's strongest channels per label:")
print(by_label)
best = by_label.row(0, named=True)["channel"]
run.plot_top("block5_conv3", best, k=8).save(os.path.join(OUT, f"top-block5_conv3-{best}.png"))
run.plot_images("block1_conv1", 11).save(os.path.join(OUT, "run-channel11.png"))
print(f"figures in {OUT}")
