#!/usr/bin/env python3
"""How fast the LZ-class codecs compress layerwise's map pages, and how small: the float32
values of a run's `maps` table cut into 1 MiB pages and byte stream split, as
src/output/floats.rs writes them (1 MiB is the Parquet crate's data page limit), then each page
compressed on one thread by each codec (best of 5 passes over all pages). Snappy is the `snap`
crate, the one layerwise links (through cramjam); LZ4 is the C library at several accelerations
(Parquet's LZ4_RAW is its raw block format); Zstandard the C library. Also each of the four
byte streams compressed alone by Snappy: which bytes the codec gains on.

usage: page_codecs.py [MAPS_PARQUET] [--pages N]
         (default out/bench-small/maps/part-00000.parquet, from `layerwise run
          pipelines/bench-small.toml`; 16 pages)
Needs numpy, pyarrow, cramjam, lz4 and zstandard: pip install cramjam lz4 zstandard
"""
import argparse, platform, time
import numpy as np
import pyarrow.parquet as pq

try:
    import cramjam, lz4.block, zstandard
except ImportError as e:
    raise SystemExit(f"page_codecs.py: {e.name} is missing: pip install cramjam lz4 zstandard")

ap = argparse.ArgumentParser()
ap.add_argument("maps", nargs="?", default="out/bench-small/maps/part-00000.parquet")
ap.add_argument("--pages", type=int, default=16)
a = ap.parse_args()

values = pq.read_table(a.maps, columns=["values"])["values"].combine_chunks().flatten()
values = values.to_numpy().astype(np.float32)
per_page = (1 << 20) // 4
split = [np.ascontiguousarray(values[i:i + per_page].view(np.uint8).reshape(-1, 4).T)
         for i in range(0, len(values) - per_page + 1, per_page)][:a.pages]
if not split:
    raise SystemExit(f"page_codecs.py: {a.maps} holds fewer than {per_page} values (one page)")
pages = [s.tobytes() for s in split]
raw = sum(len(p) for p in pages)


def measure(name, compress, data=pages):
    size, best = 0, float("inf")
    for _ in range(5):
        start = time.perf_counter()
        out = [compress(p) for p in data]
        best = min(best, time.perf_counter() - start)
    size = sum(len(o) for o in out)
    total = sum(len(p) for p in data)
    print(f"| {name} | {total / size:.2f} | {total / best / 1e6:,.0f} MB/s |")


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.processor())
zeros = float(np.mean(values[: per_page * len(pages)] == 0))
print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu}, {len(pages)} pages of 1 MiB "
      f"from {a.maps} ({zeros:.0%} of the values 0)\n")
print("| codec | ratio | speed |\n|---|---|---|")
measure("Snappy (snap)", lambda p: bytes(cramjam.snappy.compress_raw(p)))
for acceleration in (1, 4, 16):
    measure(f"LZ4, acceleration {acceleration}",
            lambda p: lz4.block.compress(p, mode="fast", acceleration=acceleration, store_size=False))
for level in (-5, -1, 1):
    measure(f"Zstandard {level}", zstandard.ZstdCompressor(level=level).compress)
for stream, name in enumerate(["lowest byte", "second byte", "third byte", "sign and exponent"]):
    measure(f"Snappy, the {name} alone", lambda p: bytes(cramjam.snappy.compress_raw(p)),
            [s[stream].tobytes() for s in split])
