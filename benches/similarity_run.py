"""Writes the tables `layerwise compare` reads for a synthetic run of N images (issue 25's
benchmark): the `images` and `stats` part files of a run folder whose run.json (layers, widths)
a real run wrote, in parts of 1,000 images. Each layer's per-channel means are a shared
low-rank signal plus noise, so that layers are partly similar. The other tables' parts are
removed (compare does not read them).
usage: similarity_run.py RUN N"""

import glob
import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PART = 1000


def main(run: str, n: int) -> None:
    with open(os.path.join(run, "run.json")) as f:
        layers = [(l["name"], l["channels"]) for l in json.load(f)["layers"]]
    for table in ["images", "stats", "maps", "top", "vectors", "positions"]:
        for path in glob.glob(os.path.join(run, table, "*.parquet")):
            os.remove(path)
    rng = np.random.default_rng(0)
    rank = 16
    mixing = [rng.standard_normal((rank, width)).astype(np.float32) for _, width in layers]
    names = pa.array([name for name, _ in layers])
    codes = np.concatenate([np.full(width, i, dtype=np.int32) for i, (_, width) in enumerate(layers)])
    channels = np.concatenate([np.arange(width, dtype=np.uint32) for _, width in layers])
    width = len(codes)
    for part, start in enumerate(range(0, n, PART)):
        count = min(PART, n - start)
        ids = np.arange(start, start + count, dtype=np.uint64)
        latent = rng.standard_normal((count, rank)).astype(np.float32)
        means = np.concatenate(
            [np.maximum(latent @ m + rng.standard_normal((count, m.shape[1])).astype(np.float32), 0) for m in mixing],
            axis=1,
        )
        images = pa.table(
            {
                "image_id": ids,
                "path": pa.array([f"{i:08}.jpg" for i in ids]),
                "status": pa.array(["ok"] * count),
                "source": pa.nulls(count, pa.string()),
            }
        )
        stats = pa.table(
            {
                "image_id": np.repeat(ids, width),
                "layer": pa.DictionaryArray.from_arrays(np.tile(codes, count), names),
                "channel": np.tile(channels, count),
                "mean": means.reshape(-1),
            }
        )
        name = f"part-{part:05}.parquet"
        pq.write_table(images, os.path.join(run, "images", name))
        pq.write_table(stats, os.path.join(run, "stats", name), compression="zstd")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
