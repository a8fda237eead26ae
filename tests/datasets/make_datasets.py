"""Writes the same images as a folder and as shards with the real writers, for tests/it/datasets.rs.

usage: make_datasets.py OUT
       make_datasets.py --hf-paths FOLDER OUT   (only hf_paths/, over the images of FOLDER: the
                                                  test writes it where its absolute paths hold)

Under OUT:
- folder/: 12 photos-like images in two class folders (folder/<label>/<label>_NNN.<ext>, JPEG
  and PNG, of several sizes), written with Pillow;
- wds/shard-00000{0..3}.tar: WebDataset shards written by the `webdataset` package's
  TarWriter, each sample {__key__: the file stem, <ext>: the file's bytes, txt: the label,
  json: {"label": ..., "index": ...}};
- i2d_wds/ and i2d_parquet/: img2dataset's own WebDataset and Parquet output over file://
  URLs of the images (bytes kept, not re-encoded), plus one URL of a missing file that it
  records as a failed download; i2d_urls.txt lists the URLs in order;
- hf/train.parquet: a Hugging Face `datasets` Dataset with an Image() column and a
  ClassLabel label, written with to_parquet;
- with --hf-paths, hf_paths/train.parquet: the same images as `datasets` writes a Dataset built from local files
  with to_parquet: each image stored by path with null bytes (even rows an absolute path, odd
  rows a path relative to hf_paths/), then a row whose file is missing and one with an http://
  URL;
- dirty/: shards written with Python's tarfile: good.tar (3 samples), truncated.tar (3 whole
  samples, then the 4th's image cut short), mixed.tar (a .jpg member holding text, a sample
  with no image member, a member named ../escape.jpg, a good sample), notatar.tar (text).
"""

import io
import json
import os
import sys
import tarfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


def images(folder):
    return sorted(p for p in Path(folder).glob("*/*") if p.is_file())


def write_webdataset(files, out):
    import webdataset as wds

    out.mkdir(parents=True, exist_ok=True)
    per_shard = (len(files) + 3) // 4
    for shard in range(4):
        with wds.TarWriter(str(out / f"shard-{shard:06d}.tar")) as sink:
            for i in range(shard * per_shard, min(len(files), (shard + 1) * per_shard)):
                path = files[i]
                label = path.parent.name
                sink.write(
                    {
                        "__key__": path.stem,
                        path.suffix[1:]: path.read_bytes(),
                        "txt": label,
                        "json": {"label": label, "index": i},
                    }
                )


def write_img2dataset(files, out):
    from img2dataset import download

    urls = [f"file://{p.resolve()}" for p in files]
    urls.insert(1, f"file://{(files[0].parent / 'missing.jpg').resolve()}")
    (out / "i2d_urls.txt").write_text("\n".join(urls) + "\n")
    for fmt in ["webdataset", "parquet"]:
        folder = out / ("i2d_wds" if fmt == "webdataset" else "i2d_parquet")
        download(
            url_list=str(out / "i2d_urls.txt"),
            output_folder=str(folder),
            output_format=fmt,
            input_format="txt",
            resize_mode="no",
            disable_all_reencoding=True,
            processes_count=1,
            thread_count=2,
        )


def write_huggingface(files, out):
    import datasets

    from datasets.table import embed_table_storage

    names = sorted({p.parent.name for p in files})
    ds = datasets.Dataset.from_dict(
        {
            "image": [str(p) for p in files],
            "label": [names.index(p.parent.name) for p in files],
            "name": [p.name for p in files],
        }
    )
    ds = ds.cast_column("image", datasets.Image())
    ds = ds.cast_column("label", datasets.ClassLabel(names=names))
    # As push_to_hub does: the image files' bytes go into the table.
    ds = ds.with_format("arrow").map(embed_table_storage, batched=True)
    (out / "hf").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(out / "hf" / "train.parquet"))


def write_huggingface_by_path(files, out):
    import datasets

    folder = out / "hf_paths"
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted({p.parent.name for p in files})
    paths = [
        str(p.resolve()) if i % 2 == 0 else os.path.relpath(p.resolve(), folder.resolve())
        for i, p in enumerate(files)
    ]
    paths += [str((files[0].parent / "missing.jpg").resolve()), "http://127.0.0.1:9/cat.jpg"]
    labels = [names.index(p.parent.name) for p in files] + [0, 1]
    ds = datasets.Dataset.from_dict({"image": paths, "label": labels})
    ds = ds.cast_column("image", datasets.Image())
    ds = ds.cast_column("label", datasets.ClassLabel(names=names))
    # No embed_table_storage: to_parquet keeps the paths, with null bytes. A batch size given,
    # it does not stat every path to size its batches (which fails on the missing file and the
    # URL).
    ds.to_parquet(str(folder / "train.parquet"), batch_size=100)


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_dirty(files, out):
    dirty = out / "dirty"
    dirty.mkdir(parents=True, exist_ok=True)
    good = [p for p in files if p.suffix == ".jpg"][:4]
    with tarfile.open(dirty / "good.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for p in good[:3]:
            add(tar, f"g_{p.stem}.jpg", p.read_bytes())
            add(tar, f"g_{p.stem}.txt", p.parent.name.encode())
    whole = io.BytesIO()
    with tarfile.open(fileobj=whole, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for p in good[:4]:
            add(tar, f"t_{p.stem}.txt", p.parent.name.encode())
            add(tar, f"t_{p.stem}.jpg", p.read_bytes())
    data = whole.getvalue()
    last = good[3].read_bytes()
    # The end of the last image member's data: 1024 zero bytes of end marker and padding
    # follow it; cut in the middle of the member.
    end = data.rindex(last) + len(last)
    (dirty / "truncated.tar").write_bytes(data[: end - len(last) // 2])
    with tarfile.open(dirty / "mixed.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        add(tar, "m_text.jpg", b"this is not an image, only text\n")
        add(tar, "m_noimage.txt", b"cat")
        add(tar, "m_noimage.json", b'{"label": "cat"}')
        add(tar, "../escape.jpg", good[0].read_bytes())
        add(tar, "m_good.jpg", good[1].read_bytes())
    (dirty / "notatar.tar").write_text("just some text, saved with a .tar name\n" * 20)


def write_folder(folder):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    for label in ["cat", "dog"]:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(6):
            h, w = 20 + 3 * i, 24 + 5 * (i % 3)
            y, x = np.mgrid[0:h, 0:w]
            base = np.stack([x * 9, y * 11, (x + y) * 5], axis=-1) % 256
            noise = rng.integers(0, 40, size=(h, w, 3))
            pixels = ((base + noise) % 256).astype("uint8")
            ext = "jpg" if i % 2 == 0 else "png"
            Image.fromarray(pixels).save(folder / label / f"{label}_{i:03d}.{ext}")


def main():
    if sys.argv[1] == "--hf-paths":
        write_huggingface_by_path(images(sys.argv[2]), Path(sys.argv[3]))
        return
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    write_folder(out / "folder")
    files = images(out / "folder")
    write_webdataset(files, out / "wds")
    write_img2dataset(files, out)
    write_huggingface(files, out)
    write_dirty(files, out)


if __name__ == "__main__":
    main()
