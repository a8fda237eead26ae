"""The numpy reference of issue 25's benchmark: Gram-matrix linear CKA (the standard estimator: the cheaper one)
of every pair of a run's layers over its first N images, from its stats tables; prints the
seconds it took (reading excluded). usage: similarity_reference.py RUN N"""

import glob
import os
import sys
import time

import numpy as np
import pyarrow.parquet as pq


def main(run: str, n: int) -> None:
    parts = sorted(glob.glob(os.path.join(run, "stats", "*.parquet")))
    columns, rows = [], 0
    for part in parts:
        table = pq.read_table(part, columns=["layer", "mean"])
        columns.append(table)
        rows += table.num_rows
        if rows >= n * 4224:
            break
    layer = np.concatenate([t["layer"].combine_chunks().indices.to_numpy() for t in columns])
    mean = np.concatenate([t["mean"].to_numpy() for t in columns]).astype(np.float64)
    per_image = 4224  # VGG16's 13 conv layers
    x = mean[: n * per_image].reshape(n, per_image)
    codes = layer[:per_image]
    feats = [x[:, codes == c] for c in np.unique(codes)]
    start = time.perf_counter()
    grams = []
    for f in feats:
        k = f @ f.T
        # H K H without the n x n x n products: remove the row and column means.
        k -= k.mean(axis=0, keepdims=True)
        k -= k.mean(axis=1, keepdims=True)
        grams.append(k)
    for ka in grams:
        for kb in grams:
            _ = (ka * kb).sum() / np.sqrt((ka * ka).sum() * (kb * kb).sum())
    print(f"reference: {len(feats)} layers, {n} images: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
