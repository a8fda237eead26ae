"""Makes a folder of the files real datasets hold, good and bad, for tests/it/robustness.rs.

usage: make_dirty.py FOLDER

Good (each must end as an `ok` row): RGB, greyscale, palette, 16-bit and alpha PNGs, CMYK and
progressive JPEGs, an EXIF-rotated JPEG, an animated GIF, lossy, lossless-with-alpha,
EXIF-rotated and animated WebPs, a name that is not UTF-8.
Bad (each must end as an `error` row with its reason): a truncated JPEG, a truncated WebP, an
empty file, an HTML page saved as .jpg, a PNG whose header claims 30000 x 30000 pixels, a broken
symbolic link, a symbolic link loop.
"""
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)


def photo(w=48, h=40):
    """A smooth RGB picture with some texture, so JPEG cuts matter."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 5, y * 6, (x + y) * 3], axis=-1) % 256
    noise = rng.integers(0, 40, size=(h, w, 3))
    return Image.fromarray(((base + noise) % 256).astype(np.uint8), "RGB")


def path(name):
    return os.path.join(out, name)


photo().save(path("rgb.jpg"), quality=90)
photo().convert("L").save(path("grey.jpg"))
photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path("palette.png"))
sixteen = (np.asarray(photo().convert("L"), dtype=np.uint16) * 257)
Image.fromarray(sixteen).save(path("sixteen_bit.png"))  # mode I;16
rgba = photo().convert("RGBA")
rgba.putalpha(128)
rgba.save(path("alpha.png"))
photo().convert("CMYK").save(path("cmyk.jpg"), quality=90)
photo(64, 48).save(path("progressive.jpg"), quality=90, progressive=True)
exif = Image.Exif()
exif[0x0112] = 6  # orientation: rotate 90 clockwise to display
photo(48, 32).save(path("exif_rotated.jpg"), exif=exif.tobytes())
frames = [photo(), photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
frames[0].save(path("animated.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
photo().save(path("lossy.webp"), quality=80)
rgba.save(path("lossless_alpha.webp"), lossless=True)
photo(48, 32).save(path("exif_rotated.webp"), exif=exif.tobytes())
frames[0].save(path("animated.webp"), save_all=True, append_images=frames[1:], duration=100, loop=0)
with open(os.path.join(os.fsencode(out), b"caf\xe9.jpg"), "wb") as f:
    photo().save(f, format="JPEG")

buffer = io.BytesIO()
photo(96, 96).save(buffer, format="JPEG", quality=95)
whole = buffer.getvalue()
with open(path("truncated.jpg"), "wb") as f:
    f.write(whole[: len(whole) // 2])
buffer = io.BytesIO()
photo(96, 96).save(buffer, format="WEBP", quality=95)
whole = buffer.getvalue()
with open(path("truncated.webp"), "wb") as f:
    f.write(whole[: len(whole) // 2])
open(path("empty.jpg"), "wb").close()
with open(path("error_page.jpg"), "w") as f:
    f.write("<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n")


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
with open(path("giant.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
os.symlink("does-not-exist.jpg", path("broken_link.jpg"))
os.makedirs(path("loop"), exist_ok=True)
photo().save(path("loop/inside.jpg"))
os.symlink("..", path("loop/again"))


def reference_means(image):
    """Mean of R, G and B after Pillow's decode, at the size the test's model takes."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "I;16":
        grey = np.asarray(image, dtype=np.float64) / 257.0
        pixels = np.stack([grey] * 3, axis=-1)
        image = Image.fromarray(np.round(pixels).astype(np.uint8), "RGB")
    image = image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)
    return [float(v) for v in np.asarray(image, dtype=np.float64).mean(axis=(0, 1))]


good = ["alpha.png", "animated.gif", "animated.webp", "cmyk.jpg", "exif_rotated.jpg",
        "exif_rotated.webp", "grey.jpg", "lossless_alpha.webp", "lossy.webp", "loop/inside.jpg",
        "palette.png", "progressive.jpg", "rgb.jpg", "sixteen_bit.png"]
reference = {name: reference_means(Image.open(path(name))) for name in good}
reference["caf\\xe9.jpg"] = reference_means(Image.open(os.path.join(os.fsencode(out), b"caf\xe9.jpg")))
with open(path("reference.json"), "w") as f:
    json.dump(reference, f, indent=1)
